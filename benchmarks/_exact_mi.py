"""The previous exact MI computation (direct per-dimension loop), kept as the benchmark's reference.

Verbatim copy of ``mi_from_samples`` and its helpers as they were before the GEMM
estimator (commit 044204b): O(M^2 * S * D) exponentials, one pass per dimension.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from numpy.typing import ArrayLike

_LOG_2PI = math.log(2.0 * math.pi)
#: Bytes of one (rows x M) block of log-densities; peak memory is about three blocks.
_CHUNK_BYTES = 8 * 2**20
#: Smallest sum of exponentials the per-dimension pass accepts without the row maximum.
_TINY = 1e-280


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
        raise ValueError("mu/logvar shapes")
    m, d = mu.shape
    if z.ndim != 3 or z.shape[0] != m or z.shape[2] != d:
        raise ValueError("z shape")
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


