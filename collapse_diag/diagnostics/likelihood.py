"""The figures every VAE paper prints: -ELBO, the importance-weighted NLL, PPL, rate, distortion.

For a seeded subsample of ``Settings.nll_examples`` inputs, draw K codes
z_k ~ q(z|x) (``K = Settings.nll_samples``) and decode each input with all K of
them, stacked into batched decoder calls. With the log importance weights
``log w_k = log p(x|z_k) + log p(z_k) - log q(z_k|x)`` (float64)::

    IW bound (Burda et al. 2016):  log p(x) >= L_K = logsumexp_k(log w_k) - log K
    NLL  = mean_x -L_K(x)                          nll_se = std_x(-L_K) / sqrt(M)
    rate R = mean_x KL(q(z|x) || p(z))  (closed form; for sequences with a conditional
             prior or posterior the one-draw estimate over the K ancestral draws)
    distortion D = mean_x -(1/K) sum_k log p(x|z_k)      (Alemi et al. 2018)
    -ELBO = R + D
    PPL = exp(sum_x -L_K(x) / sum_x num_tokens(x))         (text models)

L_K increases with K towards log p(x) (Burda et al. 2016, Theorem 1); for the
exact posterior every w_k equals p(x) and L_K = log p(x) at any K. The curve
decides K: starting from ``Settings.nll_samples``, K is doubled while the last
doubling still changed the NLL by at least its (paired, per-input) standard error,
up to ``Settings.nll_max_samples``; ``nll_converged`` says which stopped it. The
bound is also shown at K' = 1, 10, 100, ... (the first K' of the same draws) and at
every doubled K (``nll_convergence``). Cost: K decoder rows per subsampled input.
He et al. (2019) use K = 500 on the whole test set.

``mi_minibatch`` is the mutual-information estimator of He et al. (2019)'s code
(``calc_mi``): within each batch of ``Settings.mi_minibatch_size`` consecutive
inputs, q(z) is the mixture of that batch's posteriors and each input gives one
code. The estimate cannot exceed log(batch size), so it is biased low when I(x; z)
nears that cap; near 0 it is biased high (posteriors equal to the prior still give
a positive figure: one code per input against B components). It is given only to
compare with published tables, beside ``mutual_information``
(diagnostics/information.py), the whole-set estimate.

References:
    Burda, Grosse & Salakhutdinov (2016), "Importance Weighted Autoencoders", ICLR.
    Alemi et al. (2018), "Fixing a Broken ELBO", ICML.
    He, Spokoyny, Neubig & Berg-Kirkpatrick (2019), "Lagging Inference Networks and
    Posterior Collapse in Variational Autoencoders", ICLR.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy.special import logsumexp

from collapse_diag.config.settings import Settings
from collapse_diag.diagnostics.kl import gaussian_kl
from collapse_diag.diagnostics.spec import (
    DiagnosticSpec,
    PlotRef,
    RunContext,
    SectionRef,
)
from collapse_diag.exceptions import DiagnosticError
from collapse_diag.io.data import Batch, num_examples, subsample_indices, take, to_device
from collapse_diag.model.decoding import MAX_ROWS_PER_CALL, decode
from collapse_diag.model.encodings import Encodings
from collapse_diag.model.protocol import ModelInfo
from collapse_diag.report.invariants import ROUNDING_NATS
from collapse_diag.report.report import ReportSection
from collapse_diag.report.schema import DISTRIBUTION_KEY as X
from collapse_diag.report.schema import NLL_CONVERGENCE_KEY as C
from collapse_diag.report.schema import SUMMARY_KEY as S
from collapse_diag.runtime import distributed
from collapse_diag.runtime.progress import progress
from collapse_diag.runtime.rng import KeyedNormals

__all__ = [
    "LikelihoodResult",
    "convergence_grid",
    "doubling_change",
    "iw_bound",
    "likelihood_diagnostic",
    "log_normal",
    "minibatch_mi",
]



def _draw_block(samples: int) -> int:
    """Inputs processed together (codes built, then decoded): ~``MAX_ROWS_PER_CALL`` rows.

    A function of K alone (the draws themselves are keyed per input,
    :class:`~collapse_diag.runtime.rng.KeyedNormals`), so nothing depends on ``batch_size``.
    """
    return max(1, -(-MAX_ROWS_PER_CALL // samples))

_LOG_2PI = math.log(2 * math.pi)


def log_normal(z: np.ndarray, mu: np.ndarray, logvar: np.ndarray) -> np.ndarray:
    """Log-density log N(z; mu, diag(exp(logvar))), summed over the last axis, in float64.

    Formula: ``-0.5 * sum_d (log 2 pi + logvar_d + (z_d - mu_d)^2 / exp(logvar_d))``.
    Arguments broadcast; the result has their broadcast shape without the last axis.
    """
    z, mu, logvar = (np.asarray(a, dtype=np.float64) for a in (z, mu, logvar))
    return -0.5 * (_LOG_2PI + logvar + np.square(z - mu) * np.exp(-logvar)).sum(axis=-1)


def iw_bound(log_w: np.ndarray) -> np.ndarray:
    """Importance-weighted bound per row: ``logsumexp_k log_w[:, k] - log K``, float64.

    Args:
        log_w: Log importance weights, shape ``(M, K)``.

    Returns:
        Shape ``(M,)``: L_K of each input (a lower bound of log p(x)).
    """
    log_w = np.asarray(log_w, dtype=np.float64)
    return logsumexp(log_w, axis=1) - math.log(log_w.shape[1])


def convergence_grid(samples: int) -> list[int]:
    """The K' at which the bound is shown: 1, 10, 100, ... below ``samples``, then ``samples``."""
    grid = [10**p for p in range(int(math.log10(samples)) + 1) if 10**p < samples]
    return grid + [samples]


