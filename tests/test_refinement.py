"""Known answers for the refinement diagnostic and the cause (docs/understanding-collapse.md).

The linear Gaussian VAE at its ELBO optimum (Lucas et al. 2019): data covariance
eigenvalues lambda_d, noise s2; W_d = sqrt(lambda_d - s2) u_d for lambda_d > s2, else 0.
The exact posterior per dimension is N(m_d(x), s2 / lambda_d) with E_x m_d^2 = 1 - s2 /
lambda_d, so

    E_x KL(p(z_d|x) || p(z_d))             = 0.5 log(lambda_d / s2)           (kl_refined)
    E_x KL(N(0, 1) || p(z_d|x))            = 0.5 (2 lambda_d/s2 - 2 - log(lambda_d/s2))

the second being the amortization gap of a dimension whose encoder is zeroed to the prior
(ELBO(q) = log p(x) - KL(q || p(z|x)), and q* = p(z|x) here).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from models_for_tests import analyze_toy, exact_linear_gaussian, sample_linear_data

from collapse_diag.config.settings import Settings
from collapse_diag.diagnostics.posterior_refinement import refine_posteriors, standardise
from collapse_diag.diagnostics.refinement import refinement_result
from collapse_diag.model.encodings import encode_all
from collapse_diag.model.protocol import check_model
from collapse_diag.runtime.rng import generator_for

S2 = 0.25
LAMBDA = np.array([2.0, 1.0, 0.8, 0.5, 0.25, 0.1])  # the last two: lambda <= s2, W_d = 0
ZEROED = [0, 1]
FAST = dict(swap_bootstrap=100, per_dim_swap_examples=40, fisher_bootstrap=50,
            mi_bootstrap=50, prior_samples=8, refine_examples=None, refine_steps=400)


def _linear(zero: bool):
    model = exact_linear_gaussian(np.sqrt(np.maximum(LAMBDA - S2, 0.0)), math.sqrt(S2), 8)
    x = sample_linear_data(model, 400, seed=1)
    if zero:
        model.A[ZEROED] = 0.0
        model.lv[ZEROED] = 0.0
    return model, x


def _refine(model, x, settings):
    a = analyze_toy(model, x, settings)
    refined = refine_posteriors(model, x, a.enc, a.info, settings,
                                generator_for(0, "refinement"))
    return a, refined, refinement_result(refined, None, len(LAMBDA), settings,
                                         status=a.verdict.status,
                                         fisher_used=a.verdict.fisher_used)


@pytest.fixture(scope="module")
def zeroed():
    settings = Settings(**FAST).validate()
    return _refine(*_linear(zero=True), settings)


def _exact_posterior(x: torch.Tensor, model) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of p(z_d|x) per input (the independent reference), ``(N, D)``."""
    lam = np.maximum(LAMBDA, S2)
    return x.numpy() @ model.W.numpy() / lam, np.broadcast_to(S2 / lam, (len(x), len(lam)))


def test_kl_refined_matches_half_log_lambda_over_s2(zeroed):
    _, refined, result = zeroed
    expected = 0.5 * np.log(np.maximum(LAMBDA / S2, 1.0))
    # Zeroed dimensions against the expectation over x: the per-input KL has sd ~0.62 nats
    # (dim 0), so its mean over 400 inputs is within ~3% (one sd) of 1.04 nats.
    np.testing.assert_allclose(result.kl_refined[ZEROED], expected[ZEROED], rtol=0.05)
    np.testing.assert_allclose(result.kl_refined[4:], 0.0, atol=1e-6)
    # Every dimension against the exact posterior's KL on the same inputs (no sampling
    # error; the optimiser's own error only).
    model, x = _linear(zero=True)
    m, v = _exact_posterior(x, model)
    exact = 0.5 * (m**2 + v - 1 - np.log(v))[refined.examples].mean(axis=0)
    np.testing.assert_allclose(result.kl_refined, exact, rtol=0.01, atol=1e-6)


def test_amortization_gap_matches_its_closed_form(zeroed):
    _, refined, result = zeroed
    lam = LAMBDA[ZEROED] / S2
    expected = float(np.sum(0.5 * (2 * lam - 2 - np.log(lam))))
    assert result.gap[0] == pytest.approx(expected, rel=0.05)
    assert result.gap[1] <= expected <= result.gap[2]
    assert refined.converged.mean() > 0.9
    # Per input, against KL(N(0, 1) || p(z_d|x)) summed over the zeroed dimensions.
    model, x = _linear(zero=True)
    m, v = _exact_posterior(x, model)
    exact = 0.5 * (1 / v + m**2 / v - 1 + np.log(v))[:, ZEROED].sum(axis=1)[refined.examples]
    np.testing.assert_allclose(refined.elbo_refined - refined.elbo_encoder, exact, rtol=0.01)


def test_causes_of_the_linear_model(zeroed):
    a, _, result = zeroed
    assert a.verdict.status[:2] == ("collapsed", "collapsed")
    assert result.causes.cause == ("inference", "inference", "none", "none", "model", "model")
    assert result.causes.collapse_cause == "mixed"


def test_the_optimal_model_has_no_gap():
    settings = Settings(**FAST).validate()
    _, refined, result = _refine(*_linear(zero=False), settings)
    mean, low, high = result.gap
    assert low <= 0.0 <= high or abs(mean) < 1e-6
    assert result.causes.cause == ("none",) * 4 + ("model",) * 2
    np.testing.assert_allclose(refined.kl_refined.mean(0), refined.kl_encoder.mean(0),
                               atol=1e-4)


def test_weights_grads_and_global_rng_are_untouched():
    model, x = _linear(zero=True)
    model.extra = torch.nn.Parameter(torch.ones(3))
    settings = Settings(refine_examples=20, refine_steps=5).validate()
    info = check_model(model, x)
    enc = encode_all(model, x, info, 64)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    refine_posteriors(model, x, enc, info, settings, generator_for(0, "refinement"))
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


def test_deterministic_and_independent_of_batch_size():
    model, x = _linear(zero=True)
    info = check_model(model, x)
    enc = encode_all(model, x, info, 64)
    runs = [refine_posteriors(model, x, enc, info,
                              Settings(refine_examples=30, refine_steps=20,
                                       batch_size=b).validate(),
                              generator_for(3, "refinement")) for b in (7, 64, 64)]
    np.testing.assert_array_equal(runs[1].mean, runs[2].mean)
    np.testing.assert_allclose(runs[0].elbo_refined, runs[1].elbo_refined, rtol=1e-12)


def test_standardised_draws_have_unit_moments():
    draws = standardise(np.random.default_rng(0).standard_normal((5, 4, 3)))
    np.testing.assert_allclose(draws.mean(axis=-2), 0.0, atol=1e-12)
    np.testing.assert_allclose(draws.var(axis=-2), 1.0, rtol=1e-12)


def test_approximation_gap_of_the_exact_posterior_is_zero():
    """At the optimum q_phi = p(z|x), so every importance weight is p(x): L_K = log p(x) =
    ELBO(q*) (exact here: moment-matched draws, log-likelihood quadratic in z)."""
    from collapse_diag import analyze

    model, x = _linear(zero=False)
    report = analyze(model, x[:200], seed=0, nll_samples=4, nll_examples=100,
                     refine_examples=50, **{k: v for k, v in FAST.items()
                                            if k not in ("refine_examples",)})
    s = report.summary
    assert s["refinement_examples"] == 50
    assert abs(s["approximation_gap"]) < 1e-6 and abs(s["amortization_gap"]) < 1e-6
    assert s["collapse_cause"] == "model"  # z4, z5: lambda <= s2
