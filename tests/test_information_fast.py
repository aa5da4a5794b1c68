"""The GEMM estimator and its per-dimension grid against the direct computation; intervals."""

import math

import numpy as np
import pytest
import torch
from toy_models import ToyVAE, closed_form

from collapse_diag.diagnostics.estimators.mixture_density import GRID_TOL, dimension_terms
from collapse_diag.diagnostics.information import (
    bootstrap_intervals,
    information_diagnostic,
    mi_terms,
)
from collapse_diag.diagnostics.kl import kl_diagnostic
from collapse_diag.model.encodings import Encodings


def _samples(mu, logvar, s, seed):
    eps = np.random.default_rng(seed).normal(size=(mu.shape[0], s, mu.shape[1]))
    return mu[:, None] + np.exp(0.5 * logvar)[:, None] * eps


@pytest.mark.parametrize("spread", [0.3, 1.0, 3.0])
def test_grid_matches_direct_per_dimension_terms(spread):
    # Posterior stds from 0.02 to 2.7 (logvar ~ N(-1, spread^2), clipped to [-8, 2]).
    rng = np.random.default_rng(1)
    mu = rng.normal(size=(800, 3)) * np.array([0.05, 1.0, 4.0])
    logvar = np.clip(rng.normal(-1.0, spread, size=(800, 3)), -8, 2)
    z = _samples(mu, logvar, 4, 2)  # 3,200 queries: above the exact-path threshold
    grid = mi_terms(z, mu, logvar, per_dim_method="grid")[1]
    exact = mi_terms(z, mu, logvar, per_dim_method="exact")[1]
    # Every interpolated query is within GRID_TOL = 1e-6 nats (checked at interval midpoints,
    # then interpolated on halves); per-input means inherit the bound.
    np.testing.assert_allclose(grid, exact, rtol=0, atol=GRID_TOL)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_interpolated_query_is_within_the_grid_tolerance(seed):
    # Wide, multimodal 1-D mixtures (component means spread 2-3, posterior sd ~0.6): in
    # their sparse tails a Hermite interval can match log q_d at its midpoint by chance
    # while missing it by 3e-6 nats elsewhere (seed 0 did, before the slope check). Per
    # query, not per input mean: every term within GRID_TOL = 1e-6 of the direct computation.
    rng = np.random.default_rng(seed)
    mu = rng.normal(size=(1500, 4)) * np.linspace(2.0, 3.0, 4)
    logvar = np.clip(rng.normal(-1.0, 0.3, size=(1500, 4)), -8, 2)
    z = torch.from_numpy(_samples(mu, logvar, 4, seed + 10).reshape(-1, 4) - mu.mean(0))
    owner = torch.arange(1500).repeat_interleave(4)
    args = (z, owner, torch.from_numpy(mu - mu.mean(0)), torch.from_numpy(logvar))
    grid, exact = dimension_terms(*args, method="grid"), dimension_terms(*args, method="exact")
    assert float((grid - exact).abs().max()) <= GRID_TOL


def test_grid_falls_back_to_exact_where_the_mixture_is_sharp():
    # Posteriors 1e-3 wide, 1 apart: log q_d dips by ~1e5 nats between them, so Hermite
    # intervals pass only close to the posterior centres (measured: about half the queries,
    # within 2e-9 nats) and the rest are evaluated directly: each within GRID_TOL, their
    # mean log M to 1e-9.
    n = 600
    mu = np.stack([np.arange(n, dtype=float), np.zeros(n)], axis=1)
    logvar = np.stack([np.full(n, math.log(1e-6)), np.zeros(n)], axis=1)
    z = torch.from_numpy(_samples(mu, logvar, 4, 3).reshape(-1, 2) - mu.mean(0))
    owner = torch.arange(n).repeat_interleave(4)
    args = (z, owner, torch.from_numpy(mu - mu.mean(0)), torch.from_numpy(logvar))
    grid, exact = dimension_terms(*args, method="grid"), dimension_terms(*args, method="exact")
    np.testing.assert_allclose(grid.numpy(), exact.numpy(), rtol=0, atol=GRID_TOL)
    assert grid[0].mean() == pytest.approx(math.log(n), abs=1e-9)


