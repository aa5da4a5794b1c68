"""KL(q(z|x) || p(z)) per input and per latent dimension: the rate term of the ELBO.

A dimension whose KL is (near) zero for every input carries no information
about x: its posterior is the prior. The functional form :func:`gaussian_kl`
is the one place the diagonal-Gaussian KL is written; other modules reuse it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

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
from collapse_diag.report.schema import DISTRIBUTION_KEY as PK
from collapse_diag.report.schema import SUMMARY_KEY as SK

__all__ = ["KLResult", "SPEC", "collapsed_dims", "gaussian_kl", "kl_diagnostic"]

#: Negative KL values smaller in magnitude than this are rounding, and are set to 0.
_ROUNDING = 1e-12


def gaussian_kl(
    mu_q: ArrayLike, logvar_q: ArrayLike, mu_p: ArrayLike, logvar_p: ArrayLike
) -> np.ndarray:
    """Elementwise KL(N(mu_q, exp(logvar_q)) || N(mu_p, exp(logvar_p))), in nats.

    Formula::

        KL = 0.5 * (logvar_p - logvar_q + (exp(logvar_q) + (mu_q - mu_p)^2) / exp(logvar_p) - 1)

    evaluated as ``0.5 * (t + expm1(-t) + (mu_q - mu_p)^2 * exp(-logvar_p))`` with
    ``t = logvar_p - logvar_q``. ``t + expm1(-t) >= 0`` has no ``1 - 1``
    cancellation, so identical distributions give exactly 0. Its rounding error
    can only make it negative when ``|t| < ~1e-15``, by less than ``1e-30``;
    such values (anything in ``(-1e-12, 0)``) are set to 0, so the result is
    never negative. Nothing else is clipped.

    Args:
        mu_q: Means of q, any shape broadcastable with the others, e.g. ``(N, D)``.
        logvar_q: Log-variances of q, broadcastable to the same shape.
        mu_p: Means of p (e.g. ``0`` for the standard prior), broadcastable.
        logvar_p: Log-variances of p, broadcastable.

    Returns:
        Float64 array of the broadcast shape: the KL of each coordinate.
    """
    mu_q, logvar_q, mu_p, logvar_p = (
        np.asarray(a, dtype=np.float64) for a in (mu_q, logvar_q, mu_p, logvar_p)
    )
    t = logvar_p - logvar_q
    kl = 0.5 * (t + np.expm1(-t) + np.square(mu_q - mu_p) * np.exp(-logvar_p))
    return np.where((kl < 0) & (kl > -_ROUNDING), 0.0, kl)


@dataclass(frozen=True)
class KLResult:
    """Result of :func:`kl_diagnostic`.

    Attributes:
        per_dimension: Mean over inputs of KL_d(x), shape ``(D,)``.
        collapse_rate: Fraction of inputs with KL_d(x) < ``eps``, shape ``(D,)``
            (the delta of (eps, delta)-collapse, Lucas et al. 2019).
        per_input: Total KL over dimensions for each input, shape ``(N,)``.
        total: Mean over inputs of the summed KL (the ELBO's rate term), nats.
        collapsed: ``per_dimension < eps``, shape ``(D,)``, bool.
        collapsed_units: Number of collapsed dimensions.
        eps: The threshold used, nats.
        by_step: Sequential latents only: masked mean over inputs of KL_{t,d}(x) per
            dimension and step, shape ``(D, T)`` (NaN at a step no input reaches);
            ``None`` for vector latents.
    """

    per_dimension: np.ndarray
    collapse_rate: np.ndarray
    per_input: np.ndarray
    total: float
    collapsed: np.ndarray
    collapsed_units: int
    eps: float
    by_step: np.ndarray | None = None

    def section(self) -> ReportSection:
        """Fields for report.json: ``kl``, ``collapsed_units``; per-dimension and per-input KL."""
        by_step = self.by_step
        return ReportSection(
            summary={SK.kl: self.total, SK.collapsed_units: self.collapsed_units,
                     SK.kl_by_step: None if by_step is None else by_step.sum(axis=0).tolist()},
            dimensions={
                DK.kl: self.per_dimension.tolist(),
                DK.kl_collapse_rate: self.collapse_rate.tolist(),
                DK.kl_by_step: ([None] * len(self.per_dimension) if by_step is None
                                else by_step.tolist()),
            },
            distributions={PK.kl_per_input: self.per_input.tolist()},
        )


def collapsed_dims(per_dimension: np.ndarray, eps: float) -> np.ndarray:
    """The collapse rule: mean KL_d below ``eps`` (``kl_eps``), ``(D,)`` bool."""
    return np.asarray(per_dimension, dtype=np.float64) < eps


def kl_diagnostic(encodings: Encodings, eps: float = 0.01) -> KLResult:
    """KL of each posterior from the prior, per input and per dimension.

    With ``KL_d(x) = KL(q(z_d|x) || p(z_d|x))`` (:func:`gaussian_kl`; the prior
    is N(0, I) unless the encodings carry a learned or conditional prior):

    - ``per_dimension[d] = mean_x KL_d(x)``; dimension d is *collapsed* when it is
      below ``eps``.
    - ``collapse_rate[d] = mean_x 1[KL_d(x) < eps]``: the (eps, delta)-collapse of
      Lucas, Tucker, Grosse & Norouzi (2019), "Don't blame the ELBO! A linear VAE
      perspective on posterior collapse": a dimension is (eps, delta)-collapsed
      when P_x(KL_d(x) < eps) >= delta.
    - ``total = mean_x sum_d KL_d(x)``.

    Args:
        encodings: Encoder outputs; ``mu`` and ``logvar`` of shape ``(N, D)``.
        eps: Collapse threshold in nats (``Settings.kl_eps``, default 0.01).

    Returns:
        A :class:`KLResult`.

    Raises:
        DiagnosticError: there are no inputs.
    """
    if encodings.n_examples < 1:
        raise DiagnosticError("the kl diagnostic needs at least one input; got none.")
    prior_mu, prior_logvar = encodings.prior()
    kl = gaussian_kl(encodings.mu, encodings.logvar, prior_mu, prior_logvar)
    if encodings.sequential:
        return _sequence_kl(kl, encodings.valid(), eps)
    per_dimension = kl.mean(axis=0)
    per_input = kl.sum(axis=1)
    collapsed = collapsed_dims(per_dimension, eps)
    return KLResult(
        per_dimension=per_dimension,
        collapse_rate=(kl < eps).mean(axis=0),
        per_input=per_input,
        total=float(per_input.mean()),
        collapsed=collapsed,
        collapsed_units=int(collapsed.sum()),
        eps=float(eps),
    )


def _sequence_kl(kl: np.ndarray, valid: np.ndarray, eps: float) -> KLResult:
    """:class:`KLResult` for sequential latents from KL_{t,d}(x) ``(N, T, D)`` and the mask.

    Invalid steps count 0. ``per_input = sum_{valid t, d} KL``; ``per_dimension[d] =
    mean_x sum_{valid t} KL_{t,d}(x)`` (so ``total = sum_d per_dimension``);
    ``collapse_rate[d]`` = fraction of valid (input, step) pairs with ``KL_{t,d} < eps``;
    ``by_step[d, t]`` = mean of KL_{t,d}(x) over the inputs valid at step t. With a
    conditional prior KL_{t,d} is the one-sample estimate at the posterior draw of
    ``encode_all``.
    """
    w = valid[:, :, None].astype(np.float64)
    kl = np.where(valid[:, :, None], kl, 0.0)
    per_input = kl.sum(axis=(1, 2))
    per_dimension = kl.sum(axis=1).mean(axis=0)
    count = w.sum(axis=0)  # (T, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        by_step = np.where(count > 0, kl.sum(axis=0) / count, np.nan).T  # (D, T)
    below = ((kl < eps) & valid[:, :, None]).sum(axis=(0, 1)) / max(int(valid.sum()), 1)
    collapsed = collapsed_dims(per_dimension, eps)
    return KLResult(
        per_dimension=per_dimension,
        collapse_rate=below,
        per_input=per_input,
        total=float(per_input.mean()),
        collapsed=collapsed,
        collapsed_units=int(collapsed.sum()),
        eps=float(eps),
        by_step=by_step,
    )


def _run(context: RunContext) -> KLResult:
    return kl_diagnostic(context.encodings, eps=context.settings.kl_eps)


SPEC = DiagnosticSpec(
    name="kl",
    run=_run,
    settings=("kl_eps",),
    summary_rows=(
        SummaryRow(SK.kl, "mean KL(q(z|x) || p(z))", "nats", terminal=label(SK.kl)),
        SummaryRow(SK.collapsed_units, "collapsed units (KL < kl_eps)", "of_dims"),
    ),
    columns=(
        DimensionColumn(DK.kl, "KL (nats)", "num", terminal=True, overview=True,
                        group="encoder"),
        DimensionColumn(DK.kl_collapse_rate, "collapse rate", "percent", terminal=True,
                        overview=True, group="encoder"),
    ),
    plots=(
        PlotRef("kl", "KL per dimension",
                "Mean KL(q(z_d|x) || p(z_d)) of each dimension, largest first, coloured by "
                "status. Bars under the dashed kl_eps line are collapsed: their posterior is "
                "the prior.",
                "collapse_diag.render.plots_kl:plot_kl"),
        PlotRef("kl_heatmap", "KL over dimensions and time steps",
                "Each cell is the mean KL of one latent dimension at one step, over the inputs "
                "valid at that step: dark columns are steps where z carries no information.",
                "collapse_diag.render.plots_sequence:plot_kl_heatmap", sequential=True),
        PlotRef("sequence_position", "KL and swap effect by position",
                "Top: KL summed over dimensions at each step. Bottom: how much worse each input "
                "is explained when the steps of one window come from another input's z (equal "
                "valid length); grey windows show no effect the test detects.",
                "collapse_diag.render.plots_sequence:plot_by_position", reads=("sensitivity",),
                sequential=True),
    ),
)
