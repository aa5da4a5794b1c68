"""Mutual information I_q(x; z) between the analysed inputs and the latent code.

The aggregate posterior is the mixture of the posteriors of the analysed set,
``q(z) = (1/M) sum_j q(z|x_j)``, and x is uniform over the same M inputs. Under
that joint, ``I_q(x; z) = E_x E_{z~q(z|x)} [log q(z|x) - log q(z)]``, which lies
in ``[0, log M]``. It is estimated by Monte Carlo over z; :func:`mi_from_samples`
is the estimator's core (no randomness), :func:`information_diagnostic` draws the
samples and builds the result.

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

from collapse_diag.encodings import Encodings
from collapse_diag.exceptions import DiagnosticError, invalid_parameter
from collapse_diag.report import ReportSection

__all__ = ["InformationResult", "information_diagnostic", "mi_from_samples"]

_LOG_2PI = math.log(2.0 * math.pi)
#: Bytes of one (rows x M) block of log-densities; peak memory is about three blocks.
_CHUNK_BYTES = 8 * 2**20
#: Smallest sum of exponentials the per-dimension pass accepts without the row maximum.
_TINY = 1e-280


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
        samples: z samples per input.
        saturated: ``mutual_information >= ceiling - saturation_margin``: the
            estimate is limited by M, not by the encoder.
        negative: ``mutual_information < 0``.
    """

    mutual_information: float
    per_dimension: np.ndarray
    marginal_kl: float
    ceiling: float
    n_used: int
    samples: int
    saturated: bool
    negative: bool

    def section(self) -> ReportSection:
        """Fields for report.json: the MI summary fields and the per-dimension MI column."""
        return ReportSection(
            summary={
                "mutual_information": self.mutual_information,
                "marginal_kl": self.marginal_kl,
                "mi_ceiling": self.ceiling,
                "mi_examples": self.n_used,
                "mi_saturated": self.saturated,
                "mi_negative": self.negative,
            },
            dimensions={"mutual_information": self.per_dimension.tolist()},
        )


def _own_minus_log_mean_exp(q: torch.Tensor, owner: torch.Tensor) -> torch.Tensor:
    """Per row r: ``q[r, owner[r]] - log(mean_j exp(q[r, j]))``, stably. Overwrites ``q``.

    Args:
        q: Log-densities, shape ``(rows, M)``: ``q[r, j] = log q(z_r | x_j)``.
        owner: Index of the component each row was drawn from, shape ``(rows,)``.

    Returns:
        Shape ``(rows,)``. At most ``log M``; exactly 0 when all components coincide.
    """
    top = q.max(dim=1, keepdim=True).values
    q.sub_(top)
    own = q.gather(1, owner[:, None]).squeeze(1)
    total = q.exp_().sum(dim=1)
    return own - torch.log(total / q.shape[1])


def _own_minus_log_mean_exp_bounded(q: torch.Tensor, owner: torch.Tensor) -> torch.Tensor:
    """As :func:`_own_minus_log_mean_exp` for ``q <= 0`` (no overflow), skipping the max pass.

    Rows whose sum is below ``_TINY`` (extreme log-variance spreads) come back as
    NaN, for the caller to recompute with the row maximum.
    """
    own = q.gather(1, owner[:, None]).squeeze(1)
    total = q.exp_().sum(dim=1)
    return torch.where(total >= _TINY, own - torch.log(total / q.shape[1]), torch.nan)