def _batch_mi(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """MI_B of c batches at once: tensors ``(c, B, D)`` -> ``(c,)`` (see :func:`minibatch_mi`).

    ``log q(z_i|x_j) - log q(z_i|x_i)`` for every pair of a batch is one batched GEMM over
    ``[z^2, z, 1]`` (the mixture estimator's expansion,
    :func:`~collapse_diag.diagnostics.estimators.mixture_density.full_terms`: centred on the
    batch's mean of mu, the own log-density a feature column), then a log-sum-exp.
    """
    dim, b = z.shape[2], z.shape[1]
    center = mu.mean(dim=1, keepdim=True)
    z, mu = z - center, mu - center
    prec = torch.exp(-logvar)
    own = -0.5 * (_LOG_2PI + logvar + (z - mu).square() * prec).sum(dim=2)  # (c, B)
    feats = torch.cat([z.square(), z, -own[..., None]], dim=2)  # (c, B, 2D + 1)
    weights = torch.cat([-0.5 * prec, mu * prec, torch.ones_like(own)[..., None]], dim=2)
    const = -0.5 * (mu.square() * prec + logvar + _LOG_2PI).sum(dim=2)  # (c, B)
    block = torch.baddbmm(const[:, None, :], feats, weights.transpose(1, 2))  # (c, B, B)
    log_qz = own + torch.logsumexp(block, dim=2) - math.log(b)
    neg_entropy = (-0.5 * dim * _LOG_2PI - 0.5 * (1 + logvar).sum(dim=2)).mean(dim=1)
    return neg_entropy - log_qz.mean(dim=1)


#: Batches of the minibatch MI computed together (their (B, B) log-densities at once).
_MI_BATCHES = 64


def minibatch_mi(mu: np.ndarray, logvar: np.ndarray, noise: np.ndarray, batch_size: int) -> float:
    """He et al. (2019)'s minibatch MI estimate, averaged over batches weighted by their size.

    For each batch B of consecutive inputs, z_i = mu_i + sigma_i * noise_i and::

        MI_B = mean_{i in B} [log q(z_i|x_i) - log (1/|B|) sum_{j in B} q(z_i|x_j)]

    with E_q log q(z|x) taken in closed form, ``-D/2 log 2 pi - 1/2 sum_d (1 + logvar_d)``,
    as in their ``calc_mi``. Each MI_B <= log |B|. The full batches are computed
    ``_MI_BATCHES`` at a time by one batched GEMM (:func:`_batch_mi`; a Python loop over
    batches cost 0.5 s at N = 20,000), the last, smaller batch on its own.

    Args:
        mu: Posterior means, shape ``(N, D)``.
        logvar: Posterior log-variances, shape ``(N, D)``.
        noise: Standard normal draws, shape ``(N, D)``.
        batch_size: Inputs per batch (the last batch may be smaller).

    Returns:
        The estimate in nats (may be negative through noise).
    """
    mu, logvar, noise = (torch.from_numpy(np.asarray(a, dtype=np.float64)) for a in
                         (mu, logvar, noise))
    n, dim = mu.shape
    z = mu + torch.exp(0.5 * logvar) * noise
    full = n // batch_size * batch_size
    total = 0.0
    step = _MI_BATCHES * batch_size
    for start in range(0, full, step):
        rows = slice(start, min(start + step, full))
        shaped = (t[rows].reshape(-1, batch_size, dim) for t in (z, mu, logvar))
        total += float(_batch_mi(*shaped).sum()) * batch_size
    if full < n:
        total += float(_batch_mi(z[full:][None], mu[full:][None], logvar[full:][None])[0]) * (
            n - full)
    return total / n


@dataclass(frozen=True)
class LikelihoodResult:
    """The standard figures of a VAE (nats per input unless said).

    Attributes:
        examples: Indices of the subsampled inputs, shape ``(M,)``.
        samples: K, codes drawn per input.
        bound: L_K per subsampled input, shape ``(M,)`` (the NLL is ``-bound``).
        rate_per_input: KL(q(z|x) || p(z)) per subsampled input, shape ``(M,)``.
        distortion_per_input: -(1/K) sum_k log p(x|z_k), shape ``(M,)``.
        tokens: num_tokens of the subsampled inputs, shape ``(M,)``, or ``None``.
        convergence: ``{"samples": [K', ...], "nll": [...], "nll_se": [...]}``.
        mi_minibatch: He et al.'s minibatch MI over all N inputs (nats).
        mi_minibatch_size: Its batch size.
        decoder_calls: Decoder calls made.
        decoder_rows: Rows (input, code) decoded: M * K.
        converged: The doubling rule stopped K (the last doubling changed the NLL by less
            than its standard error); ``False``: the budget ``nll_max_samples`` stopped
            it first; ``None``: K = 1 and no doubling allowed (nothing to compare).
        change: NLL(K/2) - NLL(K), paired per input (:func:`doubling_change`), or ``None``.
        change_se: Its standard error over inputs, or ``None``.
    """

    examples: np.ndarray
    samples: int
    bound: np.ndarray
    rate_per_input: np.ndarray
    distortion_per_input: np.ndarray
    tokens: np.ndarray | None
    convergence: dict[str, list[Any]]
    mi_minibatch: float
    mi_minibatch_size: int
    decoder_calls: int
    decoder_rows: int
    converged: bool | None = None
    change: float | None = None
    change_se: float | None = None

    @property
    def nll(self) -> float:
        """Mean IW-NLL bound over the subsample, nats per input."""
        return float(-self.bound.mean())

    @property
    def nll_se(self) -> float | None:
        """Standard error of :attr:`nll` over inputs (``None`` for one input)."""
        m = len(self.bound)
        return float(self.bound.std(ddof=1) / math.sqrt(m)) if m > 1 else None

    @property
    def neg_elbo(self) -> float:
        """-ELBO = rate + distortion, nats per input."""
        return self.rate + self.distortion

    @property
    def rate(self) -> float:
        """R = mean KL(q(z|x) || p(z)) over the subsample."""
        return float(self.rate_per_input.mean())

    @property
    def distortion(self) -> float:
        """D = -E_x E_q log p(x|z) over the subsample."""
        return float(self.distortion_per_input.mean())

    def _per_token(self, per_input: np.ndarray) -> float | None:
        return None if self.tokens is None else float(per_input.sum() / self.tokens.sum())

    def section(self) -> ReportSection:
        """Summary fields: ``neg_elbo``, ``nll``, ``nll_se``, ``ppl``, ``rate``, ... ."""
        nll_tok = self._per_token(-self.bound)
        return ReportSection(
            summary={
                S.neg_elbo: self.neg_elbo,
                S.neg_elbo_per_token: self._per_token(self.rate_per_input
                                                      + self.distortion_per_input),
                S.nll: self.nll,
                S.nll_se: self.nll_se,
                S.nll_per_token: nll_tok,
                S.nll_samples: self.samples,
                S.nll_examples: int(len(self.examples)),
                S.nll_convergence: self.convergence,
                S.ppl: None if nll_tok is None else math.exp(min(nll_tok, 700.0)),
                S.rate: self.rate,
                S.distortion: self.distortion,
                S.mi_minibatch: self.mi_minibatch,
                S.mi_minibatch_size: self.mi_minibatch_size,
                S.nll_converged: self.converged,
                S.nll_change: self.change,
                S.nll_change_se: self.change_se,
            },
            dimensions={},
            distributions={
                X.nll_inputs: self.examples.tolist(),
                X.nll_per_input: (-self.bound).tolist(),
                X.neg_elbo_per_input: (self.rate_per_input
                                       + self.distortion_per_input).tolist(),
            },
        )


def _curve_point(bound: np.ndarray) -> tuple[float, float | None]:
    """Mean NLL ``-bound`` and its standard error over inputs (``None`` for one input)."""
    values = -bound
    se = float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else None
    return float(values.mean()), se


def doubling_change(bound: np.ndarray, half: np.ndarray) -> tuple[float, float]:
    """The last doubling's change of the NLL, paired per input, and its standard error.

    ``change = mean_x [L_K(x) - L_{K/2}(x)]`` (the NLL fell by this much when K doubled;
    >= 0 in expectation, Burda et al. 2016, Theorem 1) and
    ``se = std_x(L_K - L_{K/2}) / sqrt(M)`` (0 for one input).

    Args:
        bound: L_K per input, shape ``(M,)``.
        half: L_{K/2} per input on the first half of the same draws, shape ``(M,)``.
    """
    diff = np.asarray(bound, dtype=np.float64) - np.asarray(half, dtype=np.float64)
    se = float(diff.std(ddof=1) / math.sqrt(len(diff))) if len(diff) > 1 else 0.0
    return float(diff.mean()), se


def likelihood_diagnostic(
    model: Any,
    data: Batch,
    encodings: Encodings,
    info: ModelInfo,
    settings: Settings,
    generator: torch.Generator,
    show_progress: bool = False,
) -> LikelihoodResult:
    """-ELBO, IW-NLL with its standard error and convergence in K, PPL, rate, distortion, MI.

    **K from the curve.** The bound is computed with ``K0 = nll_samples`` codes per
    input; then, while the NLL still moves, K is doubled (K more codes per input, the
    bound on all 2K) up to ``nll_max_samples``. "Still moves": the paired change of the
    last doubling, ``mean_x [L_K(x) - L_{K/2}(x)]`` (L_{K/2} from the first half of the
    same draws, so round 0 needs no extra draws), is at least its standard error over
    inputs (:func:`doubling_change`; and above ``ROUNDING_NATS``). ``converged`` says
    whether the rule stopped the doubling (``None`` when K0 = 1 and the budget allows no
    doubling: nothing to compare).

    Random draws (CPU, float64): from ``generator``, in this order, the subsample and the
    minibatch-MI noise ``(N, D)`` (the subsample first, so it depends on N and the seed
    alone and two models analysed on the same inputs share it: ``compare`` pairs their
    figures per input); then the posterior noise, keyed on the position in the subsample
    (stream ``"posterior"`` for the first K0 codes, ``"posterior/K"`` for the K codes
    added when doubling from K, :class:`~collapse_diag.runtime.rng.KeyedNormals`).
    Nothing depends on ``batch_size`` or on the number of processes (under ``torchrun``
    each decodes its shard of the subsample).

    Decoder cost: ``M * K`` rows, ``M = min(N, nll_examples)``, K the final count, in
    calls of ``max(MAX_ROWS_PER_CALL, batch_size)`` rows (input-major: the codes of one
    input are consecutive rows). Memory: per input a few running sums (log-sum-exp of its
    weights, the sum of its log-likelihoods, the bound at the curve's first points),
    never the M x K weights.

    Args:
        model: Protocol model on ``settings.device``, in eval mode.
        data: The N analysed inputs on the CPU, in the order of ``encodings``.
        encodings: Encoder outputs of ``data``.
        info: Result of ``check_model``.
        settings: Uses ``batch_size``, ``device``, ``nll_samples``, ``nll_max_samples``,
            ``nll_examples``, ``mi_minibatch_size``.
        generator: The diagnostic's seeded CPU generator.
        show_progress: Progress bar on stderr.

    Returns:
        A :class:`LikelihoodResult`.

    Raises:
        DiagnosticError: data and encodings disagree, or the decoder returned NaN/Inf.

    Sequential latents with a conditional prior or posterior (``prior(x, z)``,
    ``posterior(x, z)``) weigh whole sequences drawn ancestrally (:func:`_conditional`).
    Sequential latents with the N(0, I) prior run on the flattened code of size
    ``T * D`` (:meth:`~collapse_diag.model.encodings.Encodings.flat`: at invalid steps q and
    p are both N(0, 1), so their log-ratio cancels and the decoder ignores them).
    """
    if encodings.sequential:
        if info.has_prior or info.has_posterior:
            return _conditional(model, data, encodings, info, settings, generator,
                                show_progress)
        from collapse_diag.diagnostics.sequence_fisher import FlatModel

        flat_info = dataclasses.replace(info, latent_dim=info.steps * info.latent_dim,
                                        steps=None, has_mask=False)
        return likelihood_diagnostic(FlatModel(model, info.steps, info.latent_dim), data,
                                     encodings.flat(), flat_info, settings, generator,
                                     show_progress)
    n, dim, k0 = encodings.n_examples, encodings.latent_dim, settings.nll_samples
    if num_examples(data) != n:
        raise DiagnosticError(f"data holds {num_examples(data)} inputs but encodings {n}.")
    sub = subsample_indices(n, settings.nll_examples, generator).numpy()
    mi_noise = torch.randn(n, dim, generator=generator, dtype=torch.float64).numpy()
    mi_mb = minibatch_mi(encodings.mu, encodings.logvar, mi_noise, settings.mi_minibatch_size)
    m = len(sub)
    mu, logvar = encodings.mu[sub], encodings.logvar[sub]
    prior_mu, prior_logvar = (p[sub] for p in encodings.prior())
    rows_per_call = max(MAX_ROWS_PER_CALL, settings.batch_size)
    calls = 0

    def draw_round(stream: str, k: int, prefixes: list[int]) -> tuple[np.ndarray, ...]:
        """K codes per subsampled input: log-sum-exp of log w, sum of log p(x|z), prefixes.

        Returns arrays ``(M,)``, ``(M,)`` and, when ``prefixes`` is not empty, the
        log-sum-exp of the first k' weights ``(M, len(prefixes))``.
        """
        block = _draw_block(k)
        normals = KeyedNormals(generator, stream, m, (k, dim))

        def compute(first: int, stop: int) -> tuple[np.ndarray, ...]:
            lse, ll_sum = np.empty(stop - first), np.empty(stop - first)
            pre = np.empty((stop - first, len(prefixes)))
            blocks = range(first, stop, block)
            with torch.no_grad():
                for start in progress(blocks, "likelihood", len(blocks), show_progress):
                    idx = np.arange(start, min(start + block, stop))
                    noise = normals.rows(int(idx[0]), int(idx[-1]) + 1)
                    z = mu[idx, None] + np.exp(0.5 * logvar[idx, None]) * noise  # (b, K, D)
                    flat_z, owner = z.reshape(-1, dim), np.repeat(idx, k)
                    flat_ll = np.empty(len(owner))
                    for lo in range(0, len(owner), rows_per_call):
                        rows = slice(lo, lo + rows_per_call)
                        x = to_device(take(data, torch.from_numpy(sub[owner[rows]])),
                                      settings.device)
                        flat_ll[rows] = decode(model, x, flat_z[rows], info, settings.device)
                    at, ll = idx - first, flat_ll.reshape(len(idx), k)
                    log_w = (ll + log_normal(z, prior_mu[idx, None], prior_logvar[idx, None])
                             - log_normal(z, mu[idx, None], logvar[idx, None]))
                    lse[at], ll_sum[at] = logsumexp(log_w, axis=1), ll.sum(axis=1)
                    for j, p in enumerate(prefixes):
                        pre[at, j] = logsumexp(log_w[:, :p], axis=1)
            return (lse, ll_sum, pre) if prefixes else (lse, ll_sum)

        mine = len(distributed.shard(m))
        nonlocal calls
        calls += distributed.total(sum(-(-min(block, mine - lo) * k // rows_per_call)
                                       for lo in range(0, mine, block)))
        return distributed.map_shard(m, compute)

    grid = convergence_grid(k0)
    prefixes = sorted(set(grid[:-1]) | ({k0 // 2} if k0 >= 2 else set()))
    lse, ll_sum, *pre = draw_round("posterior", k0, prefixes)
    curve = [(g, pre[0][:, prefixes.index(g)] - math.log(g)) for g in grid[:-1]]
    k, budget = k0, max(k0, settings.nll_max_samples)
    bound = lse - math.log(k)
    curve.append((k, bound))
    half = pre[0][:, prefixes.index(k0 // 2)] - math.log(k0 // 2) if k0 >= 2 else None
    change = change_se = converged = None
    while True:
        if half is not None:
            change, change_se = doubling_change(bound, half)
            converged = change < max(change_se, ROUNDING_NATS)
            if converged:
                break
        if 2 * k > budget:
            break
        more_lse, more_ll = draw_round(f"posterior/{k}", k, [])
        half, k = bound, 2 * k
        lse, ll_sum = np.logaddexp(lse, more_lse), ll_sum + more_ll
        bound = lse - math.log(k)
        curve.append((k, bound))
    points = [_curve_point(b) for _, b in curve]
    tokens = encodings.num_tokens
    return LikelihoodResult(
        examples=sub,
        samples=k,
        bound=bound,
        rate_per_input=gaussian_kl(mu, logvar, prior_mu, prior_logvar).sum(axis=1),
        distortion_per_input=-ll_sum / k,
        tokens=None if tokens is None else np.asarray(tokens, dtype=np.float64)[sub],
        convergence={C.samples: [g for g, _ in curve], C.nll: [p[0] for p in points],
                     C.nll_se: [p[1] for p in points]},
        mi_minibatch=float(mi_mb),
        mi_minibatch_size=int(settings.mi_minibatch_size),
        decoder_calls=calls,
        decoder_rows=m * k,
        converged=converged,
        change=change,
        change_se=change_se,
    )


def _conditional(model: Any, data: Batch, encodings: Encodings, info: ModelInfo,
                 settings: Settings, generator: torch.Generator, show_progress: bool
                 ) -> LikelihoodResult:
    """Sequential latents with ``prior(x, z)`` and/or ``posterior(x, z)``: whole sequences.

    Weights over whole sequences (collapse_diag/diagnostics/sequential_likelihood.py); the
    rate is the Monte-Carlo ``mean_k log q(z_k|x) - log p(z_k|x)``, so the bound at K = 1
    is -ELBO.
    """
    from collapse_diag.diagnostics.sequential_likelihood import sequence_log_weights

    n = encodings.n_examples
    if num_examples(data) != n:
        raise DiagnosticError(f"data holds {num_examples(data)} inputs but encodings {n}.")
    flat = encodings.flat()
    sub = subsample_indices(n, settings.nll_examples, generator).numpy()  # first, as above
    mi_noise = torch.randn(n, flat.latent_dim, generator=generator, dtype=torch.float64).numpy()
    mi_mb = minibatch_mi(flat.mu, flat.logvar, mi_noise, settings.mi_minibatch_size)
    log_w, ll, ratio, calls = sequence_log_weights(model, data, encodings, info, settings, sub,
                                                   generator, show_progress)
    k = log_w.shape[1]
    grid = convergence_grid(k)
    points = [_curve_point(iw_bound(log_w[:, :g])) for g in grid]
    # K is fixed here (no doubling): the last halving's paired change says whether it settled
    change, change_se = (doubling_change(iw_bound(log_w), iw_bound(log_w[:, :k // 2]))
                         if k >= 2 else (None, None))
    tokens = encodings.num_tokens
    return LikelihoodResult(
        examples=sub, samples=k, bound=iw_bound(log_w),
        rate_per_input=ratio.mean(axis=1), distortion_per_input=-ll.mean(axis=1),
        tokens=None if tokens is None else np.asarray(tokens, dtype=np.float64)[sub],
        convergence={C.samples: grid, C.nll: [p[0] for p in points],
                     C.nll_se: [p[1] for p in points]},
        mi_minibatch=float(mi_mb),
        mi_minibatch_size=int(settings.mi_minibatch_size), decoder_calls=calls,
        decoder_rows=len(sub) * k,
        converged=None if change is None else change < max(change_se, ROUNDING_NATS),
        change=change, change_se=change_se)


# --- the diagnostic's spec (collapse_diag/diagnostics/spec.py) ---------------------------


def _run(context: RunContext) -> LikelihoodResult:
    return likelihood_diagnostic(*context.decoder_args("likelihood"),
                                 show_progress=context.show_progress)


SPEC = DiagnosticSpec(
    name="likelihood",
    run=_run,
    settings=("nll_samples", "nll_max_samples", "nll_examples", "mi_minibatch_size"),
    uses_decoder=False,  # its decoder passes stay float32 under --dtype (docs/performance.md)
    plots=(
        PlotRef("likelihood", "NLL bound against K",
                "The importance-weighted bound on the NLL with K' = 1, 10, 100, ... up to "
                "nll_samples codes drawn per input, then at each doubled K while the bound still "
                "moved (up to nll_max_samples), with its standard error over inputs; the dashed "
                "line is -ELBO. A curve still falling at the right (nll_converged false) needs "
                "a larger nll_max_samples.",
                "collapse_diag.render.plots_likelihood:plot_likelihood"),
    ),
    sections=(
        SectionRef("Likelihood figures", "likelihood-figures",
                   "The figures papers print: -ELBO, the importance-weighted NLL bound (Burda et "
                   "al. 2016) with its standard error over inputs, perplexity for text, rate and "
                   "distortion (Alemi et al. 2018), and He et al. (2019)'s minibatch MI for "
                   "comparison with published tables.",
                   "collapse_diag.render.likelihood_table:likelihood_table"),
    ),
)
