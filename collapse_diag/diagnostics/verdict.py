"""Per-dimension status and the overall verdict (rules, thresholds, example: docs/statuses.md).

Status of dimension d, in this order::

    collapsed      mean KL_d < kl_eps, and no evidence that d carries or is read
                                                                   (posterior = prior)
    uninformative  not collapsed, Var_x[mu_d] < active_threshold, and no such evidence
                                                                   (KL spent on marginal mismatch)
    used           informative, and the evidence shows the decoder reads d
    ignored        informative, and the evidence shows the decoder's use of d is negligible
    undetermined   informative, and the evidence shows neither

"The evidence shows the decoder reads d" is either of

* the per-dimension swap: the lower bound of the delta's interval (simultaneous
  over the D dimensions and the rounds, :mod:`~collapse_diag.diagnostics.estimators.swap_decision`)
  is > 0;
* the Fisher information of z_d: the lower bound of its bootstrap interval is
  ``>= max(fisher_rank_rtol * max_d' fisher_d', fisher_rank_atol)``.

"Negligible" is the equivalence test of the per-dimension swap: the upper bound
is at most ``min(negligible_swap_nats, negligible_swap_fraction * I(x; z_d))``.
Without the per-dimension swap, only a Fisher upper bound of exactly 0 (the
decoder's output has no gradient in z_d) shows a negligible use.

Evidence overrides the cut-offs (issue 22): a dimension whose MI interval lies
above ``kl_eps`` (its lower end: it carries more information about x than the
collapse cut-off calls nothing) or whose per-dimension swap interval lies above 0
(the decoder reads it) is informative, whatever its mean KL and Var_x[mu_d] say;
it is never ``collapsed`` or ``uninformative`` by a cut-off. (An MI interval
merely above 0 is not enough: a collapsed dimension's bootstrap interval can sit a
few 1e-4 nats above 0 through the estimator's bias, below the KL cut-off that
bounds it, since I(x; z_d) <= KL_d.)

Verdict (``summary.verdict``, one of :data:`~collapse_diag.report.schema.VERDICTS`):

* ``collapsed`` when no dimension is informative, or when no dimension is
  ``used``, the whole-vector swap test is not significant (p >= alpha) and the
  absence of use is shown, not just a failure to reject: every informative
  dimension is ``ignored``, or the whole-vector swap interval's upper end is at most
  the negligible threshold ``min(negligible_swap_nats, negligible_swap_fraction *
  I(x; z))`` (:func:`whole_swap_negligible`). A non-significant swap beside
  ``undetermined`` dimensions and a wider interval is ``undetermined``;
* ``healthy`` when every dimension is ``used``;
* ``partial`` when some dimension is shown unused (``collapsed``, ``ignored`` or
  ``uninformative``) and some is ``used``;
* ``undetermined`` otherwise: no dimension is shown unused and some are
  ``undetermined`` (or none is ``used``, yet z as a whole is read). The reason gives
  the inputs the per-dimension swap would likely need to decide. Never a word that
  reads as collapse. The verdict is never ``collapsed`` while a dimension is ``used``.

Missing decoder-side results: decoder use is judged from what is there;
without sensitivity, "the whole-vector swap is not significant" becomes
``identifiable_dims == 0``; with neither, informative dimensions are
``undetermined`` and the reason says decoder use was not checked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from collapse_diag.config.settings import Settings
from collapse_diag.diagnostics.estimators.fisher_grades import fisher_cutoff
from collapse_diag.diagnostics.estimators.swap_decision import whole_swap_threshold
from collapse_diag.diagnostics.information import ZERO_ATOL
from collapse_diag.diagnostics.informative import informative_dims
from collapse_diag.diagnostics.spec import DiagnosticSpec, DimensionColumn, RunContext, SummaryRow
from collapse_diag.exceptions import CollapseDiagError
from collapse_diag.report.report import ReportSection
from collapse_diag.report.schema import DIMENSION_KEY as DK
from collapse_diag.report.schema import STATUSES
from collapse_diag.report.schema import SUMMARY_KEY as SK

if TYPE_CHECKING:
    from collapse_diag.diagnostics.activity import ActivityResult
    from collapse_diag.diagnostics.identifiability import IdentifiabilityResult
    from collapse_diag.diagnostics.information import InformationResult
    from collapse_diag.diagnostics.kl import KLResult
    from collapse_diag.diagnostics.sensitivity import SensitivityResult

__all__ = ["SPEC", "STATUSES", "VerdictResult", "decide_verdict", "holm"]


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm (1979) step-down adjusted p-values; NaN counts as 1.

    ``p_adj_(i) = max_{j <= i} min(1, (m - j + 1) p_(j))`` over the sorted p-values.
    """
    p = np.where(np.isnan(p_values), 1.0, np.asarray(p_values, dtype=np.float64))
    m = len(p)
    order = np.argsort(p, kind="stable")
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = adjusted
    return out


