"""Bootstrap-t quantiles of many column means at once, in bounded memory.

For k columns of n values x_id (centred: c_id = x_id - m_d), resample b draws n
inputs with replacement (counts w_bi, summing to n) and gives per column::

    m_bd - m_d = sum_i w_bi c_id / n,   s2_bd = (sum_i w_bi c_id^2 / n - (m_bd - m_d)^2) n / (n - 1)
    t_bd = (m_bd - m_d) / sqrt(s2_bd / n)

(a resample of one repeated value has s2_bd = 0 and t_bd = +-inf, or 0 when its mean
is m_d). The interval of :func:`~collapse_diag.diagnostics.estimators.swap_decision.
estimate_intervals` needs of the B values t_bd only two order statistics per column,
the ``j_lo``-th smallest and the ``j_hi``-th (0-based), both within about 10 of an end
(B is about 20 / error). So the B x k statistics are never held: the counts come in
chunks of at most 2^20 entries, each chunk's statistics in blocks of at most 2^20
entries (a block of columns at a time), and only the ``j_lo + 1`` smallest and the
``B - j_hi`` largest values seen so far are kept per column. Memory is
O(2^20 + (j_lo + 1 + B - j_hi) k + n k), whatever B; the values returned are exactly
the order statistics of all B (``np.quantile(..., method="lower" / "higher")`` of
the whole B x k array gives the same numbers: tests/test_swap_coverage.py).

Random draws: B resamples of n indices from the generator
(:func:`~collapse_diag.diagnostics.estimators.statistics.resample_counts`).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from collapse_diag.diagnostics.estimators.statistics import resample_counts

__all__ = ["quantile_ranks", "studentized_extremes"]

_BLOCK_ELEMENTS = 1 << 20  # resample statistics held at once (b x columns of a block)


def quantile_ranks(resamples: int, error: float) -> tuple[int, int]:
    """0-based ranks of ``np.quantile``'s ``error / 2`` and ``1 - error / 2`` quantiles.

    Among ``resamples`` sorted values, with the virtual index ``q (B - 1)`` rounded
    down (``method="lower"``) and up (``method="higher"``).
    """
    at = np.array([error / 2 * (resamples - 1), (1 - error / 2) * (resamples - 1)])
    return int(np.floor(at[0])), min(resamples - 1, int(np.ceil(at[1])))


def studentized_extremes(centred: np.ndarray, resamples: int, error: float,
                         generator: torch.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The ``error / 2`` and ``1 - error / 2`` quantiles of t_bd per column (module docstring).

    Args:
        centred: Values minus their column mean, ``(n, k)``, n >= 2, float64 (moments
            about the mean: no cancellation in ``m2 - diff^2``).
        resamples: B.
        error: Two-sided error; the ranks are :func:`quantile_ranks`.
        generator: Seeded CPU generator (B resamples of n indices drawn).

    Returns:
        ``(q_lo, q_hi)``, each ``(k,)``.
    """
    n, k = centred.shape
    j_lo, j_hi = quantile_ranks(resamples, error)
    keep_lo, keep_hi = j_lo + 1, resamples - j_hi
    moments = torch.from_numpy(np.concatenate([centred, centred**2], axis=1) / n)
    lowest = torch.full((keep_lo, k), math.inf, dtype=torch.float64)
    highest = torch.full((keep_hi, k), -math.inf, dtype=torch.float64)
    for counts in resample_counts(n, resamples, generator):
        width = max(1, _BLOCK_ELEMENTS // counts.shape[0])
        for lo in range(0, k, width):
            cols = slice(lo, min(lo + width, k))
            stats = _t_stats(counts, moments, cols, k, n)
            lowest[:, cols] = torch.topk(torch.cat([lowest[:, cols], stats]), keep_lo, dim=0,
                                         largest=False).values
            highest[:, cols] = torch.topk(torch.cat([highest[:, cols], stats]), keep_hi,
                                          dim=0).values
    return lowest.max(dim=0).values.numpy(), highest.min(dim=0).values.numpy()


def _t_stats(counts: torch.Tensor, moments: torch.Tensor, cols: slice, k: int, n: int
             ) -> torch.Tensor:
    """t_bd of the resamples ``counts`` ``(b, n)`` for the columns ``cols``, ``(b, cols)``.

    ``moments`` holds ``[c, c^2] / n`` ``(n, 2k)``; ``t = diff / sqrt(max(m2 - diff^2, 0)
    / (n - 1))``, +-inf where that is 0 and diff is not, 0 where both are.
    """
    idx = torch.arange(cols.start, cols.stop)
    diff, m2 = (counts @ moments[:, torch.cat([idx, idx + k])]).split(len(idx), dim=1)
    scale = torch.addcmul(m2, diff, diff, value=-1.0).clamp_(min=0.0).div_(n - 1).sqrt_()
    return torch.div(diff, scale).nan_to_num_(nan=0.0, posinf=math.inf, neginf=-math.inf)
