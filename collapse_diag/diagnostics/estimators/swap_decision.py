"""Simultaneous intervals and the three-valued decoder-use decision of the per-dimension swap.

Pure functions on arrays of per-dimension swap deltas (rules and a worked
example in docs/statuses.md):

* **Rounds.** The per-dimension swap runs on a growing sample of fresh inputs,
  sizes ``n_1 = per_dim_swap_examples`` doubling up to the budget
  ``n_R = min(N, per_dim_swap_max_examples)`` (:func:`round_schedule`).
* **Intervals.** After round r, for every dimension still sampled, a two-sided
  Student-t interval of the mean delta at error ``alpha / (R * D)``
  (:func:`t_interval`). By Bonferroni's inequality over the R rounds and D
  dimensions, all R * D intervals hold at once with probability >= 1 - alpha
  (for means that the t approximation fits), whatever the stopping rule does:
  this is the alpha-spending. A dimension's reported interval is the
  intersection of its intervals over the rounds (still covering the mean on that
  event), so a decision once made never reverts.
* **Decision** (:func:`decide`): ``used`` when the lower bound is > 0;
  ``ignored`` when the upper bound is <= the negligible-effect threshold
  (an equivalence test); ``undetermined`` otherwise.
* **Threshold** (:func:`negligible_thresholds`):
  ``t_d = min(negligible_swap_nats, negligible_swap_fraction * I_d)``. A decoder
  that fully uses the information in z_d (p(x|z) ∝ q(z|x) / q(z)) has expected
  per-dimension swap delta E[KL(q(z_d|x) || q(z_d)) + KL(q(z_d) || q(z_d|x))] >= I(x; z_d),
  so an effect below a tenth of I_d is a decoder reading at most a tenth of what
  the dimension carries, and the absolute cap (default 0.01 nats, the scale of
  ``kl_eps``) keeps effects of 0.01 nats and more from ever counting as negligible.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy.stats import norm
from scipy.stats import t as student_t

__all__ = [
    "DECISIONS",
    "decide",
    "inputs_to_decide",
    "interval_error",
    "negligible_thresholds",
    "round_schedule",
    "t_interval",
]

#: The decoder-use values of one dimension.
DECISIONS = ("used", "ignored", "undetermined")


def round_schedule(first: int, budget: int) -> list[int]:
    """Cumulative sample sizes of the rounds: ``first, 2 first, 4 first, ...`` ending at ``budget``.

    ``[]`` when ``first == 0`` or ``budget == 0`` (the per-dimension swap is off).
    """
    first = min(first, budget)
    if first <= 0:
        return []
    sizes = [first]
    while sizes[-1] < budget:
        sizes.append(min(2 * sizes[-1], budget))
    return sizes


def interval_error(alpha: float, rounds: int, dims: int) -> float:
    """Two-sided error of each interval, ``alpha / (rounds * dims)`` (Bonferroni)."""
    return alpha / max(1, rounds * dims)


def t_interval(values: np.ndarray, error: float) -> tuple[float, float, float, float]:
    """Mean, sample std and the two-sided Student-t interval of the mean of ``values``.

    ``mean -+ t_{1 - error/2, n-1} * sd / sqrt(n)``. Values that are all equal
    (e.g. every delta exactly 0: a decoder with zero weight on the dimension)
    give the zero-width interval ``[mean, mean]``; fewer than 2 values give
    ``(-inf, inf)`` (no variance estimate).

    Returns:
        ``(mean, sd, low, high)``.
    """
    v = np.asarray(values, dtype=np.float64)
    n = v.size
    if n == 0:
        return math.nan, math.nan, -math.inf, math.inf
    mean = float(v.mean())
    if n < 2:
        return mean, math.nan, -math.inf, math.inf
    if np.all(v == v[0]):
        return mean, 0.0, mean, mean
    sd = float(v.std(ddof=1))
    half = _t_quantile(1.0 - error / 2.0, n - 1) * sd / math.sqrt(n)
    return mean, sd, mean - half, mean + half


@functools.lru_cache(maxsize=256)
def _t_quantile(level: float, dof: int) -> float:
    """``student_t.ppf(level, dof)``, cached: the rounds ask it for every dimension at one n."""
    return float(student_t.ppf(level, dof))


def negligible_thresholds(reference: np.ndarray | None, dim: int, cap: float,
                          fraction: float) -> np.ndarray:
    """Negligible-effect threshold per dimension, ``min(cap, fraction * max(I_d, 0))``.

    Args:
        reference: I(x; z_d) per dimension (nats), or an upper bound of it such
            as the mean KL_d; NaN entries and ``None`` fall back to ``cap``.
        dim: D.
        cap: ``Settings.negligible_swap_nats``.
        fraction: ``Settings.negligible_swap_fraction``.

    Returns:
        Shape ``(D,)``, each in ``[0, cap]``.
    """
    if reference is None:
        return np.full(dim, float(cap))
    ref = np.asarray(reference, dtype=np.float64)
    rel = fraction * np.maximum(ref, 0.0)
    return np.where(np.isfinite(ref), np.minimum(cap, rel), float(cap))


def decide(low: np.ndarray, high: np.ndarray, threshold: np.ndarray) -> np.ndarray:
    """``used`` (low > 0), ``ignored`` (high <= threshold) or ``undetermined``, per dimension."""
    low, high = np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
    return np.where(low > 0, "used", np.where(high <= threshold, "ignored", "undetermined"))


def inputs_to_decide(mean: np.ndarray, sd: np.ndarray, threshold: np.ndarray,
                     error: float) -> list[int | None]:
    """Inputs likely to decide each dimension, from its observed mean and std.

    With the normal critical value c = z_{1 - error/2}: ``(c sd / mean)^2`` to
    show use (when mean > 0) and ``(c sd / (threshold - mean))^2`` to show a
    negligible effect (when mean < threshold); the smaller applies. ``None``
    when neither can be shown at the observed mean (or the std is unknown).
    """
    c = float(norm.ppf(1.0 - error / 2.0))
    out: list[int | None] = []
    for m, s, t in zip(np.asarray(mean, float), np.asarray(sd, float),
                       np.asarray(threshold, float), strict=True):
        if not (math.isfinite(m) and math.isfinite(s)):
            out.append(None)
            continue
        routes = [(c * s / m) ** 2] if m > 0 else []
        routes += [(c * s / (t - m)) ** 2] if m < t else []
        out.append(int(math.ceil(min(routes))) if routes else None)
    return out
