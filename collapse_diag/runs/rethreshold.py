"""Re-threshold a report without the model: statuses, verdict and causes at other cut-offs.

``collapse-diag render DIR --kl-eps 0.05`` (``rethreshold(report, kl_eps=0.05)``)
re-derives, from the figures ``report.json`` stores, everything a threshold
decides, with the very functions the analysis uses:

* ``kl_eps``: collapsed dimensions (:func:`~collapse_diag.diagnostics.kl.collapsed_dims`
  on the stored mean KL per dimension), ``collapsed_units``; the evidence override
  of the verdict (the stored MI interval against ``kl_eps``); the causes (the
  stored intervals of KL*_d and of KL_d - ratio * KL*_d against ``kl_eps``,
  :func:`~collapse_diag.diagnostics.cause.causes_from_intervals`);
* ``active_threshold``: active dimensions, ``active_units``, the signal class
  (:func:`~collapse_diag.diagnostics.activity.activity_result` on the stored variances);
* then the statuses and the verdict
  (:func:`~collapse_diag.diagnostics.verdict.decide_verdict` on the stored swap
  decisions and Fisher intervals), and the report invariants again.

What cannot change without a new run (:data:`RETHRESHOLDABLE` lists what can):
every other setting, since its inputs are not stored (the per-input KL, the
swap deltas, the bootstrap draws). Within ``kl_eps`` itself, the
(eps, delta)-collapse rate ``kl_collapse_rate`` needs the per-input KL per
dimension: it is set to null and named in ``provenance.rethresholded``. The
per-dimension swap's later rounds follow the run's informative dimensions: when
a dimension becomes informative at the new cut-offs and the run took more than
one round, a new run may decide it where the re-derived report says
``undetermined``; the note names such dimensions.
"""

from __future__ import annotations

import copy
from types import SimpleNamespace
from typing import Any

import numpy as np

from collapse_diag.config.settings import Settings
from collapse_diag.diagnostics.activity import activity_result
from collapse_diag.diagnostics.cause import causes_from_intervals, model_cause
from collapse_diag.diagnostics.identifiability import SPEC as IDENTIFIABILITY
from collapse_diag.diagnostics.kl import collapsed_dims
from collapse_diag.diagnostics.sensitivity import SPEC as SENSITIVITY
from collapse_diag.diagnostics.verdict import decide_verdict
from collapse_diag.exceptions import InvalidParameterError
from collapse_diag.report.invariants import check_report
from collapse_diag.report.report import Report
from collapse_diag.report.schema import CAUSES
from collapse_diag.report.schema import DIMENSION_KEY as DK
from collapse_diag.report.schema import PROVENANCE_KEY as PK
from collapse_diag.report.schema import SUMMARY_KEY as SK

__all__ = ["RETHRESHOLDABLE", "rethreshold"]

#: Settings whose effect on a report can be re-derived from its stored figures.
RETHRESHOLDABLE = ("kl_eps", "active_threshold")


def _column(report: Report, key: str) -> list[Any] | None:
    values = [row.get(key) for row in report.dimensions]
    return None if all(v is None for v in values) else values


def _array(values: list[Any] | None) -> np.ndarray | None:
    if values is None:
        return None
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def _check(changes: dict[str, Any], report: Report) -> Settings:
    names = sorted(Settings.__dataclass_fields__)
    unknown = sorted(set(changes) - set(names))
    if unknown:
        raise InvalidParameterError(f"render got unknown setting(s) {unknown}; valid settings "
                                    f"are {names}.")
    fixed = sorted(set(changes) - set(RETHRESHOLDABLE))
    if fixed:
        raise InvalidParameterError(
            f"{fixed} cannot be changed without a new run: the figures they decide are not "
            f"stored in report.json (re-run collapse-diag analyze with them). render can "
            f"change {list(RETHRESHOLDABLE)}.")
    stored = {k: v for k, v in report.settings.items() if k in Settings.__dataclass_fields__}
    return Settings.from_kwargs("render", **{**stored, **changes})


def _sensitivity(report: Report) -> Any:
    summary = report.summary
    if summary.get(SK.swap_delta) is None or SENSITIVITY.name in report.errors:
        return None
    examples = int(summary.get(SK.per_dim_swap_examples) or 0)
    return SimpleNamespace(
        per_dim_swap_examples=examples, dim_p_values=_array(_column(report, DK.swap_p_value)),
        per_dim=SimpleNamespace(decision=[str(v) for v in _column(report, DK.decoder_use) or []],
                                inputs_needed=_column(report, DK.swap_inputs_needed) or []),
        swap_delta=summary[SK.swap_delta], swap_p_value=summary.get(SK.swap_p_value),
        swap_significant=bool(summary.get(SK.swap_significant)),
        swap_ci=summary.get(SK.swap_ci))


def _identifiability(report: Report) -> Any:
    fisher = _array(_column(report, DK.fisher))
    if fisher is None or IDENTIFIABILITY.name in report.errors:
        return None
    ci = _column(report, DK.fisher_ci)
    return SimpleNamespace(fisher=fisher, identifiable_dims=report.summary.get(
        SK.identifiable_dims), fisher_ci=None if ci is None else np.array(ci, dtype=np.float64))