def test_full_terms_do_not_exceed_log_m_and_block_size_is_irrelevant():
    rng = np.random.default_rng(4)
    mu, logvar = rng.normal(size=(300, 5)) * 2, rng.normal(-2, 1, size=(300, 5))
    z = _samples(mu, logvar, 3, 5)
    big = mi_terms(z, mu, logvar)[0]
    small = mi_terms(z, mu, logvar, chunk_bytes=8 * 300 * 7)[0]  # 7 rows per block
    np.testing.assert_allclose(small, big, rtol=0, atol=1e-10)
    assert np.all(big <= math.log(300) + 1e-12)


def test_bootstrap_intervals_are_seeded_percentiles():
    values = np.random.default_rng(0).normal(size=(500, 2))
    a = bootstrap_intervals(values, torch.Generator().manual_seed(3), 400, 0.9)
    b = bootstrap_intervals(values, torch.Generator().manual_seed(3), 400, 0.9)
    np.testing.assert_array_equal(a, b)
    # The percentile interval of a mean of 500 N(0,1): about mean +- 1.645 / sqrt(500).
    se = values.std(axis=0) / math.sqrt(500)
    np.testing.assert_allclose(a[:, 1] - a[:, 0], 2 * 1.645 * se, rtol=0.15)
    assert np.all(a[:, 0] < values.mean(axis=0)) and np.all(values.mean(axis=0) < a[:, 1])


def _toy_encodings(n, seed, weights=(2.0, 1.0, 0.0), noise=0.5):
    model = ToyVAE(weights=weights, noise=noise)
    with torch.no_grad():
        mu, logvar = model.encode(model.sample(n, seed=seed))
    return Encodings(mu=mu.double().numpy(), logvar=logvar.double().numpy())


def test_intervals_cover_the_closed_form_of_the_linear_gaussian_vae():
    # ToyVAE (2, 1, 0), noise 0.5: MI_d = 0.5 ln(1 + w_d^2 / s^2) = 1.417, 0.805, 0; total
    # 2.222; marginal KL 0 (the encoder is the exact posterior, so q(z) = p(z)).
    truth = [c["kl"] for c in closed_form((2.0, 1.0, 0.0), 0.5)]
    enc = _toy_encodings(3000, seed=1)
    result = information_diagnostic(enc, torch.Generator().manual_seed(0),
                                    mean_kl=kl_diagnostic(enc).total, bootstrap=1000)
    lo, hi = result.mi_ci
    assert lo <= sum(truth) <= hi
    for (d_lo, d_hi), t in zip(result.per_dimension_ci, truth):
        assert d_lo - 1e-12 <= t <= d_hi + 1e-12
    assert result.marginal_kl_ci[0] <= 0.0 <= result.marginal_kl_ci[1]
    # The switched-off dimension: identical posteriors, a zero-width interval at 0.
    assert result.per_dimension_zero_like.tolist() == [False, False, True]
    assert not result.zero_like and not result.ceiling_like
    assert hi - lo < 0.2  # informative: se ~ 0.02 nats at N = 3000


def test_interval_coverage_rate_on_one_dimension():
    # 40 independent data sets, N = 400, w = 1, s = 0.5 (MI = 0.5 ln 5 = 0.805 nats). At a
    # nominal 95% the count of covering intervals is Binomial(40, 0.95): >= 34 with
    # probability 0.99; the finite-mixture bias (~0.005 nats) is small next to se ~ 0.03.
    truth = 0.5 * math.log(5.0)
    covered = 0
    for seed in range(40):
        enc = _toy_encodings(400, seed=100 + seed, weights=(1.0,))
        r = information_diagnostic(enc, torch.Generator().manual_seed(seed), mean_kl=0.0,
                                   bootstrap=400)
        covered += r.mi_ci[0] <= truth <= r.mi_ci[1]
    assert covered >= 34, covered


def test_flags_at_zero_and_at_the_ceiling():
    collapsed = Encodings(mu=np.zeros((200, 2)), logvar=np.zeros((200, 2)))
    r = information_diagnostic(collapsed, torch.Generator().manual_seed(0), 0.0, bootstrap=100)
    assert r.zero_like and not r.ceiling_like and r.per_dimension_zero_like.all()
    n = 200
    separated = Encodings(mu=np.stack([10.0 * np.arange(n)] * 2, axis=1),
                          logvar=np.full((n, 2), math.log(1e-4)))
    r = information_diagnostic(separated, torch.Generator().manual_seed(0), 1.0, bootstrap=100)
    assert r.ceiling_like and r.saturated and not r.zero_like
    assert r.mi_ci[1] == pytest.approx(math.log(n), abs=1e-9)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # scipy's reference overflows harmlessly
