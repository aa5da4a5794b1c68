"""Active units: does the posterior mean of each latent dimension depend on x?

Two ways the signal from x to z can die:

- **weak**: mu_d(x) stops depending on x (``mu_variance`` ~ 0) and the
  posterior equals the prior; the KL of the dimension is ~0 as well.
- **noisy**: mu_d(x) still varies, but the posterior variance sigma_d^2(x) is
  large relative to that spread (``posterior_variance >> mu_variance``), so a
  sampled z_d says little about x even though the unit counts as active.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from collapse_diag.diagnostics.spec import (
    DiagnosticSpec,
    DimensionColumn,
    PlotRef,
    RunContext,
    SummaryRow,
)
from collapse_diag.exceptions import DiagnosticError
from collapse_diag.model.encodings import Encodings
from collapse_diag.report.headlines import label
from collapse_diag.report.report import ReportSection
from collapse_diag.report.schema import DIMENSION_KEY as DK
from collapse_diag.report.schema import SUMMARY_KEY as SK

__all__ = ["ActivityResult", "NOISY_SNR", "SIGNALS", "SPEC", "activity_diagnostic",
           "activity_result", "signal_class"]

#: Values of the per-dimension ``signal`` field, in display order.
SIGNALS = ("clear", "noisy", "weak")
#: A dimension is *noisy* when Var_x[mu_d] / E_x[sigma_d^2] is below this.
NOISY_SNR = 1.0


def signal_class(mu_variance: np.ndarray, posterior_variance: np.ndarray,
                 threshold: float) -> np.ndarray:
    """``weak`` / ``noisy`` / ``clear`` per dimension (rule in the module docstring).

    Args:
        mu_variance: Var_x[mu_d(x)], shape ``(D,)``.
        posterior_variance: E_x[sigma_d^2(x)], shape ``(D,)``.
        threshold: The activity threshold (``Settings.active_threshold``).

    Returns:
        String array of shape ``(D,)``.
    """
    mv = np.asarray(mu_variance, dtype=np.float64)
    pv = np.asarray(posterior_variance, dtype=np.float64)
    return np.where(mv < threshold, "weak", np.where(mv < NOISY_SNR * pv, "noisy", "clear"))


def _rows(by_step: np.ndarray | None, dim: int) -> list:
    return [None] * dim if by_step is None else by_step.tolist()


@dataclass(frozen=True)
class ActivityResult:
    """Result of :func:`activity_diagnostic`.

    Attributes:
        mu_variance: Var_x[mu_d(x)], population variance (``ddof=0``), shape ``(D,)``.
        posterior_variance: E_x[exp(logvar_d(x))], shape ``(D,)``.
        active: ``mu_variance >= threshold``, shape ``(D,)``, bool.
        active_units: Number of active dimensions.
        threshold: The activity threshold used.
        signal: ``weak`` / ``noisy`` / ``clear`` per dimension (:func:`signal_class`).
        mu_variance_by_step: Sequential latents only: Var_x[mu_{t,d}(x)] over the inputs
            valid at step t, ``(D, T)`` (NaN at a step no input reaches); else ``None``.
        posterior_variance_by_step: E_x[sigma_{t,d}^2(x)] likewise, ``(D, T)``, or ``None``.
    """

    mu_variance: np.ndarray
    posterior_variance: np.ndarray
    active: np.ndarray
    active_units: int
    threshold: float
    signal: np.ndarray
    mu_variance_by_step: np.ndarray | None = None
    posterior_variance_by_step: np.ndarray | None = None

    @property
    def signal_counts(self) -> dict[str, int]:
        """Dimensions per ``signal`` value (every value present)."""
        return {name: int(np.sum(self.signal == name)) for name in SIGNALS}

    def section(self) -> ReportSection:
        """Fields for report.json: ``active_units``, ``signal_counts``, per-dimension columns."""
        return ReportSection(
            summary={SK.active_units: self.active_units, SK.signal_counts: self.signal_counts},
            dimensions={
                DK.mu_variance: self.mu_variance.tolist(),
                DK.posterior_variance: self.posterior_variance.tolist(),
                DK.active: self.active.tolist(),
                DK.signal: [str(v) for v in self.signal],
                DK.mu_variance_by_step: _rows(self.mu_variance_by_step, len(self.active)),
                DK.posterior_variance_by_step: _rows(self.posterior_variance_by_step,
                                                     len(self.active)),
            },
        )


def activity_diagnostic(encodings: Encodings, threshold: float = 0.01) -> ActivityResult:
    """Active units (Burda, Grosse & Salakhutdinov 2015, "Importance Weighted Autoencoders").

    Formula: ``A_d = Var_x[E_{q(z|x)} z_d] = Var_x[mu_d(x)]``; dimension d is
    *active* when ``A_d >= threshold`` (0.01 in the paper and by default). The
    variance is the population variance over the N analysed inputs (``ddof=0``),
    computed after shifting by the first input so that a constant mu gives exactly 0.
    ``posterior_variance[d] = E_x[exp(logvar_d(x))]`` is reported next to it:
    a *weak* dimension has small ``mu_variance`` and a posterior close to the
    prior; a *noisy* one has ``posterior_variance`` large relative to ``mu_variance``.

    Args:
        encodings: Encoder outputs; ``mu`` and ``logvar`` of shape ``(N, D)``.
        threshold: Activity threshold (``Settings.active_threshold``).

    Returns:
        An :class:`ActivityResult`.

    Raises:
        DiagnosticError: there are no inputs.
    """
    if encodings.n_examples < 1:
        raise DiagnosticError("the activity diagnostic needs at least one input; got none.")
    mu = np.asarray(encodings.mu, dtype=np.float64)
    logvar = np.asarray(encodings.logvar, dtype=np.float64)
    if encodings.sequential:
        return _sequence_activity(mu, logvar, encodings.valid(), threshold)
    # Shifting by the first input changes nothing mathematically; a constant mu gives exactly 0.
    mu_variance = (mu - mu[:1]).var(axis=0, ddof=0)
    posterior_variance = np.exp(logvar).mean(axis=0)
    return activity_result(mu_variance, posterior_variance, threshold)


def activity_result(mu_variance: np.ndarray, posterior_variance: np.ndarray,
                    threshold: float, **by_step: np.ndarray) -> ActivityResult:
    """The :class:`ActivityResult` of these variances: activity, count and signal class."""
    active = mu_variance >= threshold
    return ActivityResult(
        mu_variance=mu_variance,
        posterior_variance=posterior_variance,
        active=active,
        active_units=int(active.sum()),
        threshold=float(threshold),
        signal=signal_class(mu_variance, posterior_variance, threshold),
        **by_step,
    )


def _sequence_activity(mu: np.ndarray, logvar: np.ndarray, valid: np.ndarray,
                       threshold: float) -> ActivityResult:
    """:class:`ActivityResult` for sequential latents ``(N, T, D)`` with the mask ``(N, T)``.

    Per step t, over the n_t inputs valid there: ``V_{t,d} = Var_x[mu_{t,d}(x)]``
    (population variance, shifted by the step's mean) and ``S_{t,d} = E_x[sigma_{t,d}^2]``.
    Pooled over steps (what ``active`` and ``signal`` use)::

        mu_variance[d] = sum_t n_t V_{t,d} / sum_t n_t     (within-step variance: how much
                                                            mu depends on x, not on t)
        posterior_variance[d] = mean over valid (x, t) of sigma_{t,d}^2

    A dimension used on half of the steps and equal to the prior on the others has
    about half the ``mu_variance`` and half-prior ``posterior_variance``; the per-step
    arrays show which steps carry it.
    """
    w = valid[:, :, None].astype(np.float64)
    count = w.sum(axis=0)  # (T, 1)
    safe = np.maximum(count, 1.0)
    # shift by the first valid input of each step: a constant mu gives exactly 0
    mu = mu - mu[valid.argmax(axis=0), np.arange(mu.shape[1])][None]
    mean = (mu * w).sum(axis=0) / safe
    var_t = (np.square(mu - mean) * w).sum(axis=0) / safe  # (T, D)
    post_t = (np.exp(logvar) * w).sum(axis=0) / safe
    reached = count > 0
    mu_variance = (var_t * count).sum(axis=0) / count.sum()
    posterior_variance = post_t[reached[:, 0]].T @ count[reached[:, 0], 0] / count.sum()
    return activity_result(mu_variance, posterior_variance, threshold,
                   mu_variance_by_step=np.where(reached, var_t, np.nan).T,
                   posterior_variance_by_step=np.where(reached, post_t, np.nan).T)


def _run(context: RunContext) -> ActivityResult:
    return activity_diagnostic(context.encodings, threshold=context.settings.active_threshold)


SPEC = DiagnosticSpec(
    name="activity",
    min_inputs=2,
    run=_run,
    settings=("active_threshold",),
    summary_rows=(
        SummaryRow(SK.active_units, "active units (Var mu >= active_threshold)", "of_dims",
                   terminal=label(SK.active_units)),
        SummaryRow(SK.signal_counts, "signal (clear / noisy / weak)", "counts"),
    ),
    columns=(
        DimensionColumn(DK.signal, "signal", "text", terminal=True, group="encoder"),
        DimensionColumn(DK.mu_variance, "Var mu(x)", "num", terminal=True, overview=True,
                        group="encoder"),
        DimensionColumn(DK.posterior_variance, "E sigma²(x)", "num", terminal=True,
                        overview=True, group="encoder"),
    ),
    plots=(
        PlotRef("activity", "Activity map",
                "One point per dimension: how far mu(x) moves across inputs (x) against the "
                "mean posterior variance (y). Left of the dashed line the signal is too weak "
                "(mu(x) barely moves); above the dotted diagonal it is too noisy (sigma² "
                "exceeds the spread of mu).",
                "collapse_diag.render.plots_activity:plot_activity"),
    ),
    explanation=("collapse_diag.render.dimension_text:signal_text",),
)