def _information(report: Report) -> Any:
    ci = _column(report, DK.mutual_information_ci)
    mi = report.summary.get(SK.mutual_information)
    if ci is None and mi is None:
        return None
    return SimpleNamespace(
        mutual_information=mi,
        per_dimension_ci=None if ci is None else np.array(
            [[np.nan, np.nan] if v is None else v for v in ci], dtype=np.float64))


def _merge(report: Report, summary: dict[str, Any], dimensions: dict[str, list[Any]]) -> None:
    report.summary.update(summary)
    for key, values in dimensions.items():
        for row, value in zip(report.dimensions, values):
            row[key] = value


def rethreshold(report: Report, **changes: Any) -> Report:
    """A copy of ``report`` with the statuses, verdict and causes at other thresholds.

    Args:
        report: A report read from ``report.json`` (left unchanged).
        **changes: New values of settings in :data:`RETHRESHOLDABLE`.

    Returns:
        The re-derived report: ``settings`` hold the new values,
        ``provenance.rethresholded`` the run's values and what stayed at them, and
        ``warnings`` the invariants checked again.

    Raises:
        InvalidParameterError: an unknown setting, one that needs a new run, a value
            out of range, or a report lacking the figures to re-derive from.
    """
    settings = _check(changes, report)
    out = copy.deepcopy(report)
    kl = _array(_column(report, DK.kl))
    mu_var = _array(_column(report, DK.mu_variance))
    if kl is None or mu_var is None:
        raise InvalidParameterError("render can re-threshold only a report whose kl and "
                                    "activity diagnostics ran: this one lacks their figures.")
    previous = {k: report.settings.get(k) for k in changes}
    notes: list[str] = []
    eps = settings.kl_eps
    collapsed = collapsed_dims(kl, eps)
    kl_ns = SimpleNamespace(collapsed=collapsed, eps=eps, per_dimension=kl)
    dims: dict[str, list[Any]] = {}
    if eps != report.settings.get("kl_eps"):
        dims[DK.kl_collapse_rate] = [None] * len(kl)
        notes.append("kl_collapse_rate: needs the per-input KL, not stored (null)")
    activity = activity_result(mu_var, _array(_column(report, DK.posterior_variance)),
                               settings.active_threshold)
    activity_section = activity.section()
    _merge(out, {SK.collapsed_units: int(collapsed.sum()),
                 SK.active_units: activity.active_units,
                 SK.signal_counts: activity.signal_counts},
           {**dims, DK.active: activity_section.dimensions[DK.active],
            DK.signal: activity_section.dimensions[DK.signal]})
    sensitivity, identifiability = _sensitivity(report), _identifiability(report)
    verdict = decide_verdict(kl_ns, activity, sensitivity, identifiability, settings,
                             information=_information(report))
    section = verdict.section()
    _merge(out, dict(section.summary), dict(section.dimensions))
    notes += _rounds_note(report, verdict.informative)
    _causes(report, out, verdict, identifiability is not None, eps)
    out.settings = {**report.settings, **settings.to_dict()}
    out.provenance[PK.rethresholded] = {
        "from": previous, "to": {k: getattr(settings, k) for k in changes},
        "not_rederived": notes}
    out.warnings = [str(v) for v in check_report(out)]
    return out


def _rounds_note(report: Report, informative: np.ndarray) -> list[str]:
    """Dimensions informative now, not in the run, whose swap had only the first round."""
    rounds = report.summary.get(SK.per_dim_swap_rounds)
    old = [row.get(DK.status) not in ("collapsed", "uninformative") for row in report.dimensions]
    new = [d for d, (was, now) in enumerate(zip(old, informative)) if now and not was]
    if not rounds or int(rounds) <= 1 or not new:
        return []
    return [f"swap rounds: dimensions {new} are informative at the new cut-offs; the run's "
            f"later swap rounds did not include them (a new run may decide them)"]


def _causes(report: Report, out: Report, verdict: Any, fisher_ran: bool, eps: float) -> None:
    """The causes at ``eps`` from the stored intervals (when the refinement ran)."""
    if _column(report, DK.cause) is None:
        return
    ci, excess = _column(report, DK.kl_refined_ci), _array(_column(report, DK.kl_excess_low))
    if ci is None or excess is None:
        raise InvalidParameterError(
            "this report's causes cannot be re-derived: it lacks kl_excess_low (written by "
            "collapse-diag from issue 25 on); re-run collapse-diag analyze with the new values.")
    causes = causes_from_intervals(verdict.status, np.array(ci, dtype=np.float64), excess,
                                   verdict.fisher_used if fisher_ran else None, eps)
    _merge(out, {SK.collapse_cause: model_cause(causes),
                 SK.cause_counts: {c: causes.count(c) for c in CAUSES}},
           {DK.cause: list(causes)})