@dataclass(frozen=True)
class VerdictResult:
    """Per-dimension statuses and the overall verdict.

    Attributes:
        status: One of :data:`STATUSES` per dimension.
        verdict: One of :data:`~collapse_diag.report.schema.VERDICTS`.
        verdict_reason: One sentence explaining the verdict.
        status_counts: Status -> number of dimensions (every status present).
        informative: Dimension not collapsed and mu_variance >= active_threshold, ``(D,)``.
        swap_used: The per-dimension swap interval lies above 0, ``(D,)``.
        swap_ignored: The per-dimension swap interval lies below the threshold, ``(D,)``.
        fisher_used: Fisher lower bound at or above its cutoff, ``(D,)``.
        swap_p_holm: Holm-adjusted per-dimension Wilcoxon p-values (NaN when not computed).
        decoder_checked: Whether any decoder-side evidence was available.
        evidence_informative: Informative by the MI or swap interval although a cut-off
            said otherwise, ``(D,)``.
    """

    status: tuple[str, ...]
    verdict: str
    verdict_reason: str
    status_counts: dict[str, int]
    informative: np.ndarray
    swap_used: np.ndarray
    swap_ignored: np.ndarray
    fisher_used: np.ndarray
    swap_p_holm: np.ndarray
    decoder_checked: bool
    evidence_informative: np.ndarray | None = None

    def section(self) -> ReportSection:
        """The report fields: verdict, reason, counts; ``status`` and ``swap_p_holm`` per dim."""
        return ReportSection(
            summary={
                SK.status_counts: dict(self.status_counts),
                SK.verdict: self.verdict,
                SK.verdict_reason: self.verdict_reason,
            },
            dimensions={DK.status: list(self.status),
                        DK.swap_p_holm: self.swap_p_holm.tolist()},
        )


def _fmt(value: float) -> str:
    return f"{value:.3g}"


def _fisher_evidence(identifiability: IdentifiabilityResult, dim: int,
                     settings: Settings) -> tuple[np.ndarray, np.ndarray]:
    """(used, negligible) per dimension from the Fisher diagonal and its interval."""
    fisher = np.asarray(identifiability.fisher, dtype=np.float64)
    ci = getattr(identifiability, "fisher_ci", None)
    ci = np.column_stack([fisher, fisher]) if ci is None else np.asarray(ci, dtype=np.float64)
    largest = float(fisher.max()) if dim else 0.0
    cutoff = fisher_cutoff(largest, settings.fisher_rank_rtol, settings.fisher_rank_atol)
    return (ci[:, 0] >= cutoff) & (ci[:, 0] > 0), ci[:, 1] <= 0


