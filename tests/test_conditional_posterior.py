"""Posteriors conditioned on the sampled past, posterior(x, z): KL per step, IW-NLL, statuses."""

from __future__ import annotations

import pytest
import torch
from torch.distributions import Normal, kl_divergence
from vrnn_models import TinyVRNN

import collapse_diag
from collapse_diag.runtime.rng import generator_for

CHEAP = {"seed": 0, "swap_bootstrap": 50, "per_dim_swap_examples": 40, "fisher_bootstrap": 20,
         "mi_bootstrap": 20, "prior_samples": 4, "nll_examples": 40,
         "diagnostics": ["kl", "activity", "sensitivity", "likelihood"]}


def _ancestral_reference(model, x, seed=0):
    """The tool's draw, redone by hand: the same noise, T posterior calls, then the prior."""
    n = len(x)
    noise = torch.randn((n, model.steps, model.dims), generator=generator_for(seed, "prior"),
                        dtype=torch.float64)
    z = torch.zeros_like(noise)
    mu, logvar = torch.empty_like(noise), torch.empty_like(noise)
    with torch.no_grad():
        for t in range(model.steps):
            m, lv = model.posterior(x, z)
            mu[:, t], logvar[:, t] = m[:, t], lv[:, t]
            z[:, t] = m[:, t] + torch.exp(0.5 * lv[:, t]) * noise[:, t]
        pmu, plogvar = model.prior(x, z)
    return kl_divergence(Normal(mu, torch.exp(0.5 * logvar)),
                         Normal(pmu, torch.exp(0.5 * plogvar))).mean(0)  # [T, D]


def test_kl_per_step_is_taken_at_the_ancestral_draw_of_the_conditional_posterior():
    model = TinyVRNN()
    x = model.sample(120)
    report = collapse_diag.analyze(model, x, **CHEAP)
    assert report.provenance["latent_steps"] == model.steps
    expected = _ancestral_reference(model, x)
    for d, row in enumerate(report.dimensions):
        # float64 throughout: the same arithmetic up to summation order
        assert row["kl_by_step"] == pytest.approx(expected[:, d].tolist(), abs=1e-10)


def test_the_iw_bound_at_one_draw_equals_minus_elbo_and_falls_with_more():
    model = TinyVRNN()
    x = model.sample(80, seed=1)
    one = collapse_diag.analyze(model, x, nll_samples=1, **CHEAP)
    assert "likelihood" not in one.errors
    s = one.summary
    # the same draw on both sides: equal up to float64 rounding of sums of ~T*D terms
    assert s["nll"] == pytest.approx(s["neg_elbo"], abs=1e-9)
    assert s["neg_elbo"] == pytest.approx(s["rate"] + s["distortion"], abs=1e-9)
    many = collapse_diag.analyze(model, x, nll_samples=64, **CHEAP).summary
    assert many["nll"] < many["neg_elbo"]  # the bound tightens with K (Burda et al. 2016)


def test_a_decoder_reading_only_early_steps_shows_it_by_window():
    model = TinyVRNN(steps=8, reads=4)
    report = collapse_diag.analyze(model, model.sample(200, seed=2), swap_windows=2, **CHEAP)
    early, late = report.summary["swap_delta_by_window"]
    assert early["p_value"] < 0.01 and early["swap_delta"] > 0
    assert abs(late["swap_delta"]) < 1e-9
    by_step = report.dimensions[0]["kl_by_step"]
    assert len(by_step) == 8 and min(by_step) > 0
