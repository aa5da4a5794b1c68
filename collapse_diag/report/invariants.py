"""The relations every report's figures satisfy, declared once, each a small named check.

A report whose figures contradict each other is a bug: a reader cannot tell
which figure to believe. Each check below states one relation and returns the
violations it finds, as one-line messages (an empty list: the relation holds).
``analyze``, ``compare``, ``track`` and the writers in render/ run them; at run
time a violation is recorded in the report's ``warnings`` and shown at the top
of the Markdown / HTML page, never silently; the tests fail on any violation in
a report written from their model zoo (tests/test_invariants.py).

Adding a relation is adding one function ``(report) -> list[str]`` to
:data:`REPORT_INVARIANTS` (or ``(trajectory) -> list[str]`` to
:data:`TRAJECTORY_INVARIANTS`): nothing else changes.

The relations (docs/reading-the-report.md, "Consistency warnings"):

* ``mi_within_kl``: with a fixed prior, I(x; z) <= E_x KL(q(z|x) || p(z)), overall
  and per dimension (Hoffman & Johnson 2016: the difference is KL(q(z) || p(z)) >= 0),
  up to the estimator's interval (below).
* ``negative_estimates_flagged``: an estimate that cannot be negative (MI) and is
  below 0 carries the flag that makes the writers show it as indistinguishable from 0.
* ``ranks_within_dimensions``: counts of dimensions are at most D; the Fisher rank is
  at most the number of latent coordinates (D, or T x D for a sequential latent).
* ``status_counts_match_rows``: ``status_counts`` sums to D and counts the rows' statuses.
* ``verdict_matches_statuses``: ``healthy`` only when every dimension is ``used``;
  never ``collapsed`` while a dimension is ``used`` (collapse_diag/diagnostics/verdict.py).
* ``decoded_figures_agree``: 0 <= ``output_diversity`` <= ``differ_fraction`` <= 1 for
  token outputs; no decoded figure without ``generate``.
* NLL convergence: a page calls the NLL bound converged only when
  :func:`nll_still_falling` is false; otherwise it says the bound still falls (the
  writers in render/ read that function; tests/test_invariants.py checks the pages).
* ``discrete_figures_agree``: for discrete latents, the exact MI is within its ceiling,
  the codebook perplexity is at most the codes used, used + dead codes = K, and the
  verdict ``codebook collapse`` stands only beside ``codebook_collapse``.
* trajectories: ``trajectory_verdict_events_match_rows`` and
  ``trajectory_collapse_events_match_rows``.
* plots: :func:`caption_marks_drawn` (a caption names only marks its figure draws),
  run by the plot writer on each figure it draws.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from collapse_diag.report.report import Report
from collapse_diag.report.schema import DIMENSION_KEY as D
from collapse_diag.report.schema import NLL_CONVERGENCE_KEY as NC
from collapse_diag.report.schema import PROVENANCE_KEY as P
from collapse_diag.report.schema import STATUSES
from collapse_diag.report.schema import SUMMARY_KEY as S
from collapse_diag.report.schema import TOP_LEVEL_KEY as T
from collapse_diag.report.values import finite

__all__ = ["REPORT_INVARIANTS", "ROUNDING_NATS", "TRAJECTORY_INVARIANTS", "Violation",
           "caption_marks_drawn", "check_report", "check_trajectory", "coordinates",
           "nll_still_falling"]

#: An estimate of a non-negative quantity within this many nats of 0 is 0 up to the
#: estimator's rounding (identical posteriors give terms of ~1e-15), not a statistical margin.
ROUNDING_NATS = 1e-9


@dataclass(frozen=True)
class Violation:
    """One broken relation: which invariant, and what in the report breaks it."""

    invariant: str
    message: str

    def __str__(self) -> str:
        return f"{self.invariant}: {self.message}"


def _num(value: Any) -> float | None:
    return finite(value)


def _interval(value: Any) -> tuple[float, float] | None:
    if isinstance(value, (list, tuple)) and len(value) == 2:
        lo, hi = _num(value[0]), _num(value[1])
        if lo is not None and hi is not None:
            return lo, hi
    return None


def _fixed_prior(report: Report) -> bool:
    """The KL is to a prior that does not depend on x (N(0, I)): only then is MI <= KL.

    A learned prior may be conditional (p(z_t | z_<t, x) in a VRNN): KL to it is not
    bounded below by I(x; z), so the relation is not checked there.
    """
    return not report.provenance.get(P.has_prior)


def _mi_exceeds_kl(mi: Any, ci: Any, kl: Any) -> str | None:
    """``None`` when MI <= KL holds up to the MI interval, else why not.

    The bootstrap interval of the MI resamples inputs with the mixture components held
    fixed, so it understates the estimator's spread; the estimate counts as above KL
    only when the interval's lower end exceeds KL by more than the interval's
    half-width (and by more than rounding). Without an interval the point estimate is
    compared with a rounding margin only.
    """
    mi, kl = _num(mi), _num(kl)
    if mi is None or kl is None:
        return None
    bounds = _interval(ci)
    lo, slack = (bounds[0], (bounds[1] - bounds[0]) / 2) if bounds else (mi, 0.0)
    if lo > kl + slack + ROUNDING_NATS:
        return f"MI {mi:.4g} nats (interval from {lo:.4g}) exceeds KL {kl:.4g} nats"
    return None


def mi_within_kl(report: Report) -> list[str]:
    """I(x; z) <= mean KL overall and I(x; z_d) <= KL_d per dimension (fixed prior)."""
    if not _fixed_prior(report):
        return []
    s = report.summary
    out = []
    problem = _mi_exceeds_kl(s.get(S.mutual_information), s.get(S.mutual_information_ci),
                             s.get(S.kl))
    if problem:
        out.append(f"summary: {problem}")
    for row in report.dimensions:
        problem = _mi_exceeds_kl(row.get(D.mutual_information),
                                 row.get(D.mutual_information_ci), row.get(D.kl))
        if problem:
            out.append(f"z{row.get(D.index)}: {problem}")
    return out


def negative_estimates_flagged(report: Report) -> list[str]:
    """A negative MI estimate is flagged (``mi_negative`` / ``mi_indistinguishable_from_zero``)."""
    s = report.summary
    out = []
    mi = _num(s.get(S.mutual_information))
    if mi is not None and mi < 0 and not s.get(S.mi_negative):
        out.append(f"summary MI {mi:.3g} nats is negative but `mi_negative` is not set")
    for row in report.dimensions:
        value = _num(row.get(D.mutual_information))
        if value is None or value >= 0:
            continue
        flag = row.get(D.mi_indistinguishable_from_zero)
        # without an interval (mi_bootstrap = 0) the writers show any negative value as ~0
        if flag is False:
            out.append(f"z{row.get(D.index)}: MI {value:.3g} nats is negative but its interval "
                       "is said not to reach 0")
    return out


def coordinates(report: Report) -> int:
    """Latent coordinates: D, or T x D for a sequential latent (z of shape [B, T, D])."""
    steps = report.provenance.get(P.latent_steps)
    return report.latent_dim * (int(steps) if isinstance(steps, int) and steps > 0 else 1)


def ranks_within_dimensions(report: Report) -> list[str]:
    """Counts of dimensions <= D; Fisher rank <= its eigenvalues <= latent coordinates."""
    s, d = report.summary, report.latent_dim
    out = []
    for key in (S.active_units, S.collapsed_units):
        value = _num(s.get(key))
        if value is not None and not 0 <= value <= d:
            out.append(f"`{key}` = {value:g} is not within 0..{d}")
    rank, eigs = _num(s.get(S.identifiable_dims)), s.get(S.fisher_eigenvalues)
    limit = coordinates(report)
    if isinstance(eigs, list):
        if len(eigs) > limit:
            out.append(f"{len(eigs)} Fisher eigenvalues for {limit} latent coordinates")
        limit = min(limit, len(eigs))
    if rank is not None and not 0 <= rank <= limit:
        out.append(f"Fisher rank {rank:g} is not within 0..{limit}")
    return out


def status_counts_match_rows(report: Report) -> list[str]:
    """``status_counts`` sums to D and equals the count of each status over the rows."""
    counts = report.summary.get(S.status_counts)
    if not isinstance(counts, dict):
        return []
    statuses = [row.get(D.status) for row in report.dimensions]
    out = []
    total = sum(int(v) for v in counts.values() if _num(v) is not None)
    if total != report.latent_dim:
        out.append(f"status counts sum to {total}, not to D = {report.latent_dim}")
    for name in set(counts) | {s for s in statuses if s is not None}:
        rows = statuses.count(name)
        if int(counts.get(name) or 0) != rows:
            out.append(f"`status_counts` says {counts.get(name) or 0} {name}, the rows {rows}")
    unknown = sorted({s for s in statuses if s is not None} - set(STATUSES))
    if unknown:
        out.append(f"unknown statuses {unknown}")
    return out


def verdict_matches_statuses(report: Report) -> list[str]:
    """``healthy`` only when every dimension is used; never ``collapsed`` with a used one."""
    verdict = report.summary.get(S.verdict)
    statuses = [row.get(D.status) for row in report.dimensions]
    if verdict is None or not statuses or None in statuses:
        return []
    used = statuses.count("used")
    if verdict == "healthy" and used != len(statuses):
        return [f"verdict healthy with {len(statuses) - used} of {len(statuses)} dimensions "
                "not used"]
    if verdict == "collapsed" and used:
        return [f"verdict collapsed while {used} dimension(s) are used"]
    return []


#: Statuses each cause may stand beside (rule: collapse_diag/diagnostics/cause.py).
CAUSE_STATUSES = {
    "inference": ("collapsed", "uninformative"),
    "model": ("collapsed", "uninformative"),
    "decoder": ("ignored",),
    "objective": ("used",),
    "none": ("used",),
}
_UNUSED = ("collapsed", "ignored", "uninformative")


def causes_match_statuses(report: Report) -> list[str]:
    """Each dimension's cause fits its status; the model's cause is one its dimensions have.

    ``partial`` needs some dimension shown unused and some used; ``undetermined`` is
    neither that nor every dimension used (the verdict rule of docs/statuses.md).
    """
    out = []
    causes = [row.get(D.cause) for row in report.dimensions]
    statuses = [row.get(D.status) for row in report.dimensions]
    for d, (cause, status) in enumerate(zip(causes, statuses)):
        if cause in CAUSE_STATUSES and status is not None and status not in CAUSE_STATUSES[cause]:
            out.append(f"z{d} has cause {cause} beside status {status}")
    model = report.summary.get(S.collapse_cause)
    decided = {c for c in causes if c not in (None, "none", "undetermined")}
    if model in CAUSE_STATUSES and model != "none" and model not in decided:
        out.append(f"collapse_cause {model} while no dimension has that cause")
    verdict = report.summary.get(S.verdict)
    if None not in statuses and statuses:
        unused = sum(s in _UNUSED for s in statuses)
        if verdict == "partial" and not (unused and "used" in statuses):
            out.append("verdict partial without both a used and an unused dimension")
        used = statuses.count("used")
        if verdict == "undetermined" and ((unused and used) or used == len(statuses)):
            out.append(f"verdict undetermined with {used} used and {unused} unused of "
                       f"{len(statuses)} dimensions (partial or healthy)")
    return out


def discrete_figures_agree(report: Report) -> list[str]:
    """Discrete latents: the exact MI, the perplexity, the code counts and the verdict agree.

    The exact MI is within its ceiling; the perplexity is at most the codes used; used +
    dead = K; ``codebook collapse`` stands only beside ``codebook_collapse`` true
    (collapse_diag/diagnostics/codebook.py).
    """
    s, out = report.summary, []
    mi, ceiling = _num(s.get(S.discrete_mi)), _num(s.get(S.discrete_mi_ceiling))
    if mi is not None and ceiling is not None and mi > ceiling + ROUNDING_NATS:
        out.append(f"exact MI {mi:.6g} nats above its ceiling {ceiling:.6g}")
    perplexity, used = _num(s.get(S.codebook_perplexity)), _num(s.get(S.codebook_used))
    if perplexity is not None and used is not None and perplexity > used * (1 + 1e-9):
        out.append(f"codebook perplexity {perplexity:.6g} above the {used:g} codes used")
    counts, dead = s.get(S.codebook_counts), _num(s.get(S.codebook_dead))
    if isinstance(counts, list) and used is not None and dead is not None \
            and used + dead != len(counts):
        out.append(f"{used:g} used + {dead:g} dead codes is not K = {len(counts)}")
    if s.get(S.verdict) == "codebook collapse" and s.get(S.codebook_collapse) is not True:
        out.append("verdict codebook collapse while `codebook_collapse` is not true")
    return out


def decoded_figures_agree(report: Report) -> list[str]:
    """The decoded outputs' figures tell one story (collapse_diag/diagnostics/decoded_outputs.py).

    Token outputs: each decode's share of changed tokens is in [0, 1] and 0 for a decode
    equal to the reference, so 0 <= ``output_diversity`` <= ``differ_fraction`` <= 1.
    Continuous outputs: the variance ratio is >= 0. Without ``generate``
    (``output_kind`` ``unavailable``) no decoded figure is reported.
    """
    summary = report.summary
    kind = summary.get(S.output_kind)
    diversity, differ = _num(summary.get(S.output_diversity)), _num(summary.get(S.differ_fraction))
    if kind == "unavailable":
        given = [key for key in (S.output_diversity, S.differ_fraction, S.decoded_views)
                 if summary.get(key) is not None]
        return [f"output_kind unavailable beside {', '.join(given)}"] if given else []
    out = []
    if diversity is not None and diversity < 0:
        out.append(f"output_diversity {diversity:.4g} < 0")
    if kind == "tokens" and diversity is not None and differ is not None and not (
            diversity <= differ + ROUNDING_NATS and differ <= 1):
        out.append(f"output_diversity {diversity:.4g} (share of tokens that change) above "
                   f"differ_fraction {differ:.4g} (share of decodes that change), or that above 1")
    return out


def nll_still_falling(report: Report) -> bool:
    """The NLL bound still falls between the last two sample counts by more than 2 SE.

    The bound with K' draws decreases towards -log p(x) as K' grows (Burda et al.
    2016); a drop over the last decade larger than twice its standard error says K was
    not enough to read the figure as the NLL (it is an upper bound still moving).
    A report with ``nll_converged`` (K decided by the curve) is read from that field:
    ``false`` means the budget stopped the doubling while the bound still moved.
    """
    converged = report.summary.get(S.nll_converged)
    if isinstance(converged, bool):  # the doubling rule's own decision (likelihood.py)
        return not converged
    curve = report.summary.get(S.nll_convergence)
    if not isinstance(curve, dict):
        return False
    nll = [_num(v) for v in curve.get(NC.nll) or []]
    se = [_num(v) for v in curve.get(NC.nll_se) or []]
    if len(nll) < 2 or nll[-1] is None or nll[-2] is None:
        return False
    tol = 2 * (se[-1] if len(se) == len(nll) and se[-1] is not None else 0.0)
    return nll[-2] - nll[-1] > max(tol, ROUNDING_NATS)


#: Invariant name -> check of one report. Add a relation here and every caller runs it.
REPORT_INVARIANTS: dict[str, Callable[[Report], list[str]]] = {
    "mi_within_kl": mi_within_kl,
    "negative_estimates_flagged": negative_estimates_flagged,
    "ranks_within_dimensions": ranks_within_dimensions,
    "status_counts_match_rows": status_counts_match_rows,
    "verdict_matches_statuses": verdict_matches_statuses,
    "causes_match_statuses": causes_match_statuses,
    "discrete_figures_agree": discrete_figures_agree,
    "decoded_figures_agree": decoded_figures_agree,
}


def check_report(report: Report, invariants: Mapping[str, Callable[[Report], list[str]]]
                 = REPORT_INVARIANTS) -> list[Violation]:
    """Run every invariant on ``report``; the violations, in declaration order."""
    return [Violation(name, message) for name, check in invariants.items()
            for message in check(report)]


# --- trajectories (trajectory.json's dict; collapse_diag/runs/trajectory.py) ---------------
# A row's "summary" and "dimensions" are those of the report it was read from (T.summary, ...).


def _rows(trajectory: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return list(trajectory.get("rows") or [])


def trajectory_verdict_events_match_rows(trajectory: Mapping[str, Any]) -> list[str]:
    """The verdict events name steps whose rows have those verdicts."""
    rows, events = _rows(trajectory), trajectory.get("events") or {}
    verdicts = {int(r["step"]): (r.get(T.summary) or {}).get(S.verdict) for r in rows}
    out = []
    step = events.get("verdict_collapsed_step")
    if step is not None and verdicts.get(int(step)) != "collapsed":
        out.append(f"verdict said collapsed at step {step}, where the row's verdict is "
                   f"{verdicts.get(int(step))}")
    first = next((s for s in sorted(verdicts) if verdicts[s] == "collapsed"), None)
    if first != step:
        out.append(f"the first row with verdict collapsed is step {first}, the event says {step}")
    for change in events.get("verdict_changes") or []:
        if verdicts.get(int(change["step"])) != change["to"]:
            out.append(f"verdict change to {change['to']} at step {change['step']}, where the "
                       f"row says {verdicts.get(int(change['step']))}")
    return out


def trajectory_collapse_events_match_rows(trajectory: Mapping[str, Any]) -> list[str]:
    """Each dimension's collapse step: KL below ``kl_eps`` at every row from it to the last."""
    rows, events = _rows(trajectory), trajectory.get("events") or {}
    kl_eps = float((trajectory.get(T.settings) or {}).get("kl_eps", 0.01))
    out = []
    for d, step in enumerate(events.get("dimension_collapse_steps") or []):
        kls = [(int(r["step"]), _num(((r.get(T.dimensions) or [])[d:d + 1] or [{}])[0]
                                    .get(D.kl))) for r in rows]
        kls = [(s, v) for s, v in kls if v is not None]
        if step is None:
            if kls and kls[-1][1] < kl_eps:
                out.append(f"z{d} is collapsed at the last step but has no collapse step")
            continue
        after = [v for s, v in kls if s >= int(step)]
        if not after or any(v >= kl_eps for v in after):
            out.append(f"z{d} said collapsed from step {step}, but its KL is not below "
                       f"{kl_eps:g} at every analysed step from there")
    return out


