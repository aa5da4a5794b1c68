"""Decoder sensitivity to swapped z: closed forms, known answers, invariances, references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from models_for_tests import (
    NaNDecoderVAE,
    TokenLinearVAE,
    exact_linear_gaussian,
    sample_linear_data,
    toy_data,
    toy_vae,
)
from scipy.stats import wilcoxon

from collapse_diag.config.settings import Settings
from collapse_diag.diagnostics.sensitivity import (
    bootstrap_ci,
    sensitivity_diagnostic,
    wilcoxon_greater,
)
from collapse_diag.exceptions import DiagnosticError
from collapse_diag.model.decoding import derangement, inputs_per_call
from collapse_diag.model.encodings import encode_all
from collapse_diag.model.protocol import ModelInfo, check_model
from collapse_diag.runtime.rng import generator_for

FAST = Settings(swap_bootstrap=200)


def run(model, data, settings=FAST, seed=0):
    model.eval()
    info = check_model(model, data)
    enc = encode_all(model, data, info, settings.batch_size)
    return sensitivity_diagnostic(model, data, enc, info, settings,
                                  generator_for(seed, "sensitivity"))


@pytest.fixture(scope="module")
def linear():
    """Exact-posterior linear Gaussian VAE, scales (1.5, 1, 0.5), sigma 0.7, P = 5, N = 2000."""
    model = exact_linear_gaussian([1.5, 1.0, 0.5], sigma=0.7, obs_dim=5)
    data = sample_linear_data(model, 2000, seed=1)
    result = run(model, data, Settings(swap_bootstrap=500, per_dim_swap_examples=2000))
    return model, data, result


def test_linear_gaussian_matches_closed_form(linear):
    # With (x, z) ~ p(x, z) and z' independent: r = x - W z ~ N(0, sigma^2 I), so
    # E[delta] = tr(W^T W) / sigma^2, E[delta_d] = ||W_d||^2 / sigma^2 and
    # E_q log p(x|z) = -P/2 log(2 pi sigma^2) - P/2. Tolerance: 5 standard errors.
    model, _, res = linear
    w, s2 = model.W.numpy(), model.sigma**2
    n = len(res.delta)
    assert abs(res.swap_delta - np.trace(w.T @ w) / s2) < 5 * res.delta.std() / math.sqrt(n)
    expected_dim = (w**2).sum(axis=0) / s2
    se_dim = res.dim_delta.std(axis=0) / math.sqrt(len(res.dim_delta))
    np.testing.assert_array_less(np.abs(res.dim_swap_delta - expected_dim), 5 * se_dim)
    p = w.shape[0]
    expected_rec = -0.5 * p * math.log(2 * math.pi * s2) - 0.5 * p
    se_rec = res.log_likelihood.std() / math.sqrt(n)
    assert abs(res.reconstruction - expected_rec) < 5 * se_rec
    assert res.swap_significant and res.swap_p_value < 1e-10
    assert np.all(res.dim_p_values < 1e-6)
    assert res.per_dim_swap_examples == 2000


def test_wilcoxon_and_bootstrap_reference(linear):
    _, _, res = linear
    assert res.swap_p_value == pytest.approx(
        wilcoxon(res.delta, alternative="greater").pvalue, rel=1e-12)
    for j in range(res.dim_delta.shape[1]):
        assert res.dim_p_values[j] == pytest.approx(
            wilcoxon(res.dim_delta[:, j], alternative="greater").pvalue, rel=1e-12, abs=1e-300)
    low, high = res.swap_ci
    assert low < res.swap_delta < high
    # The percentile interval is close to the normal one (mean +- 1.96 SE), within 25%.
    half = 1.959964 * res.delta.std() / math.sqrt(len(res.delta))
    assert (high - low) / 2 == pytest.approx(half, rel=0.25)


def test_decoder_ignoring_z_gives_zero_deltas_and_p_one():
    res = run(toy_vae("iii"), toy_data(3, 60))
    assert np.all(res.delta == 0.0)
    assert res.swap_delta == 0.0 and res.swap_p_value == 1.0 and not res.swap_significant
    assert np.all(res.dim_delta == 0.0) and np.all(res.dim_p_values == 1.0)


def test_ignored_dimensions_have_exactly_zero_per_dimension_delta():
    res = run(toy_vae("uiui"), toy_data(4, 200))
    np.testing.assert_array_equal(res.dim_swap_delta[[1, 3]], 0.0)
    np.testing.assert_array_equal(res.dim_p_values[[1, 3]], 1.0)
    assert np.all(res.dim_p_values[[0, 2]] < 1e-10)
    assert np.all(res.dim_swap_delta[[0, 2]] > 1.0)


@pytest.mark.parametrize("batch_size", [1, 7, 64])
def test_results_do_not_depend_on_batch_size(batch_size):
    model, data = toy_vae("uic"), toy_data(3, 40)
    ref = run(model, data, Settings(swap_bootstrap=50, per_dim_swap_examples=25, batch_size=40))
    res = run(model, data, Settings(swap_bootstrap=50, per_dim_swap_examples=25,
                                    batch_size=batch_size))
    for name in ("delta", "log_likelihood", "dim_delta", "dim_p_values", "permutation"):
        np.testing.assert_allclose(getattr(res, name), getattr(ref, name), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(res.swap_ci, ref.swap_ci, rtol=1e-9)
    assert res.swap_p_value == pytest.approx(ref.swap_p_value, rel=1e-9)


def test_same_seed_same_numbers_other_seed_other_numbers():
    model, data = toy_vae("uu"), toy_data(2, 50)
    a, b, c = run(model, data, seed=3), run(model, data, seed=3), run(model, data, seed=4)
    np.testing.assert_array_equal(a.delta, b.delta)
    assert a.section() == b.section()
    assert not np.array_equal(a.delta, c.delta)


def test_nan_decoder_raises_diagnostic_error():
    model, data = toy_vae("uu"), toy_data(2, 20)
    bad = NaNDecoderVAE(model.W, model.sigma, model.A, model.lv)
    info = ModelInfo(latent_dim=2, dtype=torch.float64, has_prior=False,
                     has_num_tokens=False)
    enc = encode_all(bad, data, info, 8)
    with pytest.raises(DiagnosticError, match="NaN"):
        sensitivity_diagnostic(bad, data, enc, info, FAST, generator_for(0, "sensitivity"))


def test_fewer_than_two_inputs_is_a_clear_error():
    with pytest.raises(DiagnosticError, match="at least 2 inputs"):
        run(toy_vae("u"), toy_data(1, 1))


def test_per_token_figures():
    base = toy_vae("ui")
    model = TokenLinearVAE(base.W, base.sigma, base.A, base.lv)
    tokens = torch.from_numpy(np.random.default_rng(0).integers(1, 9, size=50))
    res = run(model, {"x": toy_data(2, 50), "n": tokens},
              Settings(swap_bootstrap=50, per_dim_swap_examples=20))
    n = tokens.numpy().astype(float)
    np.testing.assert_allclose(res.delta_per_token, res.delta / n)
    assert res.swap_delta_per_token == pytest.approx(np.mean(res.delta / n))
    assert res.reconstruction_per_token == pytest.approx(np.mean(res.log_likelihood / n))
    expected = (res.dim_delta / n[res.dim_examples, None]).mean(axis=0)
    np.testing.assert_allclose(res.dim_swap_delta_per_token, expected)
    section = res.section()
    assert section.summary["swap_delta_per_token"] is not None
    assert section.dimensions["swap_delta_per_token"][1] == 0.0
    no_tokens = run(base, toy_data(2, 50)).section()
    assert no_tokens.summary["swap_delta_per_token"] is None
    assert no_tokens.dimensions["swap_delta_per_token"] == [None, None]


def test_section_has_the_schema_fields():
    res = run(toy_vae("uu"), toy_data(2, 30), Settings(swap_bootstrap=20,
                                                       per_dim_swap_examples=0))
    s = res.section()
    assert set(s.summary) >= {"swap_delta", "swap_delta_per_token", "swap_ci", "swap_p_value",
                              "swap_significant", "per_dim_swap_examples", "reconstruction"}
    assert set(s.dimensions) == {"swap_delta", "swap_delta_per_token", "swap_p_value", "swap_ci",
                                 "swap_estimate_ci",
                                 "swap_examples", "swap_threshold", "decoder_use",
                                 "swap_inputs_needed"}
    assert len(s.distributions["swap_delta"]) == 30
    assert s.summary["per_dim_swap_examples"] == 0 and s.summary["per_dim_swap_rounds"] == 0
    assert all(math.isnan(v) for v in s.dimensions["swap_delta"] + s.dimensions["swap_p_value"])
    assert s.dimensions["decoder_use"] == ["undetermined"] * 2
    assert s.dimensions["swap_examples"] == [0, 0]
    assert s.summary["decoder_use_counts"] == {"used": 0, "ignored": 0, "undetermined": 2}
    assert res.decoder_calls == 1 and res.decoder_rows == 60


@hsettings(max_examples=30, deadline=None)
@given(n=st.integers(2, 300), seed=st.integers(0, 2**31))
def test_derangement_has_no_fixed_points(n, seed):
    pi = derangement(n, torch.Generator().manual_seed(seed))
    assert sorted(pi.tolist()) == list(range(n))
    assert np.all(pi != np.arange(n))


def test_wilcoxon_greater_edge_cases():
    assert wilcoxon_greater(np.zeros(5)) == 1.0
    assert wilcoxon_greater(np.array([])) == 1.0
    x = np.array([0.0, 0.3, -0.1, 0.5, 0.2, 0.0, 0.9])
    assert wilcoxon_greater(x) == pytest.approx(wilcoxon(x, alternative="greater").pvalue)


def test_bootstrap_ci_is_seeded_and_brackets_the_mean():
    values = np.random.default_rng(0).normal(1.0, 1.0, 500)
    a = bootstrap_ci(values, 1000, 0.95, torch.Generator().manual_seed(0))
    b = bootstrap_ci(values, 1000, 0.95, torch.Generator().manual_seed(0))
    assert a == b and a[0] < values.mean() < a[1]
    assert all(math.isnan(v) for v in bootstrap_ci(values, 0, 0.95, torch.Generator()))


@pytest.mark.parametrize(("batch_size", "variants", "expected"),
                         [(64, 2, 64), (64, 33, 64), (64, 257, 15), (10_000, 3, 3333), (1, 99, 1)])
def test_inputs_per_call_bounds_rows(batch_size, variants, expected):
    assert inputs_per_call(batch_size, variants, max_rows=4096) == expected


def test_inputs_per_call_defaults_to_the_row_cap():
    from collapse_diag.model.decoding import MAX_ROWS_PER_CALL

    assert inputs_per_call(64, 33) == min(64, MAX_ROWS_PER_CALL // 33)
    assert inputs_per_call(64, 33) * 33 <= max(MAX_ROWS_PER_CALL, 64)
