"""Simultaneous intervals, the three-valued decision and the adaptive rounds of the
per-dimension swap: references (scipy), closed forms and known answers by construction."""

from __future__ import annotations

import math

import numpy as np
import pytest
from models_for_tests import exact_linear_gaussian, sample_linear_data, toy_data, toy_vae
from scipy import stats
from test_sensitivity import run

from collapse_diag.config.settings import Settings
from collapse_diag.diagnostics.estimators.swap_decision import (
    decide,
    inputs_to_decide,
    interval_error,
    negligible_thresholds,
    round_schedule,
    t_interval,
)


def test_round_schedule_doubles_up_to_the_budget():
    assert round_schedule(128, 1000) == [128, 256, 512, 1000]
    assert round_schedule(128, 128) == [128]
    assert round_schedule(128, 60) == [60]
    assert round_schedule(0, 500) == [] and round_schedule(5, 0) == []
    assert interval_error(0.05, 4, 16) == pytest.approx(0.05 / 64)


def test_t_interval_matches_scipy():
    values = np.random.default_rng(0).normal(0.3, 2.0, 57)
    mean, sd, low, high = t_interval(values, 0.01)
    ref = stats.t.interval(0.99, 56, loc=values.mean(), scale=stats.sem(values))
    assert (low, high) == pytest.approx(ref, rel=1e-12)
    assert mean == pytest.approx(values.mean()) and sd == pytest.approx(values.std(ddof=1))


def test_t_interval_edge_cases():
    assert t_interval(np.zeros(40), 0.01)[2:] == (0.0, 0.0)  # exact zeros: zero width at 0
    assert t_interval(np.full(3, 0.5), 0.01)[2:] == (0.5, 0.5)
    assert t_interval(np.array([0.4]), 0.01)[2:] == (-math.inf, math.inf)
    assert t_interval(np.array([]), 0.01)[2:] == (-math.inf, math.inf)


def test_t_interval_coverage_at_the_nominal_level():
    # 4000 normal samples of size 30 at error 0.1: coverage 0.9 +- 3 binomial SE (0.014).
    rng = np.random.default_rng(1)
    hits = [lo <= 1.0 <= hi for lo, hi in
            (t_interval(rng.normal(1.0, 3.0, 30), 0.1)[2:] for _ in range(4000))]
    assert abs(np.mean(hits) - 0.9) < 0.014


def test_negligible_threshold_is_capped_and_relative():
    thr = negligible_thresholds(np.array([2.0, 0.05, 0.0, -0.01, np.nan]), 5, 0.01, 0.1)
    np.testing.assert_allclose(thr, [0.01, 0.005, 0.0, 0.0, 0.01])
    np.testing.assert_array_equal(negligible_thresholds(None, 2, 0.01, 0.1), [0.01, 0.01])


def test_decide_three_ways():
    low = np.array([0.001, -0.1, -0.001, 0.0, -0.02])
    high = np.array([0.5, 0.2, 0.004, 0.0, 0.011])
    assert decide(low, high, np.full(5, 0.01)).tolist() == [
        "used", "undetermined", "ignored", "ignored", "undetermined"]


def test_inputs_to_decide_from_the_observed_variance():
    c = stats.norm.ppf(1 - 0.01 / 2)
    n = inputs_to_decide(np.array([0.05, 0.002, 0.0]), np.array([1.0, 0.1, 0.0]),
                         np.array([0.01, 0.01, 0.0]), 0.01)
    # used route (c sd / mean)^2 = 2654 beats the ignored route (mean > threshold: none);
    # for 0.002 the ignored route (c sd / 0.008)^2 = 1037 beats the used one (16587)
    assert n[0] == math.ceil((c * 1.0 / 0.05) ** 2)
    assert n[1] == math.ceil((c * 0.1 / 0.008) ** 2)
    assert n[2] is None  # mean 0 at threshold 0: neither can be shown


# ---- the adaptive rounds, end to end on known models -----------------------------------


def test_clear_cases_stop_after_one_round_with_exact_decisions():
    res = run(toy_vae("uiui"), toy_data(4, 600))
    pd = res.per_dim
    assert pd.rounds == 1 and res.per_dim_swap_examples == 128 and pd.budget == 600
    assert pd.decision == ("used", "ignored", "used", "ignored")
    np.testing.assert_array_equal(pd.low[[1, 3]], 0.0)
    np.testing.assert_array_equal(pd.high[[1, 3]], 0.0)
    assert res.decoder_rows == 2 * 600 + 128 * 5