def mi_from_samples(
    z: ArrayLike, mu: ArrayLike, logvar: ArrayLike, chunk_bytes: int = _CHUNK_BYTES
) -> tuple[float, np.ndarray]:
    """The MI estimator for given samples: the deterministic core of the diagnostic.

    Formula, with ``q(z|x_j) = N(mu_j, diag(exp(logvar_j)))``::

        MI = mean_{i,s} [log q(z_is|x_i) - logsumexp_j log q(z_is|x_j) + log M]

    and ``MI_d`` the same in one dimension (coordinate d of the same samples).
    Each term is computed as ``own - log(mean_j exp(.))`` after a shift that
    keeps every exponent <= 0 (the row maximum for the full-D term, so identical
    posteriors give exactly 0), and no term exceeds ``log M``. The per-dimension
    log-densities ``-0.5 * ((z_d - mu_jd)^2 * exp(-logvar_jd) + logvar_jd + log 2pi)``
    are evaluated directly (no expanded-square cancellation) in float64 blocks of
    ``rows x M`` of at most ``chunk_bytes`` bytes, and the full-D log-density is
    their sum over d, accumulated block by block: memory stays bounded for any
    M, and the cost is O(M^2 * S * D). z and mu are first shifted by the mean of
    mu (the estimator is translation invariant).

    Args:
        z: Samples, shape ``(M, S, D)``; ``z[i, s]`` drawn from q(z|x_i).
        mu: Posterior means of the M mixture components, shape ``(M, D)``.
        logvar: Posterior log-variances, shape ``(M, D)``.
        chunk_bytes: Size of one block of log-densities (peak memory is a few blocks).

    Returns:
        ``(mutual_information, per_dimension)``: a float and an array of shape ``(D,)``.

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
    n_rows = m * z.shape[1]
    center = mu.mean(axis=0)
    z_cols = torch.from_numpy(np.ascontiguousarray((z - center).reshape(n_rows, d).T))
    mu_cols = torch.from_numpy(np.ascontiguousarray((mu - center).T))
    lv_cols = torch.from_numpy(np.ascontiguousarray(logvar.T))
    half_prec = -0.5 * torch.exp(-lv_cols)
    # Per dimension, the normalising constants shifted so that each is <= 0 (and so is q).
    offset = -0.5 * (lv_cols + _LOG_2PI)
    offset -= offset.max(dim=1, keepdim=True).values
    owner = torch.arange(m).repeat_interleave(z.shape[1])

    def log_density(k: int, z_k: torch.Tensor) -> torch.Tensor:
        return (z_k[:, None] - mu_cols[k]).square_().mul_(half_prec[k]).add_(offset[k])

    full = torch.empty(n_rows, dtype=torch.float64)
    per = torch.empty(d, n_rows, dtype=torch.float64)
    rows = max(1, chunk_bytes // (8 * m))
    for a in range(0, n_rows, rows):
        b = min(a + rows, n_rows)
        total = torch.zeros(b - a, m, dtype=torch.float64)
        for k in range(d):
            q = log_density(k, z_cols[k, a:b])
            total.add_(q)
            values = _own_minus_log_mean_exp_bounded(q, owner[a:b])
            redo = torch.isnan(values).nonzero().squeeze(1)
            if redo.numel():
                values[redo] = _own_minus_log_mean_exp(
                    log_density(k, z_cols[k, a:b][redo]), owner[a:b][redo])
            per[k, a:b] = values
        full[a:b] = _own_minus_log_mean_exp(total, owner[a:b])
    return float(full.numpy().mean()), per.numpy().mean(axis=1)


def information_diagnostic(
    encodings: Encodings,
    generator: torch.Generator,
    mean_kl: float,
    samples: int = 4,
    max_components: int = 10_000,
    saturation_margin: float = 0.5,
) -> InformationResult:
    """Estimate I_q(x; z) and I_q(x; z_d) with the aggregate posterior of the analysed set.

    With M inputs (all N, or a seeded subsample of ``max_components`` when
    ``N > max_components``, drawn as ``torch.randperm(N, generator=generator)[:M]``),
    ``samples`` draws per input ``z_is = mu_i + exp(logvar_i / 2) * eps_is``,
    ``eps = torch.randn((M, samples, D), generator=generator, dtype=torch.float64)``,
    are fed to :func:`mi_from_samples`. The result is an unbiased Monte Carlo
    estimate of the MI of x uniform over the M inputs, whose true value lies in
    ``[0, log M]``: the ceiling ``log M`` is reached by an encoder whose posteriors
    do not overlap, and the estimate is flagged *saturated* within
    ``saturation_margin`` of it (then it measures M, not the encoder). A
    negative estimate is Monte Carlo noise around a (near) zero MI; it is
    reported as is and flagged. Cost: O(M^2 * samples * D) time, bounded memory.

    ``marginal_kl = mean_kl - MI`` is KL(q(z) || p(z)) by the identity of Hoffman
    & Johnson (2016), "ELBO surgery" (the mean KL is over all N inputs, MI over
    the M used). With a learned or conditional prior the identity no longer
    holds exactly; the difference is then the definition used.

    Args:
        encodings: Encoder outputs; ``mu`` and ``logvar`` of shape ``(N, D)``.
        generator: The diagnostic's CPU generator (never the global RNG).
        mean_kl: ``KLResult.total``: mean over all N inputs of the summed KL.
        samples: z samples per input (``Settings.mi_samples``).
        max_components: Largest M (``Settings.mi_max_components``).
        saturation_margin: Nats below ``log M`` from which the estimate is saturated.

    Returns:
        An :class:`InformationResult`.

    Raises:
        DiagnosticError: fewer than 2 inputs (or components): MI is undefined.
    """
    n = encodings.n_examples
    if n < 2:
        raise DiagnosticError(f"mutual information needs at least 2 inputs; got {n}.")
    if max_components < 2:
        raise DiagnosticError(f"mutual information needs max_components >= 2; got "
                              f"{max_components}.")
    mu = np.asarray(encodings.mu, dtype=np.float64)
    logvar = np.asarray(encodings.logvar, dtype=np.float64)
    if n > max_components:
        keep = np.sort(torch.randperm(n, generator=generator)[:max_components].numpy())
        mu, logvar = mu[keep], logvar[keep]
    m, d = mu.shape
    eps = torch.randn((m, samples, d), generator=generator, dtype=torch.float64).numpy()
    z = mu[:, None, :] + np.exp(0.5 * logvar)[:, None, :] * eps
    mi, per_dimension = mi_from_samples(z, mu, logvar)
    ceiling = math.log(m)
    return InformationResult(
        mutual_information=mi,
        per_dimension=per_dimension,
        marginal_kl=float(mean_kl) - mi,
        ceiling=ceiling,
        n_used=m,
        samples=int(samples),
        saturated=bool(mi >= ceiling - saturation_margin),
        negative=bool(mi < 0),
    )
