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
* **Estimate intervals** (:func:`estimate_intervals`). The decision interval
  above is not an interval for the printed mean: it is intersected over the
  rounds (its bounds may come from an early round of few inputs, and the mean
  of all inputs may lie outside it), and a Student-t interval on 16 right-skewed
  deltas at error 0.001 undercovers (measured: simultaneous non-coverage 0.18
  at alpha 0.05 with 16 inputs in round 1; benchmarks/bench_swap_coverage.py).
  The estimate interval is a studentized (bootstrap-t) interval of the mean of
  all the inputs d used, at the same error ``alpha / (R D)``: by the union
  bound over the R rounds at which d could stop, it holds at the data-dependent
  stopping round, for all D dimensions at once, at 1 - alpha; the bootstrap-t
  corrects the skewness the t-interval ignores (Hall 1988; Efron & Tibshirani
  1993, ch. 12). It always contains the mean.
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

References:
    Hall (1988), "Theoretical comparison of bootstrap confidence intervals",
    Annals of Statistics 16. Efron & Tibshirani (1993), "An Introduction to the
    Bootstrap", ch. 12 (bootstrap-t).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
from scipy.stats import norm
from scipy.stats import t as student_t

from collapse_diag.diagnostics.estimators.bootstrap_t import studentized_extremes

__all__ = [
    "CLT_FIRST_ROUND",
    "DECISIONS",
    "decide",
    "estimate_intervals",
    "estimate_resamples",
    "inputs_to_decide",
    "interval_error",
    "negligible_thresholds",
    "round_schedule",
    "t_interval",
]

#: The decoder-use values of one dimension.
DECISIONS = ("used", "ignored", "undetermined")

#: Round-1 size from which the decision intervals held at their stated level in the
#: coverage benchmark (simultaneous miss 0.035 at 128 inputs against 0.137 at 16, alpha
#: 0.05; docs/statuses.md), the size the t approximation needs on skewed deltas.
CLT_FIRST_ROUND = 128

#: Bootstrap-t resamples expected beyond each end of the interval (sets the resample count).
_TAIL_RESAMPLES = 10


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


def whole_swap_threshold(mutual_information: float | None, cap: float, fraction: float
                         ) -> float:
    """The negligible threshold of the whole-vector swap, ``min(cap, fraction * I(x; z))``.

    :func:`negligible_thresholds` of one "dimension", the whole code (the cap alone without
    the MI). Read by the verdict and by the report's sentence on the decoder.
    """
    reference = None if mutual_information is None else np.array([float(mutual_information)])
    return float(negligible_thresholds(reference, 1, cap, fraction)[0])


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


def estimate_resamples(error: float) -> int:
    """Bootstrap-t resamples for an interval at two-sided ``error``: ``ceil(2 * 10 / error)``.

    That leaves about 10 resampled statistics beyond each quantile used (at
    least 1,000 resamples), so the ends of the interval do not rest on one or two draws.
    """
    return max(1000, int(math.ceil(2 * _TAIL_RESAMPLES / error)))


def estimate_intervals(delta: np.ndarray, error: float, generator: torch.Generator
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap-t interval of each dimension's mean delta over all the inputs it used.

    For column d with its n finite values (a prefix of the rows: decided dimensions
    leave the rounds), mean m, std s and se = s / sqrt(n), each resample b gives
    ``t_b = (m_b - m) / (s_b / sqrt(n))``; the interval is
    ``[m - q_{1 - error/2}(t) se, m - q_{error/2}(t) se]`` (quantiles taken outwards,
    ``method="higher"`` / ``"lower"``), widened to contain m. Columns with the same n
    share their resamples (one count matrix against all of them). Values all equal
    give ``[m, m]`` (as :func:`t_interval`); fewer than 2 values ``(-inf, inf)``;
    no value ``(nan, nan)``. A resample of one repeated value has s_b = 0 and
    ``t_b = +-inf``, which only widens the interval; a bound that cannot be computed
    (the std underflows) is infinite.

    Cost: ``B n`` random indices and a ``(B, n) @ (n, 2k)`` product per distinct n
    (B = ``estimate_resamples(error)``, k dimensions with that n). Memory: the B x k
    statistics are streamed and only the two order statistics used are kept per
    dimension (:func:`~collapse_diag.diagnostics.estimators.bootstrap_t.
    studentized_extremes`), so it is O(2^20 + n k + k) floats whatever B; before,
    the B x k array was held (3.4 GB at D = 1024 on 40 inputs, where B = 409,600).
    Since B grows as R D / alpha, the product is O(n D^2) when all D dimensions
    share n (docs/performance.md, "Growth with the latent size").

    Random draws: for each distinct n, ascending, ``estimate_resamples(error)`` resamples
    of n indices from ``generator``
    (:func:`~collapse_diag.diagnostics.estimators.statistics.resample_counts`).

    Args:
        delta: Per-dimension swap deltas ``(M, D)``; NaN where a dimension was no
            longer sampled.
        error: Two-sided error of each interval, ``alpha / (R D)``.
        generator: The diagnostic's seeded CPU generator.

    Returns:
        ``(low, high)``, each ``(D,)``.
    """
    v = np.asarray(delta, dtype=np.float64)
    count = np.isfinite(v).sum(axis=0)
    low, high = np.full(v.shape[1], math.nan), np.full(v.shape[1], math.nan)
    resamples = estimate_resamples(error)
    for n in sorted(set(count.tolist())):
        dims = np.flatnonzero(count == n)
        if n == 0:
            continue
        col = v[:n, dims]
        mean = col.mean(axis=0)
        if n < 2:
            low[dims], high[dims] = -math.inf, math.inf
            continue
        flat = np.all(col == col[0], axis=0)
        low[dims[flat]] = high[dims[flat]] = mean[flat]
        dims, col, mean = dims[~flat], col[:, ~flat], mean[~flat]
        if dims.size == 0:
            continue
        se = col.std(axis=0, ddof=1) / math.sqrt(n)
        q_lo, q_hi = studentized_extremes(col - mean, resamples, error, generator)
        with np.errstate(invalid="ignore"):  # inf * 0 when the std underflows: unbounded
            low[dims] = np.nan_to_num(np.minimum(mean - q_hi * se, mean), nan=-math.inf)
            high[dims] = np.nan_to_num(np.maximum(mean - q_lo * se, mean), nan=math.inf)
    return low, high
