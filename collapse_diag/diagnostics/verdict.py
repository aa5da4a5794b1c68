"""Per-dimension status and the overall verdict (rules and thresholds: docs/statuses.md).

Status of dimension d, in this order::

    collapsed      mean KL_d < kl_eps                         (posterior = prior: no information)
    uninformative  not collapsed, Var_x[mu_d] < active_threshold   (KL spent on marginal mismatch)
    active         informative and the decoder uses d
    ignored        informative and the decoder does not use d

"The decoder uses d" is either of

* the per-dimension swap test rejects: Holm-adjusted one-sided Wilcoxon p-value
  of the per-dimension swap deltas < ``alpha`` (Holm 1979, family-wise error over
  the D dimensions; the test accounts for the subsample size);
* the Fisher information of z_d is clearly above noise:
  ``fisher_d >= max(fisher_rank_rtol * max_d' fisher_d', fisher_rank_atol)`` and > 0,
  the cutoff ``identifiable_dims`` applies to the eigenvalues.

A decoder that reads z_d with zero weight gives swap deltas of exactly 0
(p = 1) and Fisher exactly 0, so it fails both.

Verdict, judged on the whole-vector evidence:

* ``collapsed`` when no dimension is informative (all collapsed or
  uninformative), or the decoder ignores z as a whole: the whole-vector swap
  test is not significant (p >= alpha);
* ``healthy`` when every dimension is active;
* ``partial`` otherwise (e.g. dimensions each carrying a little information that
  the decoder uses only jointly: whole-vector swap significant, per-dimension
  tests not).

Missing decoder-side results (a diagnostic failed or was disabled): decoder use
is judged from what is there (Fisher alone, or the per-dimension swap alone);
without sensitivity, "the decoder ignores z as a whole" becomes
``identifiable_dims == 0``; with neither, informative dimensions count as active
and the reason says decoder use was not checked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from collapse_diag.report import ReportSection
from collapse_diag.settings import Settings

if TYPE_CHECKING:
    from collapse_diag.diagnostics.activity import ActivityResult
    from collapse_diag.diagnostics.identifiability import IdentifiabilityResult
    from collapse_diag.diagnostics.kl import KLResult
    from collapse_diag.diagnostics.sensitivity import SensitivityResult

__all__ = ["STATUSES", "VERDICTS", "VerdictResult", "decide_verdict", "holm"]

STATUSES = ("active", "collapsed", "uninformative", "ignored")
VERDICTS = ("healthy", "partial", "collapsed")


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
        verdict: ``healthy``, ``partial`` or ``collapsed``.
        verdict_reason: One sentence explaining the verdict.
        status_counts: Status -> number of dimensions (every status present).
        informative: Dimension not collapsed and mu_variance >= active_threshold, ``(D,)``.
        swap_used: Holm-adjusted per-dimension swap p-value < alpha, ``(D,)``.
        fisher_used: Fisher diagonal at or above its cutoff, ``(D,)``.
        swap_p_holm: Holm-adjusted per-dimension swap p-values (NaN when not computed).
        decoder_checked: Whether any decoder-side evidence was available.
    """

    status: tuple[str, ...]
    verdict: str
    verdict_reason: str
    status_counts: dict[str, int]
    informative: np.ndarray
    swap_used: np.ndarray
    fisher_used: np.ndarray
    swap_p_holm: np.ndarray
    decoder_checked: bool

    def section(self) -> ReportSection:
        """The report fields: verdict, reason, counts; ``status`` and ``swap_p_holm`` per dim."""
        return ReportSection(
            summary={
                "status_counts": dict(self.status_counts),
                "verdict": self.verdict,
                "verdict_reason": self.verdict_reason,
            },
            dimensions={"status": list(self.status),
                        "swap_p_holm": self.swap_p_holm.tolist()},
        )


def _fmt(value: float) -> str:
    return f"{value:.3g}"


