"""Mutual information I_q(x; z) between the analysed inputs and the latent code.

The aggregate posterior is the mixture of the posteriors of the analysed set,
``q(z) = (1/M) sum_j q(z|x_j)``, and x is uniform over the same M inputs. Under
that joint, ``I_q(x; z) = E_x E_{z~q(z|x)} [log q(z|x) - log q(z)]``, which lies
in ``[0, log M]``. It is estimated by Monte Carlo over z; :func:`mi_terms` is
the estimator's core (no randomness; the log-densities come from GEMMs in
:mod:`~collapse_diag.diagnostics.estimators.mixture_density`), :func:`information_diagnostic`
draws the samples, the bootstrap intervals, and builds the result.

Hoffman & Johnson (2016), "ELBO surgery", split the mean KL to the prior into
``E_x KL(q(z|x) || p(z)) = I_q(x; z) + KL(q(z) || p(z))``: the rate the model
pays for information, and the rate it wastes on a marginal that misses the prior.
He et al. (2019), "Lagging inference networks and posterior collapse", use the
same aggregate-posterior MI to track collapse.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import ArrayLike

from collapse_diag.diagnostics.estimators.mixture_density import (
    CHUNK_BYTES,
    dimension_terms,
    full_terms,
)
from collapse_diag.diagnostics.estimators.statistics import resample_chunk, resample_counts
from collapse_diag.diagnostics.kl import gaussian_kl
from collapse_diag.diagnostics.spec import (
    DiagnosticSpec,
    DimensionColumn,
    PlotRef,
    RunContext,
    SummaryRow,
)
from collapse_diag.exceptions import DiagnosticError, invalid_parameter
from collapse_diag.model.encodings import Encodings
from collapse_diag.report.headlines import label
from collapse_diag.report.invariants import ROUNDING_NATS
from collapse_diag.report.report import ReportSection
from collapse_diag.report.schema import DIMENSION_KEY as D
from collapse_diag.report.schema import SUMMARY_KEY as S
from collapse_diag.runtime import distributed

__all__ = ["InformationResult", "information_diagnostic", "mi_from_samples", "mi_terms",
           "bootstrap_intervals", "trajectory_terms", "samples_per_input"]

#: An interval whose lower end is at most this many nats counts as reaching 0: the
#: estimator's rounding (identical posteriors give terms of ~1e-15), not a statistical margin.
ZERO_ATOL = ROUNDING_NATS


@dataclass(frozen=True)
class InformationResult:
    """Result of :func:`information_diagnostic`. All figures in nats.

    Attributes:
        mutual_information: Estimate of I_q(x; z); may be negative through Monte
            Carlo noise (reported as estimated, never clipped).
        per_dimension: Estimate of I_q(x; z_d) for each dimension, shape ``(D,)``.
        marginal_kl: ``mean_kl - mutual_information``: KL(q(z) || p(z)) for a
            fixed prior (Hoffman & Johnson 2016); with a learned or conditional
            prior this difference is the definition used.
        ceiling: ``log(n_used)``: no estimate can exceed it.
        n_used: M, the inputs used as mixture components and evaluation points.
        samples: z samples per input actually drawn (``mi_samples``, or fewer under
            ``max_queries``).
        saturated: ``mutual_information >= ceiling - saturation_margin``: the
            estimate is limited by M, not by the encoder.
        negative: ``mutual_information < 0``.
        mi_ci: Bootstrap interval ``(lo, hi)`` of the MI, or ``None`` (no bootstrap).
        per_dimension_ci: Intervals per dimension, shape ``(D, 2)``, or ``None``.
        marginal_kl_ci: Interval of the marginal KL, or ``None``.
        zero_like: The MI interval reaches 0 (``lo <= ZERO_ATOL``): no information
            about x that M inputs can detect. ``None`` without intervals.
        ceiling_like: The MI interval reaches the saturation zone
            (``hi >= ceiling - saturation_margin``): the estimate may be limited by M.
        per_dimension_zero_like: ``zero_like`` per dimension, shape ``(D,)``, or ``None``.
    """

    mutual_information: float
    per_dimension: np.ndarray
    marginal_kl: float
    ceiling: float
    n_used: int
    samples: int
    saturated: bool
    negative: bool
    mi_ci: tuple[float, float] | None = None
    per_dimension_ci: np.ndarray | None = None
    marginal_kl_ci: tuple[float, float] | None = None
    zero_like: bool | None = None
    ceiling_like: bool | None = None
    per_dimension_zero_like: np.ndarray | None = None

    def section(self) -> ReportSection:
        """Fields for report.json: the MI summary fields and the per-dimension MI columns."""
        dims = {D.mutual_information: self.per_dimension.tolist()}
        if self.per_dimension_ci is not None and self.per_dimension_zero_like is not None:
            dims[D.mutual_information_ci] = self.per_dimension_ci.tolist()
            dims[D.mi_indistinguishable_from_zero] = self.per_dimension_zero_like.tolist()
        return ReportSection(
            summary={
                S.mutual_information: self.mutual_information,
                S.marginal_kl: self.marginal_kl,
                S.mi_ceiling: self.ceiling,
                S.mi_examples: self.n_used,
                S.mi_samples_used: self.samples,
                S.mi_saturated: self.saturated,
                S.mi_negative: self.negative,
                S.mutual_information_ci: list(self.mi_ci) if self.mi_ci else None,
                S.marginal_kl_ci: list(self.marginal_kl_ci) if self.marginal_kl_ci else None,
                S.mi_indistinguishable_from_zero: self.zero_like,
                S.mi_indistinguishable_from_ceiling: self.ceiling_like,
            },
            dimensions=dims,
        )


def mi_terms(z: ArrayLike, mu: ArrayLike, logvar: ArrayLike, chunk_bytes: int = CHUNK_BYTES,
             per_dim_method: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """Per-input terms of the MI estimator: the deterministic core of the diagnostic.

    With ``q(z|x_j) = N(mu_j, diag(exp(logvar_j)))`` and S samples ``z_is`` per input::

        h_i   = mean_s [log q(z_is|x_i) - log mean_j q(z_is|x_j)]
        h_id  = the same in coordinate d alone

    so that ``MI = mean_i h_i`` and ``MI_d = mean_i h_id``. Every term is at most
    ``log M``; identical posteriors give 0 (to rounding, ~1e-15 nats). The
    full-vector terms are a GEMM over ``[z^2, z]`` streamed over blocks of
    components; the per-coordinate terms come from the 1-D mixtures evaluated
    exactly on an adaptive grid and interpolated to within ``GRID_TOL`` nats per
    query (exact below 1,024 queries): see
    :mod:`~collapse_diag.diagnostics.estimators.mixture_density` (which shifts z and mu by the
    mean of mu for the GEMM: the estimator is translation invariant).

    Args:
        z: Samples, shape ``(M, S, D)``; ``z[i, s]`` drawn from q(z|x_i).
        mu: Posterior means of the M mixture components, shape ``(M, D)``.
        logvar: Posterior log-variances, shape ``(M, D)``.
        chunk_bytes: Size of one block of log-densities (peak memory is a few blocks).
        per_dim_method: ``"auto"``, ``"exact"`` or ``"grid"`` for the per-coordinate terms.

    Returns:
        ``(h, h_dim)``: arrays of shape ``(M,)`` and ``(M, D)``.

    Raises:
        InvalidParameterError: the shapes do not match.
    """
    z = np.asarray(z, dtype=np.float64)
    mu = np.asarray(mu, dtype=np.float64)
    logvar = np.asarray(logvar, dtype=np.float64)
    if mu.ndim != 2 or logvar.shape != mu.shape:
        raise invalid_parameter("mu/logvar", "mi_from_samples", "two arrays of shape (M, D)",
                                (mu.shape, logvar.shape))
    m, d = mu.shape
    if z.ndim != 3 or z.shape[0] != m or z.shape[2] != d:
        raise invalid_parameter("z", "mi_from_samples", f"an array of shape ({m}, S, {d})",
                                z.shape)
    s = z.shape[1]
    zt, mut, lvt = (torch.from_numpy(np.ascontiguousarray(a))
                    for a in (z.reshape(m * s, d), mu, logvar))
    owner = torch.arange(m).repeat_interleave(s)

    def full_rows(a: int, b: int) -> tuple[np.ndarray]:  # inputs a..b-1, all their samples
        rows = slice(a * s, b * s)
        return (full_terms(zt[rows], owner[rows], mut, lvt, chunk_bytes).reshape(b - a, s)
                .numpy(),)

    full = distributed.map_shard(m, full_rows)[0]  # torchrun: each process its inputs
    per = dimension_terms(zt, owner, mut, lvt, chunk_bytes, method=per_dim_method)
    return full.mean(axis=1), per.reshape(d, m, s).mean(dim=2).T.contiguous().numpy()


def mi_from_samples(
    z: ArrayLike, mu: ArrayLike, logvar: ArrayLike, chunk_bytes: int = CHUNK_BYTES
) -> tuple[float, np.ndarray]:
    """The MI estimate for given samples: the means of :func:`mi_terms` over inputs.

    Formula::

        MI = mean_{i,s} [log q(z_is|x_i) - logsumexp_j log q(z_is|x_j) + log M]

    and ``MI_d`` the same in one dimension (coordinate d of the same samples).

    Args:
        z: Samples, shape ``(M, S, D)``; ``z[i, s]`` drawn from q(z|x_i).
        mu: Posterior means of the M mixture components, shape ``(M, D)``.
        logvar: Posterior log-variances, shape ``(M, D)``.
        chunk_bytes: Size of one block of log-densities.

    Returns:
        ``(mutual_information, per_dimension)``: a float and an array of shape ``(D,)``.

    Raises:
        InvalidParameterError: the shapes do not match.
    """
    h, h_dim = mi_terms(z, mu, logvar, chunk_bytes)
    return float(h.mean()), h_dim.mean(axis=0)


def trajectory_terms(z: np.ndarray, mu: np.ndarray, logvar: np.ndarray, dims: int,
                     chunk_bytes: int = CHUNK_BYTES) -> np.ndarray:
    """Per-input MI terms of each dimension's trajectory, for flattened sequential codes.

    Coordinates ``t * dims + d`` (t = 0..T-1) of the flattened code are z_{t,d}; the
    term of dimension d is the full-vector term of :func:`mi_terms` restricted to them::

        h_id = mean_s [log q(z_is,d|x_i) - log mean_j q(z_is,d|x_j)]   (z_{.,d} in R^T)

    Args:
        z: Samples ``(M, S, T * dims)``.
        mu: Means ``(M, T * dims)``.
        logvar: Log-variances ``(M, T * dims)``.
        dims: D.
        chunk_bytes: Size of one block of log-densities.

    Returns:
        Array ``(M, dims)``.
    """
    m, s, width = z.shape
    out = np.empty((m, dims))
    owner = torch.arange(m).repeat_interleave(s)
    for d in range(dims):
        cols = np.arange(d, width, dims)
        zt, mu_d, lv_d = (torch.from_numpy(np.ascontiguousarray(a)) for a in
                          (z[:, :, cols].reshape(m * s, -1), mu[:, cols], logvar[:, cols]))
        full = full_terms(zt, owner, mu_d, lv_d, chunk_bytes)
        out[:, d] = full.reshape(m, s).mean(dim=1).numpy()
    return out


def bootstrap_intervals(values: np.ndarray, generator: torch.Generator, resamples: int,
                        confidence: float) -> np.ndarray:
    """Percentile bootstrap intervals of the column means of ``values``, resampling rows.

    Each resample draws M row indices with replacement (one
    ``torch.randint(M, (M,), generator=generator)`` per resample, drawn in chunks
    by :func:`~collapse_diag.diagnostics.estimators.statistics.resample_counts`), and every
    column's mean over them is one GEMM of the resample counts against
    ``values``; the interval is the ``(1 -/+ confidence) / 2`` quantiles of those means.
    Under torchrun each process counts and multiplies its share of the chunks of
    resamples (all of them draw every index, so the numbers are one process's) and the
    means are gathered once.

    Args:
        values: Per-input terms, shape ``(M, K)``.
        generator: The diagnostic's CPU generator.
        resamples: Number of bootstrap resamples B >= 1.
        confidence: Level of the intervals, in (0, 1).

    Returns:
        Shape ``(K, 2)``: ``[lo, hi]`` per column.
    """
    v = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float64))
    m = v.shape[0]

    state, end = generator.get_state(), []

    def resample_means(start: int, stop: int) -> tuple[np.ndarray]:
        drawn = torch.Generator()  # from the same state on every process (and every call)
        drawn.set_state(state)
        means = [counts @ v / m for counts in
                 resample_counts(m, resamples, drawn, within=range(start, stop))]
        end[:] = [drawn.get_state()]
        return (torch.cat(means).numpy() if means else np.empty((0, v.shape[1])),)

    # torchrun: every process draws all the indices, counts its share of the resamples
    means = distributed.map_shard(resamples, resample_means,
                                  block=resample_chunk(m, resamples))[0]
    generator.set_state(end[0])  # where drawing every index leaves it
    q = torch.tensor([(1 - confidence) / 2, (1 + confidence) / 2], dtype=torch.float64)
    return torch.quantile(torch.from_numpy(means), q, dim=0).T.numpy()


def samples_per_input(m: int, samples: int, max_queries: int) -> int:
    """Draws per input S under the query budget: ``max(1, min(samples, max_queries // m))``."""
    return max(1, min(samples, max_queries // m))


def information_diagnostic(
    encodings: Encodings,
    generator: torch.Generator,
    mean_kl: float,
    samples: int = 4,
    max_components: int = 10_000,
    saturation_margin: float = 0.5,
    bootstrap: int = 0,
    confidence: float = 0.95,
    max_queries: int = 10_000,
) -> InformationResult:
    """Estimate I_q(x; z) and I_q(x; z_d) with the aggregate posterior of the analysed set.

    With M inputs (all N, or a seeded subsample of ``max_components`` when
    ``N > max_components``, drawn as ``torch.randperm(N, generator=generator)[:M]``),
    S draws per input ``z_is = mu_i + exp(logvar_i / 2) * eps_is``,
    ``eps = torch.randn((M, S, D), generator=generator, dtype=torch.float64)``, with
    ``S = max(1, min(samples, max_queries // M))`` (the query budget: M S queries,
    each against M components), are fed to :func:`mi_terms`. The result is an unbiased Monte Carlo
    estimate of the MI of x uniform over the M inputs, whose true value lies in
    ``[0, log M]``: the ceiling ``log M`` is reached by an encoder whose posteriors
    do not overlap, and the estimate is flagged *saturated* within
    ``saturation_margin`` of it (then it measures M, not the encoder). A
    negative estimate is Monte Carlo noise around a (near) zero MI; it is
    reported as is and flagged. Cost: O(M^2 S D) flops in GEMMs, O(M^2 S)
    exponentials, bounded memory; with the budget M S <= max(M, max_queries) the cost
    grows as M max(M, max_queries) D, not M^2 samples D. Fewer draws per input leave the
    estimator unbiased (each term's expectation over z is the same); they add Monte
    Carlo noise, which the bootstrap interval carries (each input is resampled with
    its draws).

    ``marginal_kl = mean_kl - MI`` is KL(q(z) || p(z)) by the identity of Hoffman
    & Johnson (2016), "ELBO surgery" (the mean KL is over all N inputs, MI over
    the M used). With a learned or conditional prior the identity no longer
    holds exactly; the difference is then the definition used.

    Intervals (``bootstrap`` > 0): a percentile bootstrap over inputs, each input
    resampled with its ``samples`` draws, the mixture components held fixed at
    the M analysed posteriors (:func:`bootstrap_intervals`, drawn after ``eps``).
    The interval is for the population MI of the data distribution: the first-order
    influence of an input through its own mixture component integrates to zero
    (``E_{z~q(z)}[q(z|x_k) / q(z)] = 1``), so holding the components fixed loses
    nothing to first order, while resampling them would duplicate a query's own
    component (biasing every resample down near log M) and holding them out would
    change the estimator (no log M ceiling). The marginal-KL interval resamples
    ``KL_i - h_i`` over the same M inputs. Not covered: the finite-mixture bias,
    downward and O(E[q(z|x)/q(z)] / M), which is why saturation is flagged.

    Args:
        encodings: Encoder outputs; ``mu`` and ``logvar`` of shape ``(N, D)``.
        generator: The diagnostic's CPU generator (never the global RNG).
        mean_kl: ``KLResult.total``: mean over all N inputs of the summed KL.
        samples: z samples per input (``Settings.mi_samples``), at most.
        max_components: Largest M (``Settings.mi_max_components``).
        saturation_margin: Nats below ``log M`` from which the estimate is saturated.
        bootstrap: Bootstrap resamples for the intervals (``Settings.mi_bootstrap``;
            0: no intervals).
        confidence: Level of the intervals (``Settings.confidence``).
        max_queries: Largest M S (``Settings.mi_max_queries``); S is at least 1.

    Returns:
        An :class:`InformationResult`.

    Sequential latents ``(N, T, D)``: the MI is I_q(x; z_{1:T}) of the whole
    sequence, estimated on the flattened code of size ``T * D``
    (:meth:`~collapse_diag.model.encodings.Encodings.flat`: invalid steps are N(0, 1)
    for every input, posterior and prior alike), and ``per_dimension[d]`` is
    I_q(x; z_{1:T,d}), the information in the whole trajectory of dimension d
    (the same estimator on the T coordinates of d, :func:`trajectory_terms`): not
    a sum over steps of per-step MIs, which would count shared information twice.

    Raises:
        DiagnosticError: fewer than 2 inputs (or components): MI is undefined.
    """
    dims = None
    if encodings.sequential:
        dims, encodings = encodings.latent_dim, encodings.flat()
    n = encodings.n_examples
    if n < 2:
        raise DiagnosticError(f"mutual information needs at least 2 inputs; got {n}.")
    if max_components < 2:
        raise DiagnosticError(f"mutual information needs max_components >= 2; got "
                              f"{max_components}.")
    mu = np.asarray(encodings.mu, dtype=np.float64)
    logvar = np.asarray(encodings.logvar, dtype=np.float64)
    prior_mu, prior_logvar = encodings.prior()
    if n > max_components:
        keep = np.sort(torch.randperm(n, generator=generator)[:max_components].numpy())
        mu, logvar = mu[keep], logvar[keep]
        prior_mu, prior_logvar = prior_mu[keep], prior_logvar[keep]
    m, d = mu.shape
    samples = samples_per_input(m, samples, max_queries)
    eps = torch.randn((m, samples, d), generator=generator, dtype=torch.float64).numpy()
    z = mu[:, None, :] + np.exp(0.5 * logvar)[:, None, :] * eps
    h, h_dim = mi_terms(z, mu, logvar)
    if dims is not None:
        h_dim = trajectory_terms(z, mu, logvar, dims)
    mi, per_dimension = float(h.mean()), h_dim.mean(axis=0)
    ceiling = math.log(m)
    marginal_kl = float(mean_kl) - mi
    cis: dict = {}
    if bootstrap > 0:
        kl_i = gaussian_kl(mu, logvar, prior_mu, prior_logvar).sum(axis=1)
        mkl_terms = kl_i - h
        columns = np.column_stack([h, mkl_terms - mkl_terms.mean(), h_dim])
        ci = bootstrap_intervals(columns, generator, bootstrap, confidence)
        lo, hi = float(ci[0, 0]), float(ci[0, 1])
        per_ci = ci[2:]
        cis = {
            "mi_ci": (lo, hi),
            "per_dimension_ci": per_ci,
            "marginal_kl_ci": (marginal_kl + float(ci[1, 0]), marginal_kl + float(ci[1, 1])),
            "zero_like": bool(lo <= ZERO_ATOL),
            "ceiling_like": bool(hi >= ceiling - saturation_margin),
            "per_dimension_zero_like": per_ci[:, 0] <= ZERO_ATOL,
        }
    return InformationResult(
        mutual_information=mi,
        per_dimension=per_dimension,
        marginal_kl=marginal_kl,
        ceiling=ceiling,
        n_used=m,
        samples=int(samples),
        saturated=bool(mi >= ceiling - saturation_margin),
        negative=bool(mi < 0),
        **cis,
    )


# --- the diagnostic's spec (collapse_diag/diagnostics/spec.py) ---------------------------


def _run(context: RunContext) -> InformationResult:
    from collapse_diag.diagnostics.kl import kl_diagnostic

    s = context.settings
    kl = context.result("kl") or kl_diagnostic(context.encodings, eps=s.kl_eps)
    return information_diagnostic(
        context.encodings, context.generator("information"), mean_kl=kl.total,
        samples=s.mi_samples, max_components=s.mi_max_components,
        saturation_margin=s.mi_saturation_margin, max_queries=s.mi_max_queries,
        bootstrap=s.mi_bootstrap, confidence=s.confidence,
    )


SPEC = DiagnosticSpec(
    name="information",
    min_inputs=2,
    run=_run,
    requires=("kl",),
    settings=("mi_samples", "mi_max_components", "mi_saturation_margin", "mi_bootstrap",
              "mi_max_queries"),
    summary_rows=(
        SummaryRow(S.mutual_information, "mutual information I(x; z)", "nats_flagged",
                   related=(S.mi_saturated, S.mi_negative), terminal=label(S.mutual_information)),
        SummaryRow(S.marginal_kl, "marginal KL(q(z) || p(z))", "nats"),
        SummaryRow(S.mi_ceiling, "MI ceiling log N", "nats"),
    ),
    columns=(
        DimensionColumn(D.mutual_information, "MI (nats)", "nonnegative", terminal=True,
                        overview=True, group="encoder"),
    ),
    plots=(
        PlotRef("information", "Information split",
                "The mean KL is the mutual information I(x; z) (what z tells about x) plus the "
                "marginal KL(q(z) || p(z)) (how far the average code is from the prior). No MI "
                "estimate can exceed the ceiling log N, marked in the top panel.",
                "collapse_diag.render.plots_information:plot_information"),
    ),
    explanation=("collapse_diag.render.explain:information_text",),
)
