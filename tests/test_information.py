"""Mutual-information diagnostic: known answers, a brute-force reference, invariants."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import logsumexp
from scipy.stats import multivariate_normal, norm

from collapse_diag.diagnostics.information import (
    InformationResult,
    information_diagnostic,
    mi_from_samples,
)
from collapse_diag.diagnostics.kl import kl_diagnostic
from collapse_diag.exceptions import DiagnosticError, InvalidParameterError
from collapse_diag.model.encodings import Encodings


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _run(enc, seed=0, **kwargs):
    return information_diagnostic(enc, _gen(seed), mean_kl=kl_diagnostic(enc).total, **kwargs)


def _linear_gaussian(n, d, s2=1.0, v=0.25, seed=0):
    """mu ~ N(0, s2) across inputs, fixed posterior variance v: I = 0.5 ln(1 + s2/v) per dim."""
    mu = np.random.default_rng(seed).normal(scale=math.sqrt(s2), size=(n, d))
    return Encodings(mu=mu, logvar=np.full((n, d), math.log(v)))


def _brute_force(z, mu, logvar):
    """The estimator with explicit loops and scipy densities (tiny inputs only)."""
    m, s, d = z.shape
    full, per = [], [[] for _ in range(d)]
    for i in range(m):
        for k in range(s):
            logq = [multivariate_normal.logpdf(z[i, k], mean=mu[j], cov=np.diag(np.exp(logvar[j])))
                    for j in range(m)]
            full.append(logq[i] - logsumexp(logq) + math.log(m))
            for c in range(d):
                logq_c = [norm.logpdf(z[i, k, c], loc=mu[j, c], scale=math.exp(0.5 * logvar[j, c]))
                          for j in range(m)]
                per[c].append(logq_c[i] - logsumexp(logq_c) + math.log(m))
    return float(np.mean(full)), np.array([np.mean(p) for p in per])


def test_matches_brute_force_reference():
    rng = np.random.default_rng(0)
    mu = rng.normal(size=(6, 2)) * 1.5
    logvar = rng.normal(size=(6, 2)) * 0.5
    z = mu[:, None] + np.exp(0.5 * logvar)[:, None] * rng.normal(size=(6, 3, 2))
    mi, per_dim = mi_from_samples(z, mu, logvar)
    ref_mi, ref_per = _brute_force(z, mu, logvar)
    assert mi == pytest.approx(ref_mi, abs=1e-10)
    np.testing.assert_allclose(per_dim, ref_per, rtol=0, atol=1e-10)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # scipy's reference overflows harmlessly
def test_extreme_log_variance_spread_matches_brute_force():
    # Log-variances -700 and 600 in one dimension: the per-dimension pass's sums of
    # exponentials underflow (~1e-283) for most rows, which are recomputed with the row maximum.
    mu = np.zeros((6, 1))
    logvar = np.array([[-700.0], [600.0], [600.0], [600.0], [600.0], [600.0]])
    eps = np.random.default_rng(0).normal(size=(6, 2, 1))
    z = mu[:, None] + np.exp(0.5 * logvar)[:, None] * eps
    mi, per_dim = mi_from_samples(z, mu, logvar)
    ref_mi, ref_per = _brute_force(z, mu, logvar)
    assert np.isfinite(mi) and np.all(np.isfinite(per_dim))
    assert mi == pytest.approx(ref_mi, abs=1e-10)
    np.testing.assert_allclose(per_dim, ref_per, rtol=0, atol=1e-10)


def test_diagnostic_uses_the_documented_samples():
    enc = _linear_gaussian(40, 3)
    eps = torch.randn((40, 5, 3), generator=_gen(7), dtype=torch.float64).numpy()
    z = enc.mu[:, None] + np.exp(0.5 * enc.logvar)[:, None] * eps
    mi, per_dim = mi_from_samples(z, enc.mu, enc.logvar)
    result = information_diagnostic(enc, _gen(7), mean_kl=1.0, samples=5)
    assert result.mutual_information == mi  # exactly: same draws, same arithmetic
    np.testing.assert_array_equal(result.per_dimension, per_dim)


def test_block_size_does_not_change_the_estimate():
    rng = np.random.default_rng(1)
    mu, logvar = rng.normal(size=(50, 3)), rng.normal(size=(50, 3)) * 0.3
    z = mu[:, None] + np.exp(0.5 * logvar)[:, None] * rng.normal(size=(50, 4, 3))
    big = mi_from_samples(z, mu, logvar)
    small = mi_from_samples(z, mu, logvar, chunk_bytes=8 * 50 * 3)  # 3 rows per block
    assert small[0] == pytest.approx(big[0], abs=1e-12)
    np.testing.assert_allclose(small[1], big[1], rtol=0, atol=1e-12)


def test_collapsed_encoder_has_zero_information():
    enc = Encodings(mu=np.zeros((2000, 3)), logvar=np.zeros((2000, 3)))
    result = _run(enc, samples=4)
    # Identical posteriors: every term is exactly log q - log q, so the estimate is 0.
    assert abs(result.mutual_information) < 1e-12
    np.testing.assert_allclose(result.per_dimension, 0.0, atol=1e-12)
    assert result.marginal_kl == pytest.approx(kl_diagnostic(enc).total, abs=1e-12)
    assert not result.saturated


def test_nearly_collapsed_encoder_has_near_zero_information():
    # mu ~ N(0, 0.01^2), v = 1: true I = 0.5 ln(1 + 1e-4) per dim ~ 5e-5. Tolerance 0.02 nats.
    enc = _linear_gaussian(2000, 3, s2=1e-4, v=1.0)
    result = _run(enc, samples=4)
    assert abs(result.mutual_information) < 0.02
    assert np.all(np.abs(result.per_dimension) < 0.02)
    assert result.marginal_kl == pytest.approx(kl_diagnostic(enc).total, abs=0.02)


def test_deterministic_encoder_saturates_at_log_n():
    n = 300
    mu = np.stack([10.0 * np.arange(n), np.zeros(n)], axis=1)
    logvar = np.stack([np.full(n, math.log(1e-4)), np.zeros(n)], axis=1)
    result = _run(Encodings(mu=mu, logvar=logvar))
    assert result.ceiling == math.log(n) and result.n_used == n
    # Posteriors 1000 std apart: the own component is all of q(z). Tolerance 1e-9 nats.
    assert result.mutual_information == pytest.approx(math.log(n), abs=1e-9)
    assert result.per_dimension[0] == pytest.approx(math.log(n), abs=1e-9)
    assert abs(result.per_dimension[1]) < 1e-12  # the collapsed second dimension
    assert result.saturated and not result.negative


def test_linear_gaussian_closed_form():
    # I = 0.5 ln(1 + s2 / v) = 0.5 ln 5 ~ 0.805 nats per dimension; tolerance 0.05 nats
    # (Monte Carlo std ~0.01 at N = 4000, S = 2 under the default query budget of
    # 10,000, plus O(1/N) finite-mixture bias).
    enc = _linear_gaussian(4000, 2, s2=1.0, v=0.25, seed=2)
    result = _run(enc, samples=4)
    exact = 0.5 * math.log(5.0)
    np.testing.assert_allclose(result.per_dimension, exact, atol=0.05)
    assert result.mutual_information == pytest.approx(2 * exact, abs=0.05)
    # Independent dimensions: the per-dimension figures add up to the joint one.
    assert result.per_dimension.sum() == pytest.approx(result.mutual_information, abs=0.05)
    assert not result.saturated and not result.negative


@pytest.mark.parametrize(("m", "samples", "budget", "expected"), [
    (40, 5, 10_000, 5), (3000, 4, 10_000, 3), (3000, 4, 2999, 1), (2500, 4, 10_000, 4),
    (10_000, 4, 10_000, 1), (7, 2, 1, 1)])
def test_query_budget_sets_the_draws_per_input(m, samples, budget, expected):
    # S = max(1, min(samples, budget // M)), and the draws are the documented ones.
    enc = _linear_gaussian(m, 2, seed=4)
    result = information_diagnostic(enc, _gen(3), mean_kl=1.0, samples=samples,
                                    max_queries=budget, max_components=10_000)
    assert result.samples == expected == result.section().summary["mi_samples_used"]
    if m <= 3000:
        eps = torch.randn((m, expected, 2), generator=_gen(3), dtype=torch.float64).numpy()
        z = enc.mu[:, None] + np.exp(0.5 * enc.logvar)[:, None] * eps
        # the same draws and arithmetic; threaded GEMM sums may reorder: terms <= log M ~ 8
        # nats, so rounding stays far below 1e-12 nats
        assert result.mutual_information == pytest.approx(
            mi_from_samples(z, enc.mu, enc.logvar)[0], rel=0, abs=1e-12)


def test_one_draw_per_input_keeps_the_closed_form_and_its_interval():
    # The budget's one draw per input (M = 4000, budget 4000) leaves the estimator unbiased:
    # the same closed form 2 * 0.5 ln 5 within 0.06 nats (Monte Carlo std ~0.02 with
    # S = 1), and the bootstrap interval, which resamples inputs with their draws, is
    # wider than with S = 4 (it carries the draws' noise) and covers the closed form.
    enc = _linear_gaussian(4000, 2, s2=1.0, v=0.25, seed=2)
    exact = math.log(5.0)
    one = _run(enc, samples=4, max_queries=4000, bootstrap=400)
    four = _run(enc, samples=4, max_queries=16_000, bootstrap=400)
    assert (one.samples, four.samples) == (1, 4)
    assert one.mutual_information == pytest.approx(exact, abs=0.06)
    assert one.mi_ci[0] <= exact <= one.mi_ci[1]
    assert one.mi_ci[1] - one.mi_ci[0] > four.mi_ci[1] - four.mi_ci[0]


def test_subsampling_is_seeded_and_capped():
    enc = _linear_gaussian(300, 2, seed=3)
    a = _run(enc, seed=11, max_components=50)
    b = _run(enc, seed=11, max_components=50)
    c = _run(enc, seed=12, max_components=50)
    assert a.n_used == 50 and a.ceiling == math.log(50)
    assert a.mutual_information == b.mutual_information  # same seed: identical numbers
    np.testing.assert_array_equal(a.per_dimension, b.per_dimension)
    assert a.mutual_information != c.mutual_information  # another seed: another subsample
    # The documented draw order: randperm for the subset, then randn for the samples.
    g = _gen(11)
    keep = np.sort(torch.randperm(300, generator=g)[:50].numpy())
    eps = torch.randn((50, 4, 2), generator=g, dtype=torch.float64).numpy()
    mu, logvar = enc.mu[keep], enc.logvar[keep]
    mi, _ = mi_from_samples(mu[:, None] + np.exp(0.5 * logvar)[:, None] * eps, mu, logvar)
    assert a.mutual_information == mi


def test_no_subsampling_when_n_fits():
    result = _run(_linear_gaussian(60, 2), max_components=60)
    assert result.n_used == 60 and result.ceiling == math.log(60)


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(2, 8),
    d=st.integers(1, 3),
    seed=st.integers(0, 2**16),
    scale=st.floats(0.0, 5.0),
    mean_kl=st.floats(-10.0, 10.0),
)
def test_mi_plus_marginal_kl_is_mean_kl(n, d, seed, scale, mean_kl):
    rng = np.random.default_rng(seed)
    enc = Encodings(mu=scale * rng.normal(size=(n, d)), logvar=rng.normal(size=(n, d)))
    result = information_diagnostic(enc, _gen(seed), mean_kl=mean_kl, samples=2)
    assert result.marginal_kl == mean_kl - result.mutual_information  # the definition
    assert result.mutual_information + result.marginal_kl == pytest.approx(mean_kl, abs=1e-12)
    # No term of the estimator exceeds log M (up to one rounding of log).
    assert result.mutual_information <= result.ceiling + 1e-12
    assert np.all(result.per_dimension <= result.ceiling + 1e-12)


def test_negative_estimate_is_reported_and_flagged():
    # Posteriors 1e-3 apart: true MI ~ 1e-7, so the sign of the estimate is Monte Carlo noise.
    enc = Encodings(mu=np.array([[-1e-3], [0.0], [1e-3]]), logvar=np.zeros((3, 1)))
    results = [information_diagnostic(enc, _gen(seed), mean_kl=0.5, samples=1)
               for seed in range(40)]
    negatives = [r for r in results if r.mutual_information < 0]
    assert negatives, "expected at least one negative estimate among 40 seeds"
    for r in results:
        assert r.negative == (r.mutual_information < 0)
    r = negatives[0]
    assert r.negative and r.marginal_kl > 0.5  # not clipped: marginal KL exceeds mean KL
    assert r.section().summary["mi_negative"] is True


def test_permuting_inputs_with_their_samples_changes_nothing():
    rng = np.random.default_rng(4)
    mu, logvar = rng.normal(size=(30, 2)), rng.normal(size=(30, 2)) * 0.3
    z = mu[:, None] + np.exp(0.5 * logvar)[:, None] * rng.normal(size=(30, 3, 2))
    perm = rng.permutation(30)
    a = mi_from_samples(z, mu, logvar)
    b = mi_from_samples(z[perm], mu[perm], logvar[perm])
    assert b[0] == pytest.approx(a[0], abs=1e-12)
    np.testing.assert_allclose(b[1], a[1], rtol=0, atol=1e-12)


def test_permuting_inputs_changes_the_estimate_only_within_noise():
    # The draws follow input order, so a permutation gives other draws: agreement within
    # 0.1 nats (Monte Carlo std of the difference ~0.03 at N = 1000, S = 4).
    enc = _linear_gaussian(1000, 2, seed=5)
    perm = np.random.default_rng(6).permutation(1000)
    a = _run(enc)
    b = _run(Encodings(mu=enc.mu[perm], logvar=enc.logvar[perm]))
    assert b.mutual_information == pytest.approx(a.mutual_information, abs=0.1)


def test_prior_does_not_enter_the_estimate():
    enc = _linear_gaussian(50, 2)
    with_prior = Encodings(mu=enc.mu, logvar=enc.logvar, prior_mu=enc.mu + 1.0,
                           prior_logvar=enc.logvar - 1.0)
    a = information_diagnostic(enc, _gen(0), mean_kl=1.0)
    b = information_diagnostic(with_prior, _gen(0), mean_kl=1.0)
    assert a.mutual_information == b.mutual_information


def test_section_fields():
    result = _run(_linear_gaussian(20, 3))
    assert isinstance(result, InformationResult)
    section = result.section()
    assert set(section.summary) == {"mutual_information", "marginal_kl", "mi_ceiling",
                                    "mi_examples", "mi_samples_used", "mi_saturated",
                                    "mi_negative",
                                    "mutual_information_ci", "marginal_kl_ci",
                                    "mi_indistinguishable_from_zero",
                                    "mi_indistinguishable_from_ceiling"}
    assert section.summary["mi_examples"] == 20
    assert isinstance(section.summary["mi_saturated"], bool)
    assert section.summary["mutual_information_ci"] is None  # bootstrap=0: no intervals
    assert set(section.dimensions) == {"mutual_information"}
    assert len(section.dimensions["mutual_information"]) == 3
    assert result.samples == 4
    with_ci = _run(_linear_gaussian(20, 3), bootstrap=50).section()
    lo, hi = with_ci.summary["mutual_information_ci"]
    assert lo <= with_ci.summary["mutual_information"] <= hi
    assert isinstance(with_ci.summary["mi_indistinguishable_from_zero"], bool)
    assert set(with_ci.dimensions) == {"mutual_information", "mutual_information_ci",
                                       "mi_indistinguishable_from_zero"}
    assert all(len(pair) == 2 for pair in with_ci.dimensions["mutual_information_ci"])


def test_one_input_is_a_diagnostic_error():
    enc = Encodings(mu=np.zeros((1, 2)), logvar=np.zeros((1, 2)))
    with pytest.raises(DiagnosticError, match="at least 2 inputs"):
        information_diagnostic(enc, _gen(0), mean_kl=0.0)


def test_mismatched_shapes_are_rejected():
    with pytest.raises(InvalidParameterError, match="'z' parameter of mi_from_samples"):
        mi_from_samples(np.zeros((4, 2, 3)), np.zeros((4, 2)), np.zeros((4, 2)))
    with pytest.raises(InvalidParameterError):
        mi_from_samples(np.zeros((4, 2, 2)), np.zeros((4, 2)), np.zeros((3, 2)))