def test_rows_whose_sum_overflows_are_recomputed_exactly():
    # Component 1 is e^-700-narrow in both dimensions, component 0 e^700-wide; a query of
    # component 0 at component 1's mean is e^1400 times likelier under component 1 than
    # under its own: the one-pass sum overflows and the row is redone with a running max.
    from scipy.special import logsumexp
    from scipy.stats import norm

    mu = np.zeros((2, 2))
    logvar = np.array([[700.0, 700.0], [-700.0, -700.0]])
    z = np.array([[[0.0, 0.0], [1e150, -3e150]], [[1e-160, -1e-160], [2e-160, 0.0]]])
    h = mi_terms(z, mu, logvar)[0]
    ref = []
    for i in range(2):
        terms = []
        for s in range(2):
            logq = [norm.logpdf(z[i, s], mu[j], np.exp(0.5 * logvar[j])).sum() for j in range(2)]
            terms.append(logq[i] - logsumexp(logq) + math.log(2))
        ref.append(np.mean(terms))
    assert np.all(np.isfinite(h))
    np.testing.assert_allclose(h, ref, rtol=0, atol=1e-9)


def test_grid_does_not_depend_on_how_dimensions_are_grouped(monkeypatch):
    # Dimensions are refined in groups and interpolated in blocks (bounded memory); each
    # dimension's grid is its own, so any grouping gives the same values, bit for bit.
    import collapse_diag.diagnostics.estimators.mixture_density as md

    rng = np.random.default_rng(5)
    mu, logvar = rng.normal(size=(1500, 6)) * 2, rng.normal(-1.0, 0.3, size=(1500, 6))
    z = torch.from_numpy(_samples(mu, logvar, 4, 6).reshape(-1, 6) - mu.mean(0))
    args = (z, torch.arange(1500).repeat_interleave(4), torch.from_numpy(mu - mu.mean(0)),
            torch.from_numpy(logvar))
    together = dimension_terms(*args, method="grid")
    monkeypatch.setattr(md, "_GROUP_QUERIES", 4 * 6000)  # groups of 4 and 2 dimensions
    monkeypatch.setattr(md, "_QUERY_BLOCK", 6000)  # one dimension interpolated at a time
    assert torch.equal(dimension_terms(*args, method="grid"), together)


def test_a_query_on_its_own_narrow_posterior_is_not_interpolated_across():
    # Near-deterministic, well separated posteriors (sd 0.0025, means spread 10): a query
    # sits on its own spike of log q_d, which grid nodes between spikes do not see. Fuzzing
    # found per-query errors up to 6 nats there (mean over a dimension 4e-3); a query whose
    # own posterior is narrower than its interval and carries a share of the density that
    # matters is evaluated exactly. Seed 3 of this family failed by 1.3 nats before.
    rng = np.random.default_rng(3)
    mu = rng.normal(size=(1000, 2)) * np.array([10.0, 3.0])
    logvar = np.clip(rng.normal(-12.0, 0.3, size=(1000, 2)), -30, 30)
    z = torch.from_numpy(_samples(mu, logvar, 2, 4).reshape(-1, 2) - mu.mean(0))
    args = (z, torch.arange(1000).repeat_interleave(2), torch.from_numpy(mu - mu.mean(0)),
            torch.from_numpy(logvar))
    grid, exact = dimension_terms(*args, method="grid"), dimension_terms(*args, method="exact")
    assert float((grid - exact).abs().max()) <= GRID_TOL


