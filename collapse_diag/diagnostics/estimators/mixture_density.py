"""Log-densities of query points under a mixture of diagonal Gaussians, at GEMM speed.

The mutual-information estimator (:mod:`~collapse_diag.diagnostics.information`)
needs, for every query z_r drawn from component ``owner[r]``, the term
``log q(z_r|x_owner) - log((1/M) sum_j q(z_r|x_j))`` for the full vector z and
for each coordinate on its own. This module computes both.

Full vector (:func:`full_terms`). With precisions ``p_jd = exp(-logvar_jd)`` the
log-density is a quadratic form, so for all rows and components at once::

    log q(z_r|x_j) = sum_d [-p_jd/2 * z_rd^2 + mu_jd p_jd * z_rd] + c_j
    c_j = -1/2 sum_d (mu_jd^2 p_jd + logvar_jd + log 2pi)

i.e. ``[z^2, z] @ [-P/2; MU*P] + c``: one GEMM of inner size 2D per block. The
components are streamed in blocks with a running log-sum-exp, so memory is
bounded by ``chunk_bytes`` for any M; the cost is ``2 * R * M * 2D`` flops plus
``R * M`` exponentials (the previous per-dimension loop paid ``R * M * D``
exponentials). Each row is shifted by its own log-density inside the GEMM (one
more feature column) and the own term is read from the same GEMM, so a query
whose own component dominates gives ``log M`` and identical components give 0,
both to rounding (~1e-15 nats). Inputs are
centred on the mean of mu first (the terms are translation invariant), which
keeps the expanded square's cancellation at ``~1e-16 * max(z^2 p)`` nats.

Per coordinate (:func:`dimension_terms`). The 1-D mixture ``log q_d`` is smooth
wherever the queries are dense, so it is evaluated exactly (float64, all M
components) on an adaptive grid and interpolated (cubic Hermite, with the exact
derivative). The grid starts at 65 quantiles of the queries (33 in a dimension whose
posteriors are wide against their spacing: collapsed ones); each interval is
checked at its midpoint and halved until both parts of the interpolation error
there are within ``tol`` nats: the even part (the value, |H(mid) - f(mid)|) and
the odd part (``0.15 h |H'(mid) - f'(mid)|``, the most an error shaped
(t-a)^2 (t-b)^2 (t-mid), zero at the midpoint, reaches; without it, tail intervals
of wide multimodal mixtures passed by chance and missed by 3e-6 nats). Queries in
intervals that never pass (posteriors far narrower than their spacing, where
``log q_d`` has sharp dips) are evaluated exactly, and so is a query whose own
posterior is narrower than its interval while its own component's share of
``q_d`` there could move the value by more than ``tol / 10`` (it sits on a spike
no node sees; found by fuzzing near-deterministic posteriors, where such queries
were off by up to 6 nats). Each interval that passes is then interpolated on its
two halves (error about ``tol / 16``). All dimensions
are refined together (flat lists of intervals with their dimension), so the cost
is a few tensor operations per level, not per level and dimension. Small
problems take the exact path.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
import torch

from collapse_diag.runtime import distributed

__all__ = ["full_terms", "dimension_terms", "exact_dimension_terms"]

_LOG_2PI = math.log(2.0 * math.pi)
#: Default bytes of one block of log-densities (rows x components, float64): small enough
#: to stay in cache between the GEMM, the exponentials and the sum (2x faster than 32 MiB).
CHUNK_BYTES = 4 * 2**20
#: Components per GEMM block of :func:`full_terms`.
_COMPONENT_BLOCK = 2048
#: Absolute interpolation tolerance of the per-dimension grid, nats per query.
GRID_TOL = 1e-6
#: Initial grid nodes (quantiles of the queries) per dimension.
_GRID_START = 64
#: Halvings of a grid interval before its queries are evaluated exactly.
_GRID_LEVELS = 24
#: Largest error of an odd quintic error term over an interval, per unit h |e'(mid)|.
_ODD_ERROR = 0.15
#: Queries refined together (dimensions x queries): all D up to 2^22 / R dimensions.
_GROUP_QUERIES = 2**22
#: Queries interpolated at once (dimensions x queries): temporaries of 0.5 MiB, cache-sized.
_QUERY_BLOCK = 2**16
#: A component whose sd is this many times narrower than its quantile interval is a node.
_SEED_WIDTHS = 8
#: Grid points of one dimension evaluated together against its components (padded).
_PIECE = 8
#: Below this many queries the per-dimension terms are computed exactly.
_GRID_MIN_QUERIES = 1024  # measured: the grid is faster from ~700 queries at D = 32
#: Shifted log-densities are raised to this before ``exp`` (see :func:`_exp_`).
_EXP_FLOOR = -700.0
#: A 1-D mixture sum below this (e^-600) is recomputed shifted by its largest term.
_UNDERFLOW = math.exp(-600.0)


def _exp_(shifted: torch.Tensor) -> torch.Tensor:
    """``exp`` in place of shifted log-densities whose sum holds a term >= 1 (or > e^-600).

    Values below ``_EXP_FLOOR`` are raised to it first: their exponentials
    (< 1e-304 each) cannot change a sum that holds a term of 1 (they are below
    half its ulp), and move one above e^-600 (the 1-D mixtures shifted by their
    tallest peak, :func:`_mixture_1d`) by less than M e^-100 relative; ``exp`` of
    them takes a slow path (measured: 5-33 ns against 0.6-1.7 ns per value; the sharp
    posteriors of an informative encoder made the MI 3-8x slower). On one CPU thread
    (the grid always; the full vector under ``torch.set_num_threads(1)``) the
    exponentials are numpy's (SIMD, 0.62 ns per float64 against torch's 1.56 ns, both
    within 1 ulp), written into the tensor's own memory; on several, torch's, which
    share the values out among the threads (numpy's exp is single-threaded).
    """
    shifted.clamp_(min=_EXP_FLOOR)
    if (shifted.device.type != "cpu" or not shifted.is_contiguous()
            or torch.get_num_threads() > 1):
        return shifted.exp_()
    values = shifted.numpy()
    np.exp(values, out=values)
    return shifted


def _own_1d(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``log N(z; mu, exp(logvar))`` elementwise (each coordinate on its own)."""
    return -0.5 * ((z - mu).square() * torch.exp(-logvar) + logvar + _LOG_2PI)


def _rows_by_running_max(feats: torch.Tensor, owner: torch.Tensor, weights: torch.Tensor,
                         const: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """The terms with a running-max log-sum-exp over component blocks: safe for any spread."""
    m, dtype = weights.shape[1], feats.dtype
    out = torch.empty(feats.shape[0], dtype=torch.float64)
    for a in range(0, feats.shape[0], rows):
        f, own_idx = feats[a:a + rows], owner[a:a + rows]
        top = torch.full((f.shape[0],), -math.inf, dtype=dtype)
        total = torch.zeros(f.shape[0], dtype=dtype)
        own = torch.empty(f.shape[0], dtype=dtype)
        for j in range(0, m, cols):
            block = torch.addmm(const[j:j + cols], f, weights[:, j:j + cols])
            mine = ((own_idx >= j) & (own_idx < j + cols)).nonzero().squeeze(1)
            own[mine] = block[mine, own_idx[mine] - j]
            new_top = torch.maximum(top, block.max(dim=1).values)
            total.mul_(torch.exp(top - new_top)).add_(_exp_(block.sub_(new_top[:, None])).sum(1))
            top = new_top
        out[a:a + rows] = ((own - top) - torch.log(total / m)).double()
    return out


def full_terms(z: torch.Tensor, owner: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
               chunk_bytes: int = CHUNK_BYTES, dtype: torch.dtype = torch.float64
               ) -> torch.Tensor:
    """``log q(z_r|x_owner[r]) - log mean_j q(z_r|x_j)`` for the full vector, every row.

    One pass: the GEMM gives ``log q(z_r|x_j) - s_r`` directly (the shift
    ``s_r = log q(z_r|x_owner)``, computed beforehand in O(R D), is one more
    feature column), whose exponentials are summed block by block. The own
    component contributes ~1, so the sum cannot underflow; a row whose sum
    overflows (another component e^700 times likelier than its own, only with
    extreme log-variance spreads) is recomputed with a running maximum.

    Args:
        z: Queries, shape ``(R, D)``, float64.
        owner: Component each row was drawn from, shape ``(R,)``, int64.
        mu: Component means, shape ``(M, D)``, float64.
        logvar: Component log-variances, shape ``(M, D)``, float64.
        chunk_bytes: Bytes of one block of log-densities.
        dtype: GEMM precision (float64; float32 only to measure its error).

    Returns:
        Float64, shape ``(R,)``; each value at most ``log M`` (up to rounding).
    """
    m = mu.shape[0]
    center = mu.mean(dim=0)  # the terms are translation invariant; see the module docstring
    z, mu = z - center, mu - center
    prec = torch.exp(-logvar)
    shift = _own_1d(z, mu[owner], logvar[owner]).sum(dim=1)  # log q(z_r|x_owner), O(R D)
    weights = torch.cat([-0.5 * prec, mu * prec, torch.ones(m, 1, dtype=mu.dtype)],
                        dim=1).T.contiguous().to(dtype)  # (2D + 1, M)
    const = (-0.5 * (mu.square() * prec + logvar + _LOG_2PI).sum(dim=1)).to(dtype)  # (M,)
    feats = torch.cat([z.square(), z, -shift[:, None]], dim=1).to(dtype)  # (R, 2D + 1)
    cols = min(m, _COMPONENT_BLOCK)
    rows = max(1, chunk_bytes // (8 * cols))
    out = torch.empty(z.shape[0], dtype=torch.float64)
    for a in range(0, z.shape[0], rows):
        f, own_idx = feats[a:a + rows], owner[a:a + rows]
        total = torch.zeros(f.shape[0], dtype=dtype)
        own = torch.empty(f.shape[0], dtype=dtype)
        for j in range(0, m, cols):
            block = torch.addmm(const[j:j + cols], f, weights[:, j:j + cols])
            mine = ((own_idx >= j) & (own_idx < j + cols)).nonzero().squeeze(1)
            own[mine] = block[mine, own_idx[mine] - j]
            total.add_(_exp_(block).sum(dim=1))
        # own - log(total / M): 0 to rounding (~1e-16) when every component gives the same value.
        out[a:a + rows] = (own - torch.log(total / m)).double()
    redo = (~torch.isfinite(out)).nonzero().squeeze(1)
    if redo.numel():
        out[redo] = _rows_by_running_max(feats[redo, :-1], owner[redo], weights[:-1], const,
                                         rows, cols)
    return out


def _group_by_dim(dim: torch.Tensor, dims: int
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A flat list grouped by dimension, order kept within each.

    Returns ``order`` (the entries by dimension: ``dim[order]`` is sorted), the count
    per dimension, and each ordered entry's position within its dimension.
    """
    order = torch.argsort(dim, stable=True)
    counts = torch.bincount(dim, minlength=dims)
    within = torch.arange(dim.numel()) - (torch.cumsum(counts, 0) - counts)[dim[order]]
    return order, counts, within


class _Mixtures1d(NamedTuple):
    """The 1-D mixtures of every dimension as :func:`_mixture_1d` reads them, built once.

    Attributes:
        mu: Component means, ``(D, M)``.
        half_prec: ``-1 / (2 v)``, ``(D, M)``.
        offset: ``-(log v + log 2 pi) / 2 - peak_d``, ``(D, M)``: at most 0.
        peak: ``max_j -(log v_jd + log 2 pi) / 2``, ``(D,)``: no component's log-density
            exceeds it, so ``q_j - peak_d <= 0`` shifts every exponential below 1.
        sums: ``[1, 1 / v, mu / v]`` per component, ``(D, 3, M)``: the GEMM's left side.
    """

    mu: torch.Tensor
    half_prec: torch.Tensor
    offset: torch.Tensor
    peak: torch.Tensor
    sums: torch.Tensor


def _mixtures_1d(mu_cols: torch.Tensor, lv_cols: torch.Tensor) -> _Mixtures1d:
    """:class:`_Mixtures1d` of components ``(D, M)`` given by their means and log-variances."""
    half_prec, offset = -0.5 * torch.exp(-lv_cols), -0.5 * (lv_cols + _LOG_2PI)
    peak = offset.amax(dim=1)
    sums = torch.stack([torch.ones_like(mu_cols), -2.0 * half_prec, -2.0 * half_prec * mu_cols],
                       dim=1)
    return _Mixtures1d(mu_cols, half_prec, offset - peak[:, None], peak, sums)


def _mixture_1d(t: torch.Tensor, dim: torch.Tensor, mix: _Mixtures1d, chunk_bytes: int,
                by_max: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """``log mean_j N(t; mu_jd, v_jd)`` and its derivative in t, for points t in dimensions d.

    With ``q_j = -(t - mu_jd)^2 / (2 v_jd) - (log v_jd + log 2 pi) / 2 - peak_d``
    (evaluated directly, never as an expanded square; at most 0) and ``w_j = exp(q_j)``::

        f  = peak_d + log(sum_j w_j / M)
        f' = (sum_j w_j mu_jd / v_jd - t sum_j w_j / v_jd) / sum_j w_j

    the three sums one batched GEMM. A point whose ``sum_j w_j`` falls below e^-600
    (more than 600 nats under the tallest peak: beyond every component's reach) is
    evaluated again with ``w_j = exp(q_j - max_k q_k)`` (``by_max``), which cannot
    underflow. Points are grouped by dimension into pieces of ``_PIECE`` (padded),
    so each piece reads its dimension's component row once.

    Args:
        t: Points, shape ``(G,)``.
        dim: The dimension of each point, shape ``(G,)``.
        mix: The mixtures (:func:`_mixtures_1d`).
        chunk_bytes: Bytes of one block of (points x components) values.
        by_max: Shift every point by its own largest ``q_j`` (the fallback).
    """
    dims, m = mix.mu.shape
    order, counts, within = _group_by_dim(dim, dims)
    pieces = (counts + _PIECE - 1) // _PIECE
    piece_dim = torch.repeat_interleave(torch.arange(dims), pieces)
    piece = (torch.cumsum(pieces, 0) - pieces)[dim[order]] + within // _PIECE
    slot = within % _PIECE
    tp = torch.zeros(piece_dim.numel(), _PIECE, dtype=t.dtype)
    tp[piece, slot] = t[order]
    fp, gp, total = torch.empty_like(tp), torch.empty_like(tp), torch.empty_like(tp)
    step = max(1, chunk_bytes // (8 * _PIECE * m))
    for a in range(0, piece_dim.numel(), step):
        d, tc = piece_dim[a:a + step], tp[a:a + step]
        q = (tc[:, :, None] - mix.mu[d][:, None, :]).square_()
        q = torch.addcmul(mix.offset[d][:, None, :], q, mix.half_prec[d][:, None, :], out=q)
        top = torch.zeros_like(tc)
        if by_max:
            top = q.amax(dim=2)
            q.sub_(top[:, :, None])
        # (pieces, _PIECE, 3); (3, M) @ (M, _PIECE) per piece: 2x faster than (_PIECE, M) @ (M, 3)
        r = torch.bmm(mix.sums[d], _exp_(q).transpose(1, 2)).transpose(1, 2)
        fp[a:a + step] = mix.peak[d][:, None] + top + torch.log(r[..., 0] / m)
        gp[a:a + step] = (r[..., 2] - tc * r[..., 1]) / r[..., 0]
        total[a:a + step] = r[..., 0]
    f, g = torch.empty_like(t), torch.empty_like(t)
    f[order], g[order] = fp[piece, slot], gp[piece, slot]
    if not by_max:
        sums = torch.empty_like(t)
        sums[order] = total[piece, slot]
        redo = (sums < _UNDERFLOW).nonzero().squeeze(1)
        if redo.numel():
            f[redo], g[redo] = _mixture_1d(t[redo], dim[redo], mix, chunk_bytes, by_max=True)
    return f, g


def _hermite(t: torch.Tensor, a: torch.Tensor, b: torch.Tensor, fa: torch.Tensor,
             fb: torch.Tensor, ga: torch.Tensor, gb: torch.Tensor) -> torch.Tensor:
    """Cubic Hermite interpolant on [a, b] (values f, derivatives g) evaluated at t."""
    h = b - a
    s = torch.where(h > 0, (t - a) / torch.where(h > 0, h, 1.0), 0.0)
    s2, s3 = s * s, s * s * s
    return ((2 * s3 - 3 * s2 + 1) * fa + (s3 - 2 * s2 + s) * h * ga
            + (-2 * s3 + 3 * s2) * fb + (s3 - s2) * h * gb)


def _rows_by_dim(dim: torch.Tensor, dims: int, values: tuple[torch.Tensor, ...],
                 fills: tuple[float, ...]) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Scatter flat per-dimension lists into padded rows ``(D, width)``, order kept per row.

    Returns the padded tensors (padding ``fills``) and the mask of real entries.
    """
    order, counts, col = _group_by_dim(dim, dims)
    width = int(counts.max()) if dim.numel() else 0
    rows = [torch.full((dims, width), fill, dtype=v.dtype).index_put_((dim[order], col),
                                                                       v[order])
            for v, fill in zip(values, fills, strict=True)]
    return rows, torch.arange(width)[None, :] < counts[:, None]


def _quantiles_of_sorted(ts: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """``torch.quantile(ts, q, dim=1).T`` for rows already sorted: its linear rule, no sort."""
    ranks = q * (ts.shape[1] - 1)
    below = ranks.long()
    return ts[:, below].lerp_(ts[:, ranks.ceil().long()], ranks - below)


class _Grid(NamedTuple):
    """The refined grid of every dimension: nodes with exact values and slopes, padded rows.

    ``t``, ``f``, ``g``: ``(D, width)`` node positions (padding +inf), log-densities and
    slopes; ``size``: real nodes per row ``(D, 1)``; ``exact_lo``, ``exact_hi``: the
    intervals whose queries are evaluated exactly, padded rows ``(D, k)``.
    """

    t: torch.Tensor
    f: torch.Tensor
    g: torch.Tensor
    size: torch.Tensor
    exact_lo: torch.Tensor
    exact_hi: torch.Tensor


def _queries_in(ts: torch.Tensor, dim: torch.Tensor, a: torch.Tensor, b: torch.Tensor
                ) -> torch.Tensor:
    """How many queries (sorted rows ``ts``) of each interval's dimension lie in ``[a, b]``."""
    (a2, b2), real = _rows_by_dim(dim, ts.shape[0], (a, b), (0.0, 0.0))
    count = torch.searchsorted(ts, b2, right=True) - torch.searchsorted(ts, a2)
    out = torch.empty_like(dim)
    out[torch.argsort(dim, stable=True)] = count[real]
    return out


def _start_nodes(ts: torch.Tensor, mixtures: _Mixtures1d, own_sd: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """The first nodes, flat ``(positions, dimension)`` sorted by dimension then position.

    Quantiles of the queries, plus the mean of every component 8 times narrower
    than the quantile interval around it (the peak of a spike no node would see).
    """
    dims, mu, half_prec = ts.shape[0], mixtures.mu, mixtures.half_prec
    q = torch.linspace(0, 1, _GRID_START + 1, dtype=torch.float64)
    quantiles = _quantiles_of_sorted(ts, q)
    # A dimension whose posteriors are at least twice as wide as the widest inner interval
    # between every other quantile (a near-prior, collapsed dimension) starts from those
    # (the odd quantiles repeat their neighbours; repeats are dropped below): 40% fewer
    # evaluations there, while narrower posteriors keep every quantile (measured: halving
    # their start grid costs more refinement and more queries evaluated directly).
    coarse = quantiles[:, ::2]
    wide = own_sd.median(dim=1).values >= 2 * (coarse[:, 2:-1] - coarse[:, 1:-2]).amax(dim=1)
    quantiles[wide, 1::2] = quantiles[wide, :-1:2]
    base = torch.sort(torch.cat([ts[:, :1], quantiles, ts[:, -1:]], dim=1), dim=1).values
    k = torch.searchsorted(base, mu).clamp_(1, base.shape[1] - 1)
    width = base.gather(1, k) - base.gather(1, k - 1)
    sharp = ((_SEED_WIDTHS * torch.sqrt(-0.5 / half_prec) < width)
             & (mu > base[:, :1]) & (mu < base[:, -1:]))
    vals = torch.cat([base.reshape(-1), mu[sharp]])
    vdim = torch.cat([torch.arange(dims).repeat_interleave(base.shape[1]),
                      sharp.nonzero(as_tuple=True)[0]])
    order = torch.argsort(vals, stable=True)
    order = order[torch.argsort(vdim[order], stable=True)]  # by dimension, then value
    vals, vdim = vals[order], vdim[order]
    new = torch.ones_like(vdim, dtype=torch.bool)
    new[1:] = (vdim[1:] != vdim[:-1]) | (vals[1:] != vals[:-1])
    return vals[new], vdim[new]


def _refine(ts: torch.Tensor, mixtures: _Mixtures1d, tol: float, chunk_bytes: int,
            own_sd: torch.Tensor) -> _Grid:
    """Bisect every interval whose Hermite interpolant misses its midpoint by more than tol."""
    dims = ts.shape[0]
    node_t, node_dim = _start_nodes(ts, mixtures, own_sd)
    fn, gn = _mixture_1d(node_t, node_dim, mixtures, chunk_bytes)
    all_t, all_f, all_g, all_dim = [node_t], [fn], [gn], [node_dim]
    left = (node_dim[1:] == node_dim[:-1]).nonzero(as_tuple=True)[0]  # consecutive, same dim
    right = left + 1
    a, b, dim = node_t[left], node_t[right], node_dim[left]
    fa, fb, ga, gb = fn[left], fn[right], gn[left], gn[right]
    exact_lo, exact_hi, exact_dim = [], [], []
    for _ in range(_GRID_LEVELS):
        count = _queries_in(ts, dim, a, b)
        keep = count > 0
        a, b, fa, fb, ga, gb, count, dim = (v[keep] for v in (a, b, fa, fb, ga, gb, count, dim))
        if a.numel() == 0:
            break
        # A dimension whose intervals hold at most two queries each on average is no cheaper
        # to refine than to evaluate: its queries are evaluated exactly.
        per_dim_queries = torch.bincount(dim, weights=count.double(), minlength=dims)
        per_dim_intervals = torch.bincount(dim, minlength=dims)
        done = (per_dim_queries <= 2 * per_dim_intervals)[dim]
        exact_lo.append(a[done])
        exact_hi.append(b[done])
        exact_dim.append(dim[done])
        go = ~done
        a, b, fa, fb, ga, gb, dim = (v[go] for v in (a, b, fa, fb, ga, gb, dim))
        if a.numel() == 0:
            break
        mid = 0.5 * (a + b)
        fm, gm = _mixture_1d(mid, dim, mixtures, chunk_bytes)
        all_t.append(mid)
        all_f.append(fm)
        all_g.append(gm)
        all_dim.append(dim)
        # The interpolant's error near the midpoint, even part (its value) and odd part (its
        # slope: an error (t-a)^2 (t-b)^2 (t-mid) is 0 at mid, at most 0.143 h |e'(mid)|).
        slope = 1.5 * (fb - fa) / (b - a) - 0.25 * (ga + gb)
        bad = (((_hermite(mid, a, b, fa, fb, ga, gb) - fm).abs() > tol)
               | (_ODD_ERROR * (b - a) * (slope - gm).abs() > tol))
        a, b = torch.cat([a[bad], mid[bad]]), torch.cat([mid[bad], b[bad]])
        fa, fb = torch.cat([fa[bad], fm[bad]]), torch.cat([fm[bad], fb[bad]])
        ga, gb = torch.cat([ga[bad], gm[bad]]), torch.cat([gm[bad], gb[bad]])
        dim = torch.cat([dim[bad], dim[bad]])
    exact_lo.append(a)
    exact_hi.append(b)
    exact_dim.append(dim)
    grid_t, grid_f, grid_g, grid_dim = (torch.cat(v) for v in (all_t, all_f, all_g, all_dim))
    order = torch.argsort(grid_t, stable=True)
    (grid, fgrid, ggrid), real = _rows_by_dim(grid_dim[order], dims,
                                              (grid_t[order], grid_f[order], grid_g[order]),
                                              (math.inf, 0.0, 0.0))
    size = real.sum(dim=1, keepdim=True)  # >= 1: every row holds its maximum
    lo, hi, ex_dim = (torch.cat(v) for v in (exact_lo, exact_hi, exact_dim))
    order = torch.argsort(lo, stable=True)
    (lo2, hi2), _ = _rows_by_dim(ex_dim[order], dims, (lo[order], hi[order]),
                                 (math.inf, -math.inf))
    return _Grid(grid, fgrid, ggrid, size, lo2, hi2)


def _interpolate(ts: torch.Tensor, grid: _Grid, mixtures: _Mixtures1d, tol: float,
                 chunk_bytes: int, own: torch.Tensor, own_sd: torch.Tensor) -> torch.Tensor:
    """Every query from its interval's Hermite interpolant, or exactly where it must be."""
    dims = ts.shape[0]
    out = torch.empty_like(ts)
    step = max(1, _QUERY_BLOCK // ts.shape[1])  # dimensions interpolated at once: bounded memory
    for a in range(0, dims, step):
        rows = slice(a, a + step)
        t, size = ts[rows], grid.size[rows]
        k = torch.minimum(torch.searchsorted(grid.t[rows], t), size - 1).clamp_(min=1)
        k = torch.where(size > 1, k, 0)
        lo_k = (k - 1).clamp_(min=0)
        at = [v[rows].gather(1, i) for v in (grid.t, grid.f, grid.g) for i in (lo_k, k)]
        block = _hermite(t, at[0], at[1], at[2], at[3], at[4], at[5])
        block = torch.where(t == at[0], at[2], block)
        block = torch.where(t == at[1], at[3], block)
        out[rows] = block
        # A query whose own posterior is narrower than its interval sits on a spike of
        # log q_d that the nodes may not see; where that spike's share of the density
        # could move the value by more than tol / 10, the query is evaluated exactly.
        exact = (((at[1] - at[0]) > own_sd[rows])
                 & (own[rows] - block > math.log(tol / 10)))
        if grid.exact_lo.shape[1]:  # and the queries of intervals that never passed
            lo2, hi2 = grid.exact_lo[rows], grid.exact_hi[rows]
            j = (torch.searchsorted(lo2, t, right=True) - 1).clamp_(min=0)
            exact |= (t >= lo2.gather(1, j)) & (t <= hi2.gather(1, j))
        d_idx, r_idx = exact.nonzero(as_tuple=True)
        if d_idx.numel():
            out[a + d_idx, r_idx] = _mixture_1d(t[d_idx, r_idx], a + d_idx, mixtures,
                                                chunk_bytes)[0]
    return out


def _log_mixture_adaptive(ts: torch.Tensor, mixtures: _Mixtures1d, tol: float,
                          chunk_bytes: int, own: torch.Tensor, own_sd: torch.Tensor
                          ) -> torch.Tensor:
    """``log mean_j N(t; mu_jd, v_jd)`` at every query by the adaptive grid (module doc).

    All dimensions at once: intervals are flat lists with their dimension, so each
    refinement level is a handful of tensor operations whatever D. Three steps:
    the start nodes (:func:`_start_nodes`), bisection until every interval's
    interpolant meets ``tol`` (:func:`_refine`), then the queries
    (:func:`_interpolate`).

    Args:
        ts: Queries sorted within each dimension, shape ``(D, R)``.
        mixtures: The D mixtures (:func:`_mixtures_1d`).
        tol: Interpolation tolerance at interval midpoints, nats.
        chunk_bytes: Bytes of one block of (points x components) values.
        own: ``log q(t_r|x_owner) - log M`` per query (its own component's share of
            the mixture), in the order of ``ts``.
        own_sd: The own component's standard deviation per query, same order.

    Returns:
        Shape ``(D, R)``, in the order of ``ts``.
    """
    grid = _refine(ts, mixtures, tol, chunk_bytes, own_sd)
    return _interpolate(ts, grid, mixtures, tol, chunk_bytes, own, own_sd)


def exact_dimension_terms(z: torch.Tensor, owner: torch.Tensor, mu: torch.Tensor,
                          logvar: torch.Tensor, chunk_bytes: int = CHUNK_BYTES) -> torch.Tensor:
    """Per-coordinate terms by direct evaluation against every component (shape ``(D, R)``)."""
    r, m = z.shape[0], mu.shape[0]
    out = torch.empty(z.shape[1], r, dtype=torch.float64)
    rows = max(1, chunk_bytes // (8 * m))
    z_cols, mu_cols, lv_cols = (t.T.contiguous() for t in (z, mu, logvar))  # unit stride
    for d in range(z.shape[1]):
        half_prec, offset = -0.5 * torch.exp(-lv_cols[d]), -0.5 * (lv_cols[d] + _LOG_2PI)
        for a in range(0, r, rows):
            zd, own_idx = z_cols[d, a:a + rows], owner[a:a + rows]
            q = (zd[:, None] - mu_cols[d]).square_().mul_(half_prec).add_(offset)
            own = q.gather(1, own_idx[:, None]).squeeze(1)
            top = q.max(dim=1).values
            out[d, a:a + rows] = (own - top) - torch.log(_exp_(q.sub_(top[:, None])).sum(1) / m)
    return out


def dimension_terms(z: torch.Tensor, owner: torch.Tensor, mu: torch.Tensor,
                    logvar: torch.Tensor, chunk_bytes: int = CHUNK_BYTES, tol: float = GRID_TOL,
                    method: str = "auto") -> torch.Tensor:
    """``log q(z_rd|x_owner) - log mean_j q(z_rd|x_j)`` per coordinate d, shape ``(D, R)``.

    Args:
        z: Queries, shape ``(R, D)``, float64.
        owner: Component of each row, shape ``(R,)``.
        mu: Component means, shape ``(M, D)``.
        logvar: Component log-variances, shape ``(M, D)``.
        chunk_bytes: Bytes of one block of log-densities.
        tol: Interpolation tolerance of the grid (nats per query, checked at midpoints).
        method: ``"exact"``, ``"grid"``, or ``"auto"`` (exact below 1024 queries).

    Returns:
        Float64, shape ``(D, R)``. Interpolated values are capped at ``log M``,
        the bound every exact term obeys (``q_d(z) >= q(z_d|x_owner) / M``).
    """
    if method == "exact" or (method == "auto" and z.shape[0] < _GRID_MIN_QUERIES):
        return exact_dimension_terms(z, owner, mu, logvar, chunk_bytes)
    size = distributed.world().size
    if size == 1:
        with _one_thread():
            return _grid_dimension_terms(z, owner, mu, logvar, chunk_bytes, tol)
    # torchrun: each process refines and interpolates its share of the dimensions (dealt
    # round-robin: informative dimensions, the costly ones, often sit together), alone; the
    # rows are gathered once. Each dimension's grid depends on that dimension alone.
    dims = z.shape[1]
    order = torch.tensor([d for r in range(size) for d in range(r, dims, size)])

    def part(a: int, b: int) -> tuple[np.ndarray]:
        mine = order[a:b]
        if not len(mine):
            return (np.empty((0, z.shape[0])),)
        with distributed.local(), _one_thread():
            return (_grid_dimension_terms(z[:, mine], owner, mu[:, mine], logvar[:, mine],
                                          chunk_bytes, tol).numpy(),)

    rows = torch.from_numpy(distributed.map_shard(dims, part, block=1)[0])
    out = torch.empty_like(rows)
    out[order] = rows
    return out


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Run torch on one intra-op thread inside, restoring the count after.

    The grid pass is hundreds of small tensor operations (per dimension before all
    dimensions were refined together; still tens per refinement level); on a busy
    machine every parallel region of each waits for a descheduled thread (measured
    on the per-dimension version: 1.0 s on one thread against 33 s on two for
    D = 32, M = 10,000).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _grid_dimension_terms(z: torch.Tensor, owner: torch.Tensor, mu: torch.Tensor,
                          logvar: torch.Tensor, chunk_bytes: int, tol: float) -> torch.Tensor:
    """:func:`dimension_terms` by the adaptive grid (module docstring), all dimensions at once."""
    m, r = mu.shape[0], z.shape[0]
    z_cols, mu_cols, lv_cols = (t.T.contiguous() for t in (z, mu, logvar))  # unit stride
    out = torch.empty_like(z_cols)
    group = max(1, _GROUP_QUERIES // r)  # dimensions refined together: bounded memory
    step = max(1, _QUERY_BLOCK // r)
    for g in range(0, z.shape[1], group):
        dims = slice(g, g + group)
        # numpy's argsort (SIMD quicksort): 2.4 ms against torch.sort's 16 ms at (32, 8000)
        where = torch.from_numpy(np.argsort(z_cols[dims].numpy(), axis=1))
        ts = z_cols[dims].gather(1, where)
        own = _own_1d(z_cols[dims], mu_cols[dims][:, owner], lv_cols[dims][:, owner])
        own_sd = torch.exp(0.5 * lv_cols[dims][:, owner]).gather(1, where)
        log_q_sorted = _log_mixture_adaptive(ts, _mixtures_1d(mu_cols[dims], lv_cols[dims]), tol,
                                             chunk_bytes, own.gather(1, where) - math.log(m),
                                             own_sd)
        del own_sd
        for a in range(0, ts.shape[0], step):
            rows, at = slice(a, a + step), slice(g + a, g + a + step)
            log_q = torch.empty_like(ts[rows]).scatter_(1, where[rows], log_q_sorted[rows])
            out[at] = (own[rows] - log_q).clamp_(max=math.log(m))
    return out