#: Invariant name -> check of one trajectory dict.
TRAJECTORY_INVARIANTS: dict[str, Callable[[Mapping[str, Any]], list[str]]] = {
    "trajectory_verdict_events_match_rows": trajectory_verdict_events_match_rows,
    "trajectory_collapse_events_match_rows": trajectory_collapse_events_match_rows,
}


def check_trajectory(trajectory: Mapping[str, Any]) -> list[Violation]:
    """Run every trajectory invariant; the violations, in declaration order."""
    return [Violation(name, message) for name, check in TRAJECTORY_INVARIANTS.items()
            for message in check(trajectory)]


# --- plots: a caption names only marks its figure draws -------------------------------------

#: Words a caption uses for a mark -> the mark's name in :func:`caption_marks_drawn`'s ``drawn``.
MARK_WORDS = {"dashed": "dashed", "dotted": "dotted"}


def caption_marks_drawn(caption: str, drawn: Iterable[str]) -> list[str]:
    """Marks ``caption`` names (e.g. "the dashed line") that are not in ``drawn``.

    Args:
        caption: The plot's caption.
        drawn: Marks the drawn figure holds (``"dashed"`` / ``"dotted"`` lines).
    """
    have = set(drawn)
    named = {mark for word, mark in MARK_WORDS.items()
             if re.search(rf"\b{word}\b", caption, flags=re.IGNORECASE)}
    return [f"the caption names a {mark} line the figure does not draw"
            for mark in sorted(named - have)]