def test_random_mixtures_meet_the_grid_tolerance_per_dimension():
    # Random families not tuned on (means spread 0-10, log-variances around -12..1 with
    # spreads 0-3, half the components identical now and then). The midpoint tolerance is a
    # check, not a proof: fuzzing 515 such cases (M up to 1,500) found the worst query term
    # 2.4e-6 nats off, two cases above 1e-6. Stated bounds: every query within 5 x GRID_TOL,
    # every per-dimension mean (what the MI reports) within GRID_TOL.
    rng = np.random.default_rng(2026)
    for _ in range(20):
        m, d = int(rng.integers(260, 1200)), int(rng.integers(1, 5))
        scale = rng.choice([0.0, 1e-3, 0.1, 1, 3, 10], size=d)
        mu = rng.normal(size=(m, d)) * scale
        if rng.random() < 0.3:
            mu[: m // 2] = mu[0]
        logvar = np.clip(rng.normal(size=(m, d)) * rng.choice([0, 0.3, 1, 3], size=d)
                         + rng.choice([-12, -6, -2, -1, 0, 1], size=d), -30, 30)
        s = -(-1024 // m)
        z = torch.from_numpy(_samples(mu, logvar, s, int(rng.integers(1000))).reshape(-1, d)
                             - mu.mean(0))
        args = (z, torch.arange(m).repeat_interleave(s), torch.from_numpy(mu - mu.mean(0)),
                torch.from_numpy(logvar))
        diff = dimension_terms(*args, method="grid") - dimension_terms(*args, method="exact")
        assert float(diff.abs().max()) <= 5 * GRID_TOL
        assert float(diff.mean(dim=1).abs().max()) <= GRID_TOL


def test_full_terms_centre_their_inputs_themselves():
    # The expanded square [z^2, z] loses digits far from the origin; full_terms shifts z and
    # mu by the mean of mu itself, so callers pass raw codes: an offset of 1e4 changes no
    # term beyond 1e-9 nats (uncentred, the GEMM would lose ~1e-16 * 1e8 / var of them).
    from collapse_diag.diagnostics.estimators.mixture_density import full_terms

    rng = np.random.default_rng(8)
    mu, logvar = rng.normal(size=(300, 3)), rng.normal(-2, 0.5, size=(300, 3))
    z = _samples(mu, logvar, 2, 9).reshape(-1, 3)
    owner = torch.arange(300).repeat_interleave(2)
    near = full_terms(torch.from_numpy(z), owner, torch.from_numpy(mu), torch.from_numpy(logvar))
    far = full_terms(torch.from_numpy(z + 1e4), owner, torch.from_numpy(mu + 1e4),
                     torch.from_numpy(logvar))
    np.testing.assert_allclose(far.numpy(), near.numpy(), rtol=0, atol=1e-9)


@pytest.mark.parametrize("threads", [1, 2])
def test_exp_floor_changes_no_sum_that_holds_a_term_of_one(threads):
    # Shifted log-densities below -700 are raised to -700 before exp (exp of them is a slow
    # path); next to a term of 1 their exponentials (< 1e-304 each, 10^4 of them here) are
    # below half an ulp, so the floored sums equal the plain ones bit for bit. On one thread
    # _exp_ is numpy's exp, on several torch's: each within 1 ulp of the other (2.3e-16).
    from collapse_diag.diagnostics.estimators.mixture_density import _EXP_FLOOR, _exp_

    rng = np.random.default_rng(10)
    shifted = -np.abs(rng.normal(0, 1, size=(50, 10_000))) * 10.0 ** rng.uniform(0, 5, (50, 1))
    shifted[:, 0] = 0.0  # the sum's own (or largest) term
    assert (shifted < _EXP_FLOOR).any()
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        floored = _exp_(torch.from_numpy(shifted.copy())).numpy()
        plain = np.exp(shifted) if threads == 1 else torch.from_numpy(shifted).exp().numpy()
    finally:
        torch.set_num_threads(before)
    assert np.array_equal(floored.sum(axis=1), plain.sum(axis=1))
    np.testing.assert_allclose(floored, torch.from_numpy(shifted).exp().numpy(), rtol=5e-16,
                               atol=1e-300)


def test_sharp_posteriors_match_the_direct_sum_with_the_exp_floor():
    # An informative encoder (posteriors ~0.05 wide, means spread 3): most shifted
    # log-densities lie far below -700, where the floor applies. Full-vector terms against
    # a brute-force loop over components (scipy-free: torch logsumexp per row), 1e-10 nats;
    # per-dimension grid against the direct sum, GRID_TOL.
    from collapse_diag.diagnostics.estimators.mixture_density import full_terms

    rng = np.random.default_rng(11)
    n, d = 400, 4
    mu, logvar = rng.normal(size=(n, d)) * 3, rng.normal(2 * math.log(0.05), 1.0, size=(n, d))
    z = torch.from_numpy(_samples(mu, logvar, 3, 12).reshape(-1, d))
    owner = torch.arange(n).repeat_interleave(3)
    mut, lvt = torch.from_numpy(mu), torch.from_numpy(logvar)
    log_q = torch.distributions.Normal(mut, torch.exp(0.5 * lvt)).log_prob(z[:, None, :])
    joint = log_q.sum(dim=2)  # (R, M)
    brute = joint[torch.arange(len(owner)), owner] - (torch.logsumexp(joint, 1) - math.log(n))
    np.testing.assert_allclose(full_terms(z, owner, mut, lvt).numpy(), brute.numpy(),
                               rtol=0, atol=1e-10)
    per_brute = (log_q[torch.arange(len(owner)), owner]
                 - (torch.logsumexp(log_q, 1) - math.log(n))).T
    grid = dimension_terms(z, owner, mut, lvt, method="grid")
    np.testing.assert_allclose(grid.numpy(), per_brute.numpy(), rtol=0, atol=GRID_TOL)


def test_points_beyond_every_component_are_evaluated_by_their_largest_term():
    # The 1-D mixtures are shifted by their tallest peak; a point more than 600 nats below it
    # (here 50 sd from the only wide component, 1e6 sd from the narrow one) would underflow
    # and is redone shifted by its own largest term: finite, and equal to that mode everywhere.
    from collapse_diag.diagnostics.estimators.mixture_density import (
        CHUNK_BYTES,
        _mixture_1d,
        _mixtures_1d,
    )

    mu = torch.tensor([[0.0, 100.0]], dtype=torch.float64)
    logvar = torch.tensor([[math.log(1e-12), 0.0]], dtype=torch.float64)
    mix = _mixtures_1d(mu, logvar)
    t = torch.tensor([0.0, 1e-6, 50.0, 99.0, 100.0, 150.0], dtype=torch.float64)
    dim = torch.zeros(6, dtype=torch.int64)
    f, g = _mixture_1d(t, dim, mix, CHUNK_BYTES)
    f_max, g_max = _mixture_1d(t, dim, mix, CHUNK_BYTES, by_max=True)
    assert torch.isfinite(f).all() and torch.isfinite(g).all()
    np.testing.assert_allclose(f.numpy(), f_max.numpy(), rtol=1e-14)
    np.testing.assert_allclose(g.numpy(), g_max.numpy(), rtol=1e-12)
    # at 150, only the wide component counts: log(N(150; 100, 1) / 2), slope -(150 - 100)
    assert f[5].item() == pytest.approx(-0.5 * 50**2 - 0.5 * math.log(2 * math.pi) - math.log(2),
                                        rel=1e-14)
    assert g[5].item() == pytest.approx(-50.0, rel=1e-12)


def test_near_prior_dimensions_start_from_every_other_quantile(monkeypatch):
    # Collapsed dimensions (posteriors ~N(0, 1) for every input) start from 33 quantile
    # nodes instead of 65; they still meet GRID_TOL per query against the direct sum. The
    # narrow dimension (sd 0.05, means spread 1) keeps all 65.
    from collapse_diag.diagnostics.estimators import mixture_density as md

    rng = np.random.default_rng(13)
    n = 1500
    mu = np.column_stack([rng.normal(0, 0.02, n), rng.normal(0, 0.02, n), rng.normal(0, 1, n)])
    logvar = np.column_stack([rng.normal(0, 0.05, n), rng.normal(0, 0.05, n),
                              np.full(n, 2 * math.log(0.05))])
    z = torch.from_numpy(_samples(mu, logvar, 2, 14).reshape(-1, 3))
    owner = torch.arange(n).repeat_interleave(2)
    args = (z, owner, torch.from_numpy(mu), torch.from_numpy(logvar))
    first_nodes = []
    original = md._mixture_1d

    def counted(t, dim, *rest, **kw):
        if not first_nodes:
            first_nodes.append(torch.bincount(dim, minlength=3).tolist())
        return original(t, dim, *rest, **kw)

    monkeypatch.setattr(md, "_mixture_1d", counted)
    grid = dimension_terms(*args, method="grid")
    assert first_nodes[0][:2] == [33, 33] and first_nodes[0][2] >= 65
    np.testing.assert_allclose(grid.numpy(), dimension_terms(*args, method="exact").numpy(),
                               rtol=0, atol=GRID_TOL)
