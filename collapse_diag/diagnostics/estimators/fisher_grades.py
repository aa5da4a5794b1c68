"""Graded identifiability: bootstrap intervals of the latent Fisher information and grades.

By the Laplace approximation, along an eigenvector of F = E[g g^T] with
eigenvalue lambda one observation shrinks the prior variance 1 to 1 / (1 + lambda):
the *contraction* is ``lambda / (1 + lambda)``. :func:`fisher_bootstrap` resamples
the inputs (percentile bootstrap, Efron & Tibshirani 1993) for intervals of every
eigenvalue and diagonal entry; :func:`grade` turns an interval into
``identifiable`` / ``weak`` / ``inconclusive`` / ``flat`` (rule in
:mod:`collapse_diag.diagnostics.identifiability` and docs/statuses.md).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from collapse_diag.diagnostics.estimators.statistics import resample_counts

__all__ = ["GRADES", "contraction", "fisher_bootstrap", "fisher_cutoff", "grade"]

#: Grades of an eigen-direction or a dimension, in display order.
GRADES = ("identifiable", "weak", "inconclusive", "flat")
_ZERO = 1e-12  # nats^2: below this a Fisher value is numerically zero
_TRIANGLE_ELEMENTS = 1 << 23  # per-input outer-product triangles held at once (64 MiB)


def fisher_cutoff(largest: float, rtol: float, atol: float) -> float:
    """The Fisher cut-off ``max(rtol * largest, atol)`` (settings ``fisher_rank_rtol``/``_atol``).

    The one definition of the rule. A Fisher value (an eigenvalue, or a diagonal
    entry's lower bound) at or above it, and > 0, counts as identifiable: the
    rank uses the largest eigenvalue of E[g g^T]
    (:func:`~collapse_diag.diagnostics.identifiability.fisher_rank`, stored as
    ``summary.fisher_rank_cutoff``), the verdict's per-dimension Fisher evidence the
    largest diagonal entry (:mod:`~collapse_diag.diagnostics.verdict`).
    """
    return max(rtol * float(largest), atol)


def grade(low: np.ndarray, high: np.ndarray, atol: float) -> list[str]:
    """Identifiability grade of each interval ``[low, high]`` (rule in the module docstring)."""
    out = []
    for lo, hi in zip(np.asarray(low, float), np.asarray(high, float), strict=True):
        if lo >= atol and lo > _ZERO:
            out.append("identifiable")
        elif hi < atol:
            out.append("weak" if lo > _ZERO else "flat")
        else:
            out.append("inconclusive")
    return out


def fisher_bootstrap(grads: np.ndarray, resamples: int, confidence: float,
                     generator: torch.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap intervals of the Fisher eigenvalues and diagonal.

    A resample with counts ``w_i`` (how often input i was drawn, sum n) has
    ``F_w = sum_i w_i P_i / (n S)`` with the per-input outer products
    ``P_i = sum_s g_is g_is^T``, so all resamples are one GEMM of the counts
    ``(B, n)`` against the upper triangles of the ``P_i`` (``(n, D (D + 1) / 2)``,
    computed once), followed by one batched ``eigvalsh`` of the ``(B, D, D)``
    stack: ``B n D^2 / 2`` flops plus B eigen-decompositions, no Python loop over
    resamples (torch's BLAS and LAPACK, which follow ``torch.set_num_threads``).
    Where the triangles would pass 2^23 values (64 MiB: D of a few hundred, or
    n above 2^23 / (S D (D + 1) / 2), 15,887 inputs at D = 32) the counts of every
    resample are held as bytes and the triangles computed chunk by chunk of inputs
    (:func:`_sums_by_input_chunks`): memory O(B n) bytes, never O(n D^2). The
    counts come from :func:`~collapse_diag.diagnostics.estimators.statistics.resample_counts`
    (one ``randint(0, n, (n,))`` per resample, as before), so the intervals are
    the previous ones up to rounding (~1e-15 relative).

    Args:
        grads: Per-input gradients ``(N, S, D)`` (S draws per input); F = mean g g^T.
        resamples: Bootstrap resamples over inputs (0: zero-width intervals at the estimate).
        confidence: Level of the intervals.
        generator: Seeded CPU generator.

    Returns:
        ``(eigenvalue_ci, diagonal_ci)``, each ``(D, 2)``; eigenvalues sorted
        descending within each resample.
    """
    n, s, dim = grads.shape
    flat = grads.reshape(n * s, dim)
    if resamples == 0 or n == 0:
        f = flat.T @ flat / max(1, n * s)
        eig, diag = np.linalg.eigvalsh(f)[::-1], np.diag(f)
        return np.column_stack([eig, eig]), np.column_stack([diag, diag])
    rows, cols = (torch.from_numpy(i) for i in np.triu_indices(dim))
    g = torch.from_numpy(np.ascontiguousarray(grads, dtype=np.float64))
    upper = rows * dim + cols
    # inputs whose full D x D products are held at once: an eighth of the triangles'
    # bound (8 MiB), so the transient stays small beside the triangles themselves
    chunk = max(1, _TRIANGLE_ELEMENTS // (8 * dim * dim))

    def triangles_of(a: int, b: int) -> torch.Tensor:  # P_i's upper triangles, inputs a..b-1
        part = g[a:b]
        return torch.bmm(part.transpose(1, 2), part).reshape(-1, dim * dim).index_select(
            1, upper)

    if n * s * len(rows) <= _TRIANGLE_ELEMENTS:  # every P_i's triangle held, (n, D (D + 1) / 2)
        triangles = torch.cat([triangles_of(a, a + chunk) for a in range(0, n, chunk)])
        sums = (counts @ triangles for counts in resample_counts(n, resamples, generator))
    else:
        sums = iter([_sums_by_input_chunks(triangles_of, n, resamples, chunk, generator)])
    step = max(1, _TRIANGLE_ELEMENTS // (dim * dim))  # resamples whose F_w are held at once
    eigs, diags = torch.empty(resamples, dim, dtype=torch.float64), torch.empty(
        resamples, dim, dtype=torch.float64)
    done = 0
    for block in sums:
        for part in block.split(step):
            b = part.shape[0]
            f = torch.zeros(b, dim, dim, dtype=torch.float64)
            f[:, rows, cols] = part / (n * s)
            eigs[done:done + b] = torch.linalg.eigvalsh(f, UPLO="U").flip(-1)
            diags[done:done + b] = torch.diagonal(f, dim1=1, dim2=2)
            done += b
    eigs, diags = eigs.numpy(), diags.numpy()
    q = [(1 - confidence) / 2, (1 + confidence) / 2]
    return np.quantile(eigs, q, axis=0).T, np.quantile(diags, q, axis=0).T


def _sums_by_input_chunks(triangles_of: Any, n: int, resamples: int, chunk: int,
                          generator: torch.Generator) -> torch.Tensor:
    """``sum_i w_i P_i`` (upper triangles) of every resample, ``(B, D (D + 1) / 2)``.

    For inputs too many to hold all their triangles: the resample counts are kept as
    bytes (``B x n``; a count above 255, which needs n draws to hit one input 256
    times, keeps that block in int32) and the triangles are computed once, chunk by
    chunk of inputs, each chunk one GEMM against its columns of the counts. Before
    issue 28 each resample was a ``G^T diag(w) G`` of its own: 2.4 s of the 12 s of
    identifiability at N = 20,000, D = 32 (text32, one thread).
    """
    blocks = [c.to(torch.uint8) if c.max() <= 255 else c.to(torch.int32)
              for c in resample_counts(n, resamples, generator)]
    dtype = torch.int32 if any(b.dtype == torch.int32 for b in blocks) else torch.uint8
    counts = torch.cat([b.to(dtype) for b in blocks])
    del blocks
    out = None
    for a in range(0, n, chunk):
        tri = triangles_of(a, a + chunk)
        part = counts[:, a:a + chunk].to(torch.float64) @ tri
        out = part if out is None else out.add_(part)
    return out


def contraction(values: np.ndarray) -> np.ndarray:
    """``lambda / (1 + lambda)`` (eigenvalues below 0 through rounding count as 0)."""
    v = np.maximum(np.asarray(values, dtype=np.float64), 0.0)
    return v / (1.0 + v)
