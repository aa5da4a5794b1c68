"""Identifiability: likelihood flatness and the latent Fisher information (closed forms)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from models_for_tests import (
    LinearVAE,
    NaNDecoderVAE,
    NoZDecoderVAE,
    PriorVAE,
    TokenLinearVAE,
    exact_linear_gaussian,
    sample_linear_data,
    toy_data,
    toy_vae,
)

import collapse_diag.diagnostics.identifiability as ident_mod
import collapse_diag.runtime.rng as rng_mod
from collapse_diag.config.settings import Settings
from collapse_diag.diagnostics.fisher import grad_context
from collapse_diag.diagnostics.identifiability import fisher_rank, identifiability_diagnostic
from collapse_diag.exceptions import DiagnosticError
from collapse_diag.model.encodings import encode_all
from collapse_diag.model.protocol import ModelInfo, check_model
from collapse_diag.runtime.rng import generator_for

DEFAULT = Settings()


def run(model, data, settings=DEFAULT, seed=0, reconstruction=None, info=None):
    model.eval()
    info = info or check_model(model, data)
    enc = encode_all(model, data, info, settings.batch_size)
    return identifiability_diagnostic(model, data, enc, info, settings,
                                      generator_for(seed, "identifiability"),
                                      reconstruction=reconstruction)


@pytest.fixture(scope="module")
def linear():
    """Exact-posterior linear Gaussian VAE, scales (1.5, 1, 0.5), sigma 0.7, P = 5, N = 2000."""
    model = exact_linear_gaussian([1.5, 1.0, 0.5], sigma=0.7, obs_dim=5)
    data = sample_linear_data(model, 2000, seed=1)
    return model, data, run(model, data, reconstruction=-1.0)


def test_fisher_matches_closed_form(linear):
    # (x, z) ~ p(x, z): g = W^T (x - W z) / sigma^2 = W^T eps / sigma^2 with eps ~ N(0, sigma^2 I),
    # so F = W^T W / sigma^2 = diag(scales^2) / sigma^2. Each entry is a mean of N products of
    # Gaussians: SE(F_jk) = sqrt((F_jj F_kk + F_jk^2) / N). Tolerance: 5 SE.
    model, _, res = linear
    w, s2, n = model.W.numpy(), model.sigma**2, 2000
    expected = w.T @ w / s2
    diag = np.diag(expected)
    se = np.sqrt((np.outer(diag, diag) + expected**2) / n)
    np.testing.assert_array_less(np.abs(res.fisher_matrix - expected), 5 * se)
    np.testing.assert_allclose(res.fisher, np.diag(res.fisher_matrix))
    np.testing.assert_allclose(res.fisher_eigenvalues, np.sort(diag)[::-1],
                               rtol=5 * math.sqrt(2 / n))
    assert res.identifiable_dims == 3


def test_prior_reconstruction_and_flatness_match_closed_form(linear):
    # z ~ p(z) independent of x: E||x - W z||^2 = 2 tr(W^T W) + P sigma^2.
    # For fixed x, Var_z log p(x|z) = (4 x^T W W^T x + 2 tr((W^T W)^2)) / (4 sigma^4), whose
    # mean over x is (4 tr(C^2) + 4 sigma^2 tr(C) + 2 tr(C^2)) / (4 sigma^4), C = W^T W; the
    # ddof=1 sample variance over K draws is unbiased for it. Tolerance: 5 SE over inputs.
    model, _, res = linear
    w, s2, n = model.W.numpy(), model.sigma**2, 2000
    p, c = w.shape[0], w.T @ w
    expected = -0.5 * p * math.log(2 * math.pi * s2) - (2 * np.trace(c) + p * s2) / (2 * s2)
    se = res.prior_log_likelihood.std() / math.sqrt(n)
    assert abs(res.prior_reconstruction - expected) < 5 * se
    assert res.prior_gap == pytest.approx(-1.0 - res.prior_reconstruction)
    var = res.likelihood_std**2
    expected_var = (6 * np.trace(c @ c) + 4 * s2 * np.trace(c)) / (4 * s2**2)
    assert abs(var.mean() - expected_var) < 5 * var.std() / math.sqrt(n)
    assert res.likelihood_flatness == pytest.approx(res.likelihood_std.mean())
    assert res.flat_fraction == 0.0
    assert res.likelihood_flatness_per_token is None


@pytest.mark.parametrize("model", [toy_vae("iii"), NoZDecoderVAE(np.eye(3), 0.5, np.eye(3),
                                                                  np.zeros(3))])
def test_decoder_ignoring_z_is_flat_and_unidentifiable(model):
    res = run(model, toy_data(3, 50))
    assert np.all(res.likelihood_std == 0.0) and res.flat_fraction == 1.0
    assert np.all(res.fisher_matrix == 0.0) and res.identifiable_dims == 0
    assert res.prior_gap is None


def test_ignored_dimensions_have_zero_fisher():
    res = run(toy_vae("uiui"), toy_data(4, 100))
    np.testing.assert_array_equal(res.fisher[[1, 3]], 0.0)
    assert np.all(res.fisher[[0, 2]] > 0.5)
    assert res.identifiable_dims == 2


@pytest.mark.parametrize("batch_size", [1, 7, 64])
def test_results_do_not_depend_on_batch_size(batch_size, monkeypatch):
    monkeypatch.setattr(rng_mod, "RANDOM_BLOCK", 16)  # make batches cross keyed sampling blocks
    model, data = toy_vae("uic"), toy_data(3, 40)
    kw = {"prior_samples": 4, "fisher_samples": 2}
    ref = run(model, data, Settings(batch_size=40, **kw))
    res = run(model, data, Settings(batch_size=batch_size, **kw))
    for name in ("prior_log_likelihood", "likelihood_std", "fisher_matrix", "fisher_eigenvalues"):
        np.testing.assert_allclose(getattr(res, name), getattr(ref, name), rtol=1e-9, atol=1e-12)
    assert res.identifiable_dims == ref.identifiable_dims


def test_same_seed_same_numbers_other_seed_other_numbers():
    model, data = toy_vae("uu"), toy_data(2, 30)
    a, b, c = run(model, data, seed=1), run(model, data, seed=1), run(model, data, seed=2)
    assert a.section() == b.section()
    assert not np.array_equal(a.likelihood_std, c.likelihood_std)
    assert not np.array_equal(a.fisher, c.fisher)


def test_learned_prior_is_used():
    # A prior with variance e^-30 puts every draw at its mean: log p(x|z) is constant in k.
    base = toy_vae("uu")
    mean = np.array([0.3, -0.2])
    model = PriorVAE(base.W, base.sigma, base.A, base.lv, prior_mean=mean,
                     prior_logvar=np.full(2, -30.0))
    data = toy_data(2, 30)
    res = run(model, data)
    direct = model.log_likelihood(data, torch.from_numpy(mean).expand(30, -1)).numpy()
    np.testing.assert_allclose(res.prior_log_likelihood, direct, rtol=1e-5)
    assert res.flat_fraction == 1.0


def _info(dim):
    return ModelInfo(latent_dim=dim, dtype=torch.float64, has_prior=False,
                     has_num_tokens=False)


def test_nan_decoder_raises_diagnostic_error():
    base = toy_vae("uu")
    bad = NaNDecoderVAE(base.W, base.sigma, base.A, base.lv)
    with pytest.raises(DiagnosticError, match="NaN"):
        run(bad, toy_data(2, 20), info=_info(2))


def test_fisher_pass_names_a_nan_log_likelihood():
    # The Fisher pass reads finiteness after the gradient's host copy (one sync per call);
    # a NaN log-likelihood is still reported as such, before the NaN gradient it causes.
    from collapse_diag.diagnostics.fisher import fisher_gradients

    base = toy_vae("uu")
    bad = NaNDecoderVAE(base.W, base.sigma, base.A, base.lv)
    data = toy_data(2, 20)
    enc = encode_all(bad, data, _info(2), 8)
    with pytest.raises(DiagnosticError, match=r"log_likelihood\(x, z\) contains \d+ NaN"):
        fisher_gradients(bad, data, enc, _info(2), DEFAULT, generator_for(0, "identifiability"))


class _NaNGradientVAE(LinearVAE):
    def log_likelihood(self, x, z):
        if z.requires_grad:
            z = z * 1.0
            z.register_hook(lambda g: torch.full_like(g, float("nan")))
        return super().log_likelihood(x, z)


def test_nan_gradient_raises_diagnostic_error():
    base = toy_vae("uu")
    bad = _NaNGradientVAE(base.W, base.sigma, base.A, base.lv)
    with pytest.raises(DiagnosticError, match="gradient"):
        run(bad, toy_data(2, 20), info=_info(2))


def test_per_token_flatness():
    base = toy_vae("uu")
    model = TokenLinearVAE(base.W, base.sigma, base.A, base.lv)
    tokens = torch.full((30,), 10**6)
    res = run(model, {"x": toy_data(2, 30), "n": tokens})
    np.testing.assert_allclose(res.likelihood_std_per_token, res.likelihood_std / 1e6)
    assert res.likelihood_flatness > Settings().flatness_threshold
    # flatness is judged per observation: a tiny per-token std does not make x flat in z
    assert res.flat_fraction == 0.0
    section = res.section()
    assert section.distributions["likelihood_std"] == res.likelihood_std.tolist()
    assert section.summary["prior_reconstruction_per_token"] == pytest.approx(
        np.mean(res.prior_log_likelihood / 1e6))


def test_section_has_the_schema_fields(linear):
    s = linear[2].section()
    assert set(s.summary) >= {"prior_reconstruction", "prior_gap", "likelihood_flatness",
                              "likelihood_flatness_per_token", "flat_fraction",
                              "fisher_eigenvalues", "identifiable_dims"}
    assert s.dimensions.keys() == {"fisher", "fisher_ci", "contraction", "contraction_ci",
                                   "identifiability"}
    assert len(s.distributions["likelihood_std"]) == 2000
    assert set(s.summary) >= {"fisher_eigenvalues_ci", "fisher_contraction",
                              "fisher_contraction_ci", "fisher_directions",
                              "identifiability_counts"}
    assert s.summary["fisher_eigenvalues"] == sorted(s.summary["fisher_eigenvalues"], reverse=True)


@pytest.mark.parametrize(("eig", "rtol", "atol", "rank"), [
    ([10.0, 1.0, 0.001, 0.0], 1e-3, 1e-6, 2),
    ([10.0, 1.0, 0.01, 0.0], 1e-3, 1e-6, 3),
    ([1e-7, 1e-8], 1e-3, 1e-6, 0),
    ([0.0, 0.0], 1e-3, 0.0, 0),
])
def test_fisher_rank(eig, rtol, atol, rank):
    assert fisher_rank(np.array(eig), rtol, atol)[0] == rank


class _ParamVAE(LinearVAE):
    def __init__(self, *args):
        super().__init__(*args)
        self.scale = torch.nn.Parameter(torch.ones((), dtype=torch.float64))

    def log_likelihood(self, x, z):
        return self.scale * super().log_likelihood(x, z)


def test_fisher_pass_leaves_parameter_gradients_alone():
    base = toy_vae("uu")
    model = _ParamVAE(base.W, base.sigma, base.A, base.lv)
    res = run(model, toy_data(2, 20))
    assert model.scale.grad is None and res.identifiable_dims == 2


def test_cudnn_is_disabled_only_inside_the_cuda_gradient_context():
    before = torch.backends.cudnn.enabled
    with grad_context("cuda"):
        assert not torch.backends.cudnn.enabled
    assert torch.backends.cudnn.enabled == before


def test_lstm_text_vae_runs_end_to_end():
    from collapse_diag.diagnostics.sensitivity import sensitivity_diagnostic
    from collapse_diag.examples.corpus import load_corpus
    from collapse_diag.examples.text_vae import build_text_vae

    torch.manual_seed(0)
    model = build_text_vae(latent_dim=4, embed_dim=8, hidden_dim=16).eval()
    data = model.tokenize(load_corpus().sentences[:24])
    settings = Settings(batch_size=8, prior_samples=3, per_dim_swap_examples=6,
                        per_dim_swap_max_examples=6, swap_bootstrap=20, fisher_bootstrap=20)
    info = check_model(model, data)
    enc = encode_all(model, data, info, settings.batch_size)
    sens = sensitivity_diagnostic(model, data, enc, info, settings, generator_for(0, "s"))
    res = identifiability_diagnostic(model, data, enc, info, settings, generator_for(0, "i"),
                                     reconstruction=sens.reconstruction)
    assert np.all(np.isfinite(res.fisher)) and np.all(res.fisher > 0)
    assert res.likelihood_flatness_per_token is not None and sens.swap_delta_per_token is not None
    assert sens.decoder_rows == 2 * 24 + 6 * 5 and res.decoder_rows == 24 * 3 + 24


def test_fisher_is_measured_in_prior_standard_deviations():
    # Same encoder, decoder and draws; a prior with variances (4, 0.25) scales F_dd by them:
    # F~ = diag(sigma_p) F diag(sigma_p), so the floor is against the prior precision 1.
    base = toy_vae("uu")
    data = toy_data(2, 200)
    plain = run(base, data)
    scaled = run(PriorVAE(base.W, base.sigma, base.A, base.lv, prior_mean=[0.0, 0.0],
                          prior_logvar=[math.log(4.0), math.log(0.25)]), data)
    scale = np.array([2.0, 0.5])
    np.testing.assert_allclose(scaled.fisher_matrix,
                               plain.fisher_matrix * np.outer(scale, scale), rtol=1e-12)


# ---- graded identifiability: bootstrap intervals and grades -----------------------------


def test_bootstrap_intervals_cover_the_closed_form(linear):
    # F = diag(scales^2) / sigma^2 = (4.59, 2.04, 0.51). Six 95% intervals do not all cover
    # at once (and sorted-eigenvalue bootstraps are biased), so the tolerance: the closed form
    # lies within the interval widened to twice its width around its centre. Every direction
    # is graded identifiable (lower bound >= 0.1).
    model, _, res = linear

    def covers(ci, value):
        centre, half = ci.mean(axis=1), (ci[:, 1] - ci[:, 0]) / 2
        return np.all(np.abs(value - centre) <= 2 * half) and np.all(half > 0)

    assert covers(res.eigenvalue_ci, np.sort(np.array([1.5, 1.0, 0.5]) ** 2 / 0.49)[::-1])
    assert covers(res.fisher_ci, np.diag(model.W.numpy().T @ model.W.numpy()) / 0.49)
    # the interval is about +-1.96 bootstrap SE: compare with the analytic SE sqrt(2/N) F_dd
    half = (res.fisher_ci[:, 1] - res.fisher_ci[:, 0]) / 2
    np.testing.assert_allclose(half, 1.96 * math.sqrt(2 / 2000) * res.fisher, rtol=0.3)
    assert res.direction_grades == ("identifiable",) * 3
    s = res.section()
    np.testing.assert_allclose(s.summary["fisher_contraction"],
                               res.fisher_eigenvalues / (1 + res.fisher_eigenvalues))
    assert s.summary["identifiability_counts"]["identifiable"] == 3


def test_ignored_dimensions_are_flat_used_ones_identifiable():
    res = run(toy_vae("uiu"), toy_data(3, 200))
    assert res.dimension_grades == ("identifiable", "flat", "identifiable")
    np.testing.assert_array_equal(res.fisher_ci[1], [0.0, 0.0])
    assert res.direction_grades.count("flat") == 1


def test_weak_decoder_is_weakly_identifiable():
    # scales 0.15, sigma 1: F_dd = 0.0225 < 0.1, clearly above 0 at N = 1500
    model = exact_linear_gaussian([0.15, 0.15], sigma=1.0, obs_dim=3)
    res = run(model, sample_linear_data(model, 1500, seed=2))
    assert res.dimension_grades == ("weak", "weak")
    assert np.all(res.fisher_ci[:, 1] < 0.1) and np.all(res.fisher_ci[:, 0] > 0)


@pytest.mark.parametrize("triangle_bound", [None, 200])
def test_fisher_bootstrap_matches_a_brute_force_loop(monkeypatch, triangle_bound):
    # 200: too many inputs to hold their triangles (bound lowered to force it, issue 28):
    # counts as bytes, triangles chunk by chunk; the same intervals as a loop over resamples
    if triangle_bound is not None:
        from collapse_diag.diagnostics.estimators import fisher_grades

        monkeypatch.setattr(fisher_grades, "_TRIANGLE_ELEMENTS", triangle_bound)
    grads = np.random.default_rng(3).normal(size=(30, 2, 3))
    eig_ci, diag_ci = ident_mod.fisher_bootstrap(grads, 50, 0.9, torch.Generator().manual_seed(1))
    gen = torch.Generator().manual_seed(1)
    eigs, diags = [], []
    for _ in range(50):
        idx = torch.randint(0, 30, (30,), generator=gen).numpy()
        f = sum(np.outer(g, g) for i in idx for g in grads[i]) / (30 * 2)
        eigs.append(np.sort(np.linalg.eigvalsh(f))[::-1])
        diags.append(np.diag(f))
    np.testing.assert_allclose(eig_ci, np.quantile(eigs, [0.05, 0.95], axis=0).T, rtol=1e-10)
    np.testing.assert_allclose(diag_ci, np.quantile(diags, [0.05, 0.95], axis=0).T, rtol=1e-10)


@pytest.mark.parametrize(("low", "high", "expected"), [
    (0.2, 0.5, "identifiable"), (0.1, 0.3, "identifiable"), (0.01, 0.05, "weak"),
    (0.0, 0.05, "flat"), (0.0, 0.0, "flat"), (0.05, 0.2, "inconclusive"),
])
def test_grade_rules(low, high, expected):
    assert ident_mod.grade(np.array([low]), np.array([high]), 0.1) == [expected]