def test_weak_dimensions_take_more_rounds_and_never_look_ignored():
    # W^T W = 0.0625 per dimension, sigma 1: closed-form mean delta_d = 0.0625 nats.
    model = exact_linear_gaussian([0.25] * 6, sigma=1.0, obs_dim=6)
    data = sample_linear_data(model, 1500, seed=3)
    res = run(model, data, Settings(swap_bootstrap=50))
    pd = res.per_dim
    assert pd.rounds > 1
    assert "ignored" not in pd.decision
    assert pd.error == pytest.approx(0.05 / (pd.planned_rounds * 6))
    # each interval covers the closed form (simultaneous 95%: all at once, almost surely)
    assert np.all((pd.low <= 0.0625) & (0.0625 <= pd.high))
    # later rounds decode only undecided dimensions: fewer rows than budget * (D + 1)
    assert res.decoder_rows - 2 * 1500 <= 1500 * 7


def test_undecided_dimensions_say_how_many_inputs_would_decide_them():
    model = exact_linear_gaussian([0.25] * 3, sigma=1.0, obs_dim=3)
    data = sample_linear_data(model, 40, seed=4)
    res = run(model, data, Settings(swap_bootstrap=20, per_dim_swap_examples=40))
    pd = res.per_dim
    for d, decision in enumerate(pd.decision):
        if decision == "undetermined":
            assert isinstance(pd.inputs_needed[d], int) and pd.inputs_needed[d] > 40
        else:
            assert pd.inputs_needed[d] is None


@pytest.mark.parametrize("batch_size", [3, 64])
def test_adaptive_rounds_do_not_depend_on_batch_size(batch_size):
    model = exact_linear_gaussian([0.25, 1.0, 0.1], sigma=1.0, obs_dim=4)
    data = sample_linear_data(model, 300, seed=5)
    ref = run(model, data, Settings(swap_bootstrap=20, per_dim_swap_examples=40,
                                    batch_size=300))
    res = run(model, data, Settings(swap_bootstrap=20, per_dim_swap_examples=40,
                                    batch_size=batch_size))
    assert ref.per_dim.rounds > 1
    np.testing.assert_allclose(res.per_dim.delta, ref.per_dim.delta, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(res.per_dim.low, ref.per_dim.low, rtol=1e-9)
    assert res.per_dim.decision == ref.per_dim.decision


def test_budget_caps_the_inputs():
    model = exact_linear_gaussian([0.1] * 2, sigma=1.0, obs_dim=2)
    data = sample_linear_data(model, 400, seed=6)
    res = run(model, data, Settings(swap_bootstrap=20, per_dim_swap_examples=50,
                                    per_dim_swap_max_examples=100))
    assert res.per_dim.budget == 100 and res.per_dim_swap_examples <= 100
    assert res.per_dim.planned_rounds == 2
    assert res.section().summary["per_dim_swap_budget"] == 100


@pytest.mark.parametrize(("name", "value"), [
    ("per_dim_swap_max_examples", 0), ("per_dim_swap_max_examples", 2.5),
    ("negligible_swap_nats", 0.0), ("negligible_swap_fraction", 1.5),
    ("fisher_bootstrap", -1),
])
def test_new_settings_are_validated(name, value):
    from collapse_diag.exceptions import InvalidParameterError

    with pytest.raises(InvalidParameterError, match=name):
        Settings(**{name: value}).validate()


def test_sequential_intervals_hold_simultaneously_at_the_nominal_rate():
    # 60 independent analyses of a linear Gaussian VAE whose mean per-dimension deltas are
    # known (||W_d||^2 / sigma^2 = 0.0625, 0.0625, 0.25) with rounds 64, 128, ..., 600:
    # every interval of a run must cover its closed form, in at least 1 - alpha = 95% of
    # runs (Bonferroni is conservative). Tolerance: 3 binomial SE, failure rate <= 0.135.
    model = exact_linear_gaussian([0.25, 0.25, 0.5], sigma=1.0, obs_dim=4)
    expected = np.array([0.0625, 0.0625, 0.25])
    failures, rounds = 0, []
    for seed in range(60):
        res = run(model, sample_linear_data(model, 600, seed=100 + seed),
                  Settings(swap_bootstrap=0, per_dim_swap_examples=64), seed=seed)
        pd = res.per_dim
        failures += int(not np.all((pd.low <= expected) & (expected <= pd.high)))
        rounds.append(pd.rounds)
    assert failures / 60 <= 0.135
    assert max(rounds) > 1  # the sequential part was exercised
