"""diagnostics.estimators.statistics: against scipy.stats.wilcoxon and brute-force loops."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from scipy.stats import wilcoxon

from collapse_diag.diagnostics.estimators import fisher_grades
from collapse_diag.diagnostics.estimators.fisher_grades import fisher_bootstrap
from collapse_diag.diagnostics.estimators.statistics import (
    bootstrap_ci,
    resample_chunk,
    resample_counts,
    signed_rank_greater,
    wilcoxon_greater,
)

RTOL, ATOL = 1e-9, 1e-15  # agreement with scipy's p-values (rounding of sums and the tails)


def _scipy_p(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    if not np.any(x != 0):
        return 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = float(wilcoxon(x, alternative="greater").pvalue)
    return p if math.isfinite(p) else 1.0


def _column(rng: np.random.Generator, n: int, kind: int) -> np.ndarray:
    """Continuous, rounded (ties and zeros), small integers (many ties), or injected zeros."""
    if kind == 0:
        return rng.normal(0.3, 1.0, n)
    if kind == 1:
        return np.round(rng.normal(0.2, 1.0, n), 1)
    if kind == 2:
        return rng.integers(-2, 4, n).astype(float)
    x = rng.normal(0.0, 1.0, n)
    x[rng.random(n) < 0.2] = 0.0
    return x


# Every branch of scipy's method="auto": exact (n <= 50, no ties or zeros), sign-flip
# enumeration (n <= 13 with ties or zeros; scipy takes seconds there at n = 13, so up
# to 10 here), normal approximation (ties or zeros at 14..50, and n > 50).
@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 10, 14, 20, 37, 50, 51, 80, 400])
def test_signed_rank_matches_scipy_on_random_columns(n):
    rng = np.random.default_rng(n)
    for trial in range(40):
        x = _column(rng, n, trial % 4)
        assert wilcoxon_greater(x) == pytest.approx(_scipy_p(x), rel=RTOL, abs=ATOL), (x, trial)


def test_signed_rank_columns_at_once_match_scipy_column_by_column():
    # missing entries (NaN) as the per-dimension swap leaves them, ties, zeros, an
    # all-zero column, and columns that take each of scipy's three methods
    rng = np.random.default_rng(7)
    x = rng.normal(0.1, 1.0, (120, 10))
    x[60:, 1] = np.nan          # 60 values: normal approximation
    x[40:, 2] = np.nan          # 40, no ties: exact
    x[9:, 3] = np.nan           # 9: exact
    x[:, 4] = np.round(x[:, 4], 1)
    x[:, 5] = 0.0
    x[10:, 6] = np.nan
    x[:10, 6] = np.round(x[:10, 6])  # 10 with ties/zeros: sign-flip enumeration
    x[rng.random(120) < 0.1, 7] = 0.0
    x[:, 8] = -np.abs(x[:, 8])
    expected = [_scipy_p(col) for col in x.T]
    np.testing.assert_allclose(signed_rank_greater(x), expected, rtol=RTOL, atol=ATOL)


def test_signed_rank_known_answers():
    # n positive distinct values: T+ = n (n + 1) / 2, the largest value, P = 2^-n exactly
    for n in (1, 3, 10, 50):
        assert wilcoxon_greater(np.arange(1.0, n + 1)) == pytest.approx(2.0**-n, rel=1e-12)
    # n = 3: the 8 subset sums of {1, 2, 3} are 0 1 2 3 3 4 5 6; T+ = 1 + 3 = 4 -> P(T+ >= 4) = 3/8
    assert wilcoxon_greater(np.array([0.5, -1.0, 2.0])) == pytest.approx(3 / 8, rel=1e-12)
    # +-1 .. +-100 (n = 200: normal approximation): each |x| a tied pair, so T+ is exactly
    # half the rank total, E T+, and p = Phi(0) = 1/2
    x = np.concatenate([np.arange(1.0, 101), -np.arange(1.0, 101)])
    assert wilcoxon_greater(x) == pytest.approx(0.5, rel=1e-12)
    assert wilcoxon_greater(np.zeros(7)) == 1.0
    assert wilcoxon_greater(np.array([])) == 1.0
    assert signed_rank_greater(np.full((5, 2), np.nan)).tolist() == [1.0, 1.0]


def test_bootstrap_ci_equals_the_loop_of_one_draw_per_resample():
    values = np.random.default_rng(0).normal(1.0, 1.0, 700)  # 700 * 2000 > one 2^20 chunk
    low, high = bootstrap_ci(values, 2000, 0.9, torch.Generator().manual_seed(4))
    gen = torch.Generator().manual_seed(4)
    means = [values[torch.randint(0, 700, (700,), generator=gen).numpy()].mean()
             for _ in range(2000)]
    expected = np.quantile(means, [0.05, 0.95])
    np.testing.assert_allclose([low, high], expected, rtol=1e-13)
    assert low < values.mean() < high


def test_bootstrap_ci_covers_the_true_mean_at_the_nominal_rate():
    # 400 samples of 200 exponential values (skewed); 90% intervals: coverage 0.9 +- 3 SE (0.045),
    # less the percentile bootstrap's known under-coverage for skewed data at n = 200 (~0.01)
    rng, gen = np.random.default_rng(1), torch.Generator().manual_seed(1)
    hits = sum(lo <= 1.0 <= hi for lo, hi in
               (bootstrap_ci(rng.exponential(1.0, 200), 500, 0.9, gen) for _ in range(400)))
    assert 0.84 <= hits / 400 <= 0.95


def test_resample_counts_are_the_bincounts_of_the_index_stream():
    blocks = list(resample_counts(9000, 300, torch.Generator().manual_seed(2)))
    assert len(blocks) > 1  # 9000 * 300 indices span several 2^20 chunks
    counts = torch.cat(blocks).numpy()
    gen = torch.Generator().manual_seed(2)
    expected = [np.bincount(torch.randint(0, 9000, (9000,), generator=gen).numpy(),
                            minlength=9000) for _ in range(300)]
    np.testing.assert_array_equal(counts, expected)
    assert np.all(counts.sum(axis=1) == 9000)


def test_resample_counts_within_a_range_are_that_slice_and_keep_the_stream():
    # A process's share of the resamples (whole chunks or not) is that slice of the full counts;
    # the generator ends where the full draw leaves it (the next draw is the same).
    n, resamples = 9000, 400
    chunk = resample_chunk(n, resamples)
    full_gen = torch.Generator().manual_seed(2)
    full = torch.cat(list(resample_counts(n, resamples, full_gen))).numpy()
    assert resamples > 3 * chunk
    for within in (range(0, chunk), range(chunk, 3 * chunk), range(2 * chunk, resamples),
                   range(0, 0), range(5, chunk + 7), range(chunk + 1, resamples - 2)):
        gen = torch.Generator().manual_seed(2)
        blocks = list(resample_counts(n, resamples, gen, within=within))
        part = torch.cat(blocks).numpy() if blocks else np.empty((0, n))
        np.testing.assert_array_equal(part, full[within.start:within.stop])
        assert gen.get_state().equal(full_gen.get_state())


def _fisher_loop(grads, resamples, confidence, seed):
    n, s, _ = grads.shape
    gen = torch.Generator().manual_seed(seed)
    eigs, diags = [], []
    for _ in range(resamples):
        idx = torch.randint(0, n, (n,), generator=gen).numpy()
        f = sum(np.outer(g, g) for i in idx for g in grads[i]) / (n * s)
        eigs.append(np.sort(np.linalg.eigvalsh(f))[::-1])
        diags.append(np.diag(f))
    q = [(1 - confidence) / 2, (1 + confidence) / 2]
    return np.quantile(eigs, q, axis=0).T, np.quantile(diags, q, axis=0).T


@pytest.mark.parametrize("triangle_elements", [1 << 23, 1])  # GEMM of triangles; per resample
def test_fisher_bootstrap_both_paths_match_the_loop(monkeypatch, triangle_elements):
    monkeypatch.setattr(fisher_grades, "_TRIANGLE_ELEMENTS", triangle_elements)
    grads = np.random.default_rng(5).normal(size=(40, 3, 4)) * np.array([2.0, 1.0, 0.3, 0.0])
    eig_ci, diag_ci = fisher_bootstrap(grads, 60, 0.9, torch.Generator().manual_seed(3))
    ref_eig, ref_diag = _fisher_loop(grads, 60, 0.9, 3)
    np.testing.assert_allclose(eig_ci, ref_eig, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(diag_ci, ref_diag, rtol=1e-10, atol=1e-14)
    assert np.all(diag_ci[3] == 0.0)  # a dimension with zero gradient stays exactly 0