def decide_verdict(
    kl: KLResult,
    activity: ActivityResult,
    sensitivity: SensitivityResult | None,
    identifiability: IdentifiabilityResult | None,
    settings: Settings,
) -> VerdictResult:
    """Give every dimension a status and the model a verdict (rules in the module docstring).

    Args:
        kl: Encoder KL result (uses ``collapsed`` and ``eps``).
        activity: Activity result (uses ``active`` and ``threshold``).
        sensitivity: Swap-test result, or ``None`` if it is missing.
        identifiability: Flatness / Fisher result, or ``None`` if it is missing.
        settings: Uses ``alpha``, ``fisher_rank_rtol``, ``fisher_rank_atol``.

    Returns:
        A :class:`VerdictResult`.
    """
    collapsed = np.asarray(kl.collapsed, dtype=bool)
    dim = len(collapsed)
    informative = ~collapsed & np.asarray(activity.active, dtype=bool)
    swap_p_holm = np.full(dim, np.nan)
    swap_used = np.zeros(dim, dtype=bool)
    fisher_used = np.zeros(dim, dtype=bool)
    if sensitivity is not None and sensitivity.per_dim_swap_examples > 0:
        swap_p_holm = holm(sensitivity.dim_p_values)
        swap_used = swap_p_holm < settings.alpha
    if identifiability is not None:
        fisher = np.asarray(identifiability.fisher, dtype=np.float64)
        largest = float(fisher.max()) if dim else 0.0
        cutoff = max(settings.fisher_rank_rtol * largest, settings.fisher_rank_atol)
        fisher_used = (fisher >= cutoff) & (fisher > 0)
    checked = sensitivity is not None or identifiability is not None
    used = swap_used | fisher_used if checked else np.ones(dim, dtype=bool)

    status = np.where(collapsed, "collapsed",
                      np.where(~informative, "uninformative",
                               np.where(used, "active", "ignored")))
    counts = {name: int(np.sum(status == name)) for name in STATUSES}
    verdict, reason = _verdict(counts, dim, kl, activity, sensitivity, identifiability,
                               settings)
    return VerdictResult(
        status=tuple(str(s) for s in status),
        verdict=verdict,
        verdict_reason=reason,
        status_counts=counts,
        informative=informative,
        swap_used=swap_used,
        fisher_used=fisher_used,
        swap_p_holm=swap_p_holm,
        decoder_checked=checked,
    )


def _verdict(
    counts: dict[str, int],
    dim: int,
    kl: KLResult,
    activity: ActivityResult,
    sensitivity: SensitivityResult | None,
    identifiability: IdentifiabilityResult | None,
    settings: Settings,
) -> tuple[str, str]:
    """The verdict and its one-sentence reason."""
    if counts["active"] + counts["ignored"] == 0:
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
        if not sensitivity.swap_significant:
            return "collapsed", (
                f"Collapsed: the decoder ignores z ({swap}, not significant at "
                f"alpha = {_fmt(settings.alpha)})."
            )
    elif identifiability is not None:
        swap = (f"the swap test is unavailable; the Fisher information of z has "
                f"{identifiability.identifiable_dims} identifiable direction(s)")
        if identifiability.identifiable_dims == 0:
            return "collapsed", f"Collapsed: the decoder ignores z ({swap})."
    else:
        swap = ("decoder use not checked: the sensitivity and identifiability diagnostics "
                "are unavailable")
    if counts["active"] == dim:
        return "healthy", (
            f"Healthy: all {dim} latent dimensions carry information and the decoder "
            f"uses each of them ({swap})."
        )
    others = ", ".join(f"{counts[s]} {s}" for s in ("collapsed", "uninformative", "ignored")
                       if counts[s])
    return "partial", (
        f"Partial: {counts['active']} of {dim} latent dimensions are active ({others}), "
        f"and the decoder uses z as a whole ({swap})."
    )
