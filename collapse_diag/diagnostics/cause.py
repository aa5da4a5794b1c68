"""Why a dimension is unused: the cause per dimension and for the model (docs/statuses.md).

Inputs, per dimension d, on the M refined inputs: the encoder's KL_d(x) =
KL(q_phi(z_d|x) || p(z_d)) and the refined posterior's KL*_d(x) = KL(q*(z_d|x) || p(z_d))
(diagnostics/refinement.py), each with its Student-t interval over inputs at the
error ``alpha / D`` (simultaneous over the D dimensions); the status of d
(diagnostics/verdict.py); and, when identifiability ran, whether the Fisher
information shows the decoder reads d. With eps = ``kl_eps``:

* "q* wants d":   lower end of KL*_d's interval > eps;
* "q* at prior":  upper end of KL*_d's interval < eps.

=================  ===========================================  ===========================
cause              rule                                         reading
=================  ===========================================  ===========================
``inference``      status collapsed / uninformative, q* wants d  the encoder lags (He et al.)
``model``          status collapsed / uninformative, q* at the  non-identifiable (Wang et al.
                   prior, and the Fisher information does not    2021): no encoder can help
                   show the decoder reads d
``decoder``        status ignored, q* does not want d            the encoder writes x into d,
                                                                the decoder ignores it
``objective``      status used, and the interval of KL_d -       the encoder carries much more
                   ratio * KL*_d lies above eps (ratio =         than the decoder's posterior
                   ``objective_kl_ratio``)                       wants (free bits, a KL floor)
``none``           status used otherwise                         healthy
``undetermined``   anything else (status undetermined, or the    the intervals do not decide
                   intervals between the two cut-offs)
=================  ===========================================  ===========================

The model's ``collapse_cause``: the one cause other than ``none`` and
``undetermined`` that some dimension has; ``mixed`` when there are several; else
``undetermined`` when some dimension's cause is, else ``none``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from collapse_diag.diagnostics.estimators.swap_decision import t_interval
from collapse_diag.report.schema import CAUSES

__all__ = ["CauseResult", "causes_from_intervals", "decide_causes", "model_cause"]

#: Statuses that say the dimension carries nothing about x.
_EMPTY = ("collapsed", "uninformative")


@dataclass(frozen=True)
class CauseResult:
    """Cause per dimension, the model's cause, and the intervals they were read from.

    Attributes:
        cause: One of :data:`~collapse_diag.report.schema.CAUSES` per dimension.
        collapse_cause: The model's cause (``mixed`` when several are decided).
        counts: Cause -> number of dimensions (every cause present).
        kl_refined: Mean KL*_d over inputs, ``(D,)``.
        kl_refined_ci: Its interval, ``(D, 2)``.
        kl_encoder: Mean KL_d over the same inputs, ``(D,)``.
        excess_low: Lower end of the interval of KL_d - ratio * KL*_d, ``(D,)`` (the
            ``objective`` evidence; stored so the causes can be re-derived at another
            ``kl_eps`` without the model: collapse_diag/runs/rethreshold.py).
    """

    cause: tuple[str, ...]
    collapse_cause: str
    counts: dict[str, int]
    kl_refined: np.ndarray
    kl_refined_ci: np.ndarray
    kl_encoder: np.ndarray
    excess_low: np.ndarray | None = None


def _cause(status: str, wants: bool, at_prior: bool, fisher_reads: bool,
           objective: bool) -> str:
    """The rule of the module table for one dimension."""
    if status in _EMPTY:
        if wants:
            return "inference"
        return "model" if at_prior and not fisher_reads else "undetermined"
    if status == "ignored":
        return "undetermined" if wants else "decoder"
    if status == "used":
        return "objective" if objective else "none"
    return "undetermined"


def model_cause(causes: tuple[str, ...] | list[str]) -> str:
    """The model's cause from the dimensions' (module docstring)."""
    decided = sorted({c for c in causes if c not in ("none", "undetermined")})
    if len(decided) > 1:
        return "mixed"
    if decided:
        return decided[0]
    return "undetermined" if "undetermined" in causes else "none"


def decide_causes(status: tuple[str, ...] | list[str], kl_refined: np.ndarray,
                  kl_encoder: np.ndarray, fisher_used: np.ndarray | None, kl_eps: float,
                  ratio: float, alpha: float) -> CauseResult:
    """A cause per dimension (module table) and for the model.

    Args:
        status: The verdict's status per dimension, length D.
        kl_refined: KL(q*(z_d|x) || p(z_d)) per refined input, ``(M, D)``.
        kl_encoder: KL(q_phi(z_d|x) || p(z_d)) on the same inputs, ``(M, D)``.
        fisher_used: Per dimension, the Fisher lower bound reaches its cut-off (the
            verdict's ``fisher_used``); ``None`` when identifiability did not run.
        kl_eps: The collapse cut-off (nats).
        ratio: ``Settings.objective_kl_ratio``.
        alpha: Family-wise error of the D intervals.

    Returns:
        A :class:`CauseResult`.
    """
    kl_refined = np.asarray(kl_refined, dtype=np.float64)
    kl_encoder = np.asarray(kl_encoder, dtype=np.float64)
    dim = kl_refined.shape[1]
    error = alpha / max(dim, 1)
    means, cis, excess_low = np.empty(dim), np.empty((dim, 2)), np.empty(dim)
    for d in range(dim):
        means[d], _, low, high = t_interval(kl_refined[:, d], error)
        cis[d] = (low, high)
        excess_low[d] = t_interval(kl_encoder[:, d] - ratio * kl_refined[:, d], error)[2]
    causes = causes_from_intervals(status, cis, excess_low, fisher_used, kl_eps)
    return CauseResult(
        cause=causes,
        collapse_cause=model_cause(causes),
        counts={c: causes.count(c) for c in CAUSES},
        kl_refined=means,
        kl_refined_ci=cis,
        kl_encoder=kl_encoder.mean(axis=0),
        excess_low=excess_low,
    )


def causes_from_intervals(status: tuple[str, ...] | list[str], kl_refined_ci: np.ndarray,
                          excess_low: np.ndarray, fisher_used: np.ndarray | None,
                          kl_eps: float) -> tuple[str, ...]:
    """The module table applied to the intervals: a cause per dimension.

    Args:
        status: The verdict's status per dimension, length D.
        kl_refined_ci: The interval of KL*_d, ``(D, 2)``.
        excess_low: The lower end of the interval of KL_d - ratio * KL*_d, ``(D,)``.
        fisher_used: The verdict's Fisher evidence per dimension, or ``None``.
        kl_eps: The collapse cut-off (nats).
    """
    ci = np.asarray(kl_refined_ci, dtype=np.float64).reshape(len(status), 2)
    reads = (np.zeros(len(status), bool) if fisher_used is None
             else np.asarray(fisher_used, bool))
    return tuple(_cause(str(s), ci[d, 0] > kl_eps, ci[d, 1] < kl_eps, bool(reads[d]),
                        float(excess_low[d]) > kl_eps) for d, s in enumerate(status))
