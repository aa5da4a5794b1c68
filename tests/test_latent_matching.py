"""MCC with Hungarian matching and CCA: known answers and a brute-force reference."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.stats import spearmanr

from collapse_diag.runs.latent_matching import abs_correlation, cca_correlations, match_latents


@pytest.fixture(scope="module")
def code():
    rng = np.random.default_rng(0)
    return rng.standard_normal((800, 5)) * [3.0, 2.0, 1.0, 0.5, 0.1] + 0.3


def test_permuted_sign_flipped_copy_has_mcc_one(code):
    rng = np.random.default_rng(1)
    perm = rng.permutation(5)
    copy = code[:, perm] * rng.choice([-1.0, 1.0], 5) * rng.uniform(0.5, 4, 5) + 2.0
    res = match_latents(code, copy)
    assert res.mcc == pytest.approx(1.0, abs=1e-6)
    assert res.mcc_spearman == pytest.approx(1.0, abs=1e-6)
    assert res.cca == pytest.approx(1.0, abs=1e-6)
    # copy[:, j] is code[:, perm[j]]: dimension perm[j] of a matches dimension j of b.
    assert sorted(res.matched) == sorted([int(p), j] for j, p in enumerate(perm))


def test_random_linear_map_is_not_identifiable_but_spans_the_same_space(code):
    mixed = code @ np.random.default_rng(2).standard_normal((5, 5))
    res = match_latents(code, mixed)
    assert res.mcc < 0.85  # well below 1: the coordinates are mixed
    assert res.cca == pytest.approx(1.0, abs=1e-6)  # an invertible linear map


def test_independent_codes_score_near_zero(code):
    other = np.random.default_rng(3).standard_normal(code.shape)
    res = match_latents(code, other)
    # |corr| of independent columns on N = 800 is ~ N(0, 1/800) in magnitude: < 0.15.
    assert res.mcc < 0.15 and res.cca < 0.2


def test_hungarian_matches_brute_force_over_permutations():
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((60, 4)), rng.standard_normal((60, 4))
    b[:, 2] += 2 * a[:, 0]
    corr = abs_correlation(a, b)
    brute = max(np.mean([corr[i, p[i]] for i in range(4)])
                for p in itertools.permutations(range(4)))
    assert match_latents(a, b).mcc == pytest.approx(brute, rel=1e-12)


def test_correlations_match_numpy_and_scipy():
    rng = np.random.default_rng(5)
    a, b = rng.standard_normal((50, 3)), rng.standard_normal((50, 2))
    expected = np.abs(np.corrcoef(a.T, b.T)[:3, 3:])
    np.testing.assert_allclose(abs_correlation(a, b), expected, rtol=1e-12)
    res = match_latents(a, b ** 3)  # a monotone map: Spearman matches scipy's on the pairs
    rho = np.abs(spearmanr(a, b ** 3).statistic[:3, 3:])
    assert res.mcc_spearman == pytest.approx(
        max(np.mean([rho[i, j] for i, j in zip(p, range(2))])
            for p in itertools.permutations(range(3), 2)), rel=1e-12)


def test_rectangular_and_constant_columns():
    rng = np.random.default_rng(6)
    a = rng.standard_normal((100, 3))
    b = np.column_stack([a[:, 1], np.zeros(100)])  # a constant column correlates 0
    res = match_latents(a, b)
    assert len(res.matched) == 2 and [1, 0] in res.matched
    assert res.mcc == pytest.approx(0.5, abs=1e-9)
    assert len(cca_correlations(a, b)) == 2


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="cannot be matched"):
        match_latents(np.zeros((5, 2)), np.zeros((6, 2)))