def decide_verdict(
    kl: KLResult,
    activity: ActivityResult,
    sensitivity: SensitivityResult | None,
    identifiability: IdentifiabilityResult | None,
    settings: Settings,
    information: InformationResult | None = None,
) -> VerdictResult:
    """Give every dimension a status and the model a verdict (rules in the module docstring).

    Args:
        kl: Encoder KL result (uses ``collapsed`` and ``eps``).
        activity: Activity result (uses ``active`` and ``threshold``).
        sensitivity: Swap-test result, or ``None`` if it is missing.
        identifiability: Flatness / Fisher result, or ``None`` if it is missing.
        settings: Uses ``alpha``, ``fisher_rank_rtol``, ``fisher_rank_atol``.
        information: MI result; its per-dimension interval (when computed) can override
            the cut-offs.

    Returns:
        A :class:`VerdictResult`.
    """
    collapsed = np.asarray(kl.collapsed, dtype=bool)
    dim = len(collapsed)
    informative = informative_dims(kl, activity)
    swap_p_holm = np.full(dim, np.nan)
    swap_used = np.zeros(dim, dtype=bool)
    swap_ignored = np.zeros(dim, dtype=bool)
    fisher_used = np.zeros(dim, dtype=bool)
    fisher_none = np.zeros(dim, dtype=bool)
    if sensitivity is not None and sensitivity.per_dim_swap_examples > 0:
        swap_p_holm = holm(sensitivity.dim_p_values)
        decision = np.asarray(sensitivity.per_dim.decision)
        swap_used, swap_ignored = decision == "used", decision == "ignored"
    elif identifiability is not None:
        fisher_none = _fisher_evidence(identifiability, dim, settings)[1]
    if identifiability is not None:
        fisher_used = _fisher_evidence(identifiability, dim, settings)[0]
    checked = sensitivity is not None or identifiability is not None
    evidence = _carries(information, dim, kl.eps) | swap_used
    overridden = evidence & ~informative
    collapsed, informative = collapsed & ~evidence, informative | evidence
    used = swap_used | fisher_used
    ignored = ~used & (swap_ignored | fisher_none)

    status = np.where(collapsed, "collapsed",
                      np.where(~informative, "uninformative",
                               np.where(used, "used",
                                        np.where(ignored, "ignored", "undetermined"))))
    counts = {name: int(np.sum(status == name)) for name in STATUSES}
    verdict, reason = _verdict(counts, dim, kl, activity, sensitivity, identifiability,
                               settings, information)
    return VerdictResult(
        status=tuple(str(s) for s in status),
        verdict=verdict,
        verdict_reason=reason,
        status_counts=counts,
        informative=informative,
        swap_used=swap_used,
        swap_ignored=swap_ignored,
        fisher_used=fisher_used,
        swap_p_holm=swap_p_holm,
        decoder_checked=checked,
        evidence_informative=overridden,
    )


def _carries(information: InformationResult | None, dim: int, eps: float) -> np.ndarray:
    """Per dimension: the lower end of ``I(x; z_d)``'s interval lies above ``eps`` (``kl_eps``).

    (The swap's evidence is its own ``used`` decision: the interval's lower end above 0.)
    """
    ci = None if information is None else getattr(information, "per_dimension_ci", None)
    if ci is None or len(ci) != dim:
        return np.zeros(dim, dtype=bool)
    low = np.asarray(ci, dtype=np.float64)[:, 0]
    return np.isfinite(low) & (low > max(eps, ZERO_ATOL))


def _verdict(
    counts: dict[str, int],
    dim: int,
    kl: KLResult,
    activity: ActivityResult,
    sensitivity: SensitivityResult | None,
    identifiability: IdentifiabilityResult | None,
    settings: Settings,
    information: InformationResult | None = None,
) -> tuple[str, str]:
    """The verdict and its one-sentence reason."""
    if counts["used"] + counts["ignored"] + counts["undetermined"] == 0:
        parts = []
        if counts["collapsed"]:
            parts.append(f"{counts['collapsed']} of {dim} have mean KL below {_fmt(kl.eps)} "
                         "nats: their posterior is the prior")
        if counts["uninformative"]:
            parts.append(f"{counts['uninformative']} of {dim} spend KL but their mean mu(x) "
                         f"barely moves with x (Var_x[mu] below {_fmt(activity.threshold)})")
        return "collapsed", (
            f"Collapsed: no latent dimension carries information about x ({'; '.join(parts)})."
        )
    if sensitivity is not None:
        swap = (f"swapping codes between inputs changes log p(x|z) by "
                f"{_fmt(sensitivity.swap_delta)} nats on average, Wilcoxon p = "
                f"{_fmt(sensitivity.swap_p_value)}")
        if not sensitivity.swap_significant and counts["used"] == 0 and (
                counts["undetermined"] == 0
                or whole_swap_negligible(sensitivity, information, settings)):
            return "collapsed", (
                f"Collapsed: the decoder ignores z ({swap}, not significant at "
                f"alpha = {_fmt(settings.alpha)}, and no dimension shows use on its own)."
            )
    elif identifiability is not None:
        swap = (f"the swap test is unavailable; the Fisher information of z has "
                f"{identifiability.identifiable_dims} identifiable direction(s)")
        if identifiability.identifiable_dims == 0 and counts["used"] == 0:
            return "collapsed", f"Collapsed: the decoder ignores z ({swap})."
    else:
        swap = ("decoder use not checked: the sensitivity and identifiability diagnostics "
                "are unavailable")
    if counts["used"] == dim:
        return "healthy", (
            f"Healthy: all {dim} latent dimensions carry information and the decoder "
            f"uses each of them ({swap})."
        )
    others = ", ".join(f"{counts[s]} {s}" for s in STATUSES[1:] if counts[s])
    unused = counts["collapsed"] + counts["ignored"] + counts["uninformative"]
    if unused and counts["used"]:
        whole = ("the decoder uses z as a whole" if sensitivity is None
                 or sensitivity.swap_significant
                 else "the whole-vector swap test is not significant")
        return "partial", (
            f"Partial: {counts['used']} of {dim} latent dimensions are used ({others}), "
            f"and {whole} ({swap})."
        )
    return "undetermined", (
        f"Undetermined: {counts['used']} of {dim} latent dimensions are shown used and "
        f"{counts['undetermined']} undetermined"
        + (f" ({others})" if unused else ", none shown unused")
        + f"; the evidence does not decide the rest ({swap})." + _needed(sensitivity)
    )


def whole_swap_negligible(sensitivity: SensitivityResult, information: InformationResult | None,
                          settings: Settings) -> bool:
    """The whole-vector swap interval shows the decoder does not read z (not just p >= alpha).

    True when the upper end of ``swap_ci`` is at most ``min(negligible_swap_nats,
    negligible_swap_fraction * I(x; z))`` (the per-dimension rule's threshold,
    :func:`~collapse_diag.diagnostics.estimators.swap_decision.negligible_thresholds`, with
    the whole code's MI; the cap alone without it): a decoder that fully read z would show
    a mean delta of at least I(x; z). A decoder that ignores z exactly gives a zero-width
    interval at 0.
    """
    ci = getattr(sensitivity, "swap_ci", None)
    if ci is None or len(ci) != 2 or not np.isfinite(float(ci[1])):
        return False
    threshold = whole_swap_threshold(getattr(information, "mutual_information", None),
                                     settings.negligible_swap_nats,
                                     settings.negligible_swap_fraction)
    return float(ci[1]) <= threshold


def _needed(sensitivity: SensitivityResult | None) -> str:
    """The sentence on inputs likely to decide the undetermined dimensions ('' if unknown)."""
    if sensitivity is None or sensitivity.per_dim_swap_examples <= 0:
        return (" Running the sensitivity diagnostic (per-dimension swap) would likely "
                "decide them.")
    needed = [n for n in getattr(sensitivity.per_dim, "inputs_needed", None) or []
              if n is not None]
    if not needed:
        return ""
    return (f" About {max(needed):,} inputs would likely decide them (the per-dimension "
            "swap's estimate at the observed spread).")


def _run(context: RunContext) -> VerdictResult:
    kl, activity = context.result("kl"), context.result("activity")
    if kl is None or activity is None:
        raise CollapseDiagError("the verdict needs the kl and activity diagnostics, which failed.")
    return decide_verdict(kl, activity, context.result("sensitivity"),
                          context.result("identifiability"), context.settings,
                          information=context.result("information"))


SPEC = DiagnosticSpec(
    name="verdict",
    min_inputs=20,
    run=_run,
    requires=("kl", "activity", "information", "sensitivity", "identifiability"),
    runs_with=("kl", "activity"),
    leads=True,
    summary_rows=(
        SummaryRow(SK.verdict, "verdict", "text"),
        SummaryRow(SK.status_counts, "status counts", "counts"),
    ),
    columns=(DimensionColumn(DK.status, "status", "text", terminal=True, group="lead"),),
    explanation=("collapse_diag.render.dimension_text:statuses_text",),
)
