"""Per-dimension statuses and the verdict: known answers end to end, rules on hand-made results."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from models_for_tests import (
    analyze_toy,
    exact_linear_gaussian,
    sample_linear_data,
    toy_data,
    toy_vae,
)

from collapse_diag.config.settings import Settings
from collapse_diag.diagnostics.verdict import STATUSES, decide_verdict, holm

FAST = Settings(swap_bootstrap=100)


# ---- known answers, end to end ------------------------------------------------------


def test_ignored_dimensions_are_exactly_the_ones_the_decoder_does_not_read():
    a = analyze_toy(toy_vae("uiuii"), toy_data(5, 300), FAST)
    assert a.verdict.status == ("used", "ignored", "used", "ignored", "ignored")
    assert a.verdict.verdict == "partial"
    assert a.verdict.status_counts == {"used": 2, "collapsed": 0, "uninformative": 0,
                                       "ignored": 3, "undetermined": 0}
    # zero decoder weight: every delta is exactly 0, a zero-width interval at 0
    np.testing.assert_array_equal(a.sens.per_dim.high[[1, 3, 4]], 0.0)
    assert np.all(a.sens.per_dim.low[[0, 2]] > 0)


def test_decoder_ignoring_z_is_collapsed_with_a_non_significant_swap_test():
    a = analyze_toy(toy_vae("iii"), toy_data(3, 200), FAST)
    assert a.sens.swap_p_value >= FAST.alpha and not a.sens.swap_significant
    assert a.verdict.verdict == "collapsed"
    assert "ignores z" in a.verdict.verdict_reason
    assert set(a.verdict.status) == {"ignored"}


@pytest.mark.parametrize("case", ["toy", "linear_gaussian"])
def test_every_dimension_used_is_healthy(case):
    if case == "toy":
        model, data = toy_vae("uuuu"), toy_data(4, 300)
    else:
        model = exact_linear_gaussian([1.5, 1.0, 0.5], sigma=0.7, obs_dim=5)
        data = sample_linear_data(model, 500, seed=1)
    a = analyze_toy(model, data, FAST)
    assert a.verdict.verdict == "healthy", a.verdict.verdict_reason
    assert set(a.verdict.status) == {"used"}


def test_weak_dimensions_used_jointly_are_never_called_ignored():
    # 16 dimensions, each with W^T W = 0.0625 (mean KL 0.03 nats, per-dimension swap delta
    # 0.0625 nats, above the 0.01-nat cap of the negligible threshold): individually weak,
    # jointly a 1-nat swap delta. Each is used or undetermined, never ignored.
    model = exact_linear_gaussian([0.25] * 16, sigma=1.0, obs_dim=16)
    a = analyze_toy(model, sample_linear_data(model, 400, seed=2), FAST)
    assert a.sens.swap_significant
    assert a.verdict.verdict in ("partial", "healthy", "undetermined")
    counts = a.verdict.status_counts
    assert counts["collapsed"] == counts["uninformative"] == counts["ignored"] == 0
    assert a.sens.per_dim.rounds > 1  # round 1 (128 inputs) did not decide them all


def test_collapsed_and_uninformative_dimensions():
    a = analyze_toy(toy_vae("ucn"), toy_data(3, 300), FAST)
    assert a.verdict.status == ("used", "collapsed", "uninformative")
    assert a.verdict.verdict == "partial"
    b = analyze_toy(toy_vae("cn"), toy_data(2, 100), FAST)
    assert b.verdict.verdict == "collapsed"
    assert "no latent dimension carries information" in b.verdict.verdict_reason


# ---- the rules, on hand-made results -------------------------------------------------


def encoder(collapsed, active):
    kl = SimpleNamespace(collapsed=np.array(collapsed), eps=0.01)
    activity = SimpleNamespace(active=np.array(active), threshold=0.01)
    return kl, activity


def sensitivity(decision, dim_p=None, significant=True, swap_delta=1.0, examples=128):
    dim_p = [0.5] * len(decision) if dim_p is None else dim_p
    return SimpleNamespace(dim_p_values=np.array(dim_p, dtype=float), swap_delta=swap_delta,
                           swap_p_value=1e-6 if significant else 0.4,
                           swap_significant=significant, per_dim_swap_examples=examples,
                           per_dim=SimpleNamespace(decision=tuple(decision)))


def identifiability(fisher, rank=None, ci=None):
    fisher = np.array(fisher, dtype=float)
    ci = np.column_stack([fisher, fisher]) if ci is None else np.array(ci, dtype=float)
    return SimpleNamespace(fisher=fisher, fisher_ci=ci, identifiable_dims=int(np.sum(fisher > 0))
                           if rank is None else rank)


S = Settings()
U, I, N = "used", "ignored", "undetermined"  # noqa: E741


def test_undecided_dimensions_are_undetermined_not_ignored():
    kl, act = encoder([False] * 3, [True] * 3)
    v = decide_verdict(kl, act, sensitivity([N, N, N]), identifiability([0.01, 0.01, 0.01]), S)
    assert v.status == ("undetermined",) * 3
    assert v.verdict == "undetermined"  # issue 21: none shown unused is never "partial"
    w = decide_verdict(kl, act, sensitivity([I, N, U]), identifiability([0.0, 0.01, 0.01]), S)
    assert w.status == ("ignored", "undetermined", "used") and w.verdict == "partial"


def test_holm_p_values_are_reported_next_to_the_decisions():
    kl, act = encoder([False] * 4, [True] * 4)
    v = decide_verdict(kl, act, sensitivity([U, I, I, I], dim_p=[1e-9, 0.02, 0.5, 0.9]), None, S)
    assert v.status == ("used", "ignored", "ignored", "ignored")
    # 0.02 alone would pass alpha = 0.05; Holm (second smallest of 4: times 3) makes it 0.06.
    np.testing.assert_allclose(v.swap_p_holm, [4e-9, 0.06, 1.0, 1.0])


def test_fisher_lower_bound_above_its_cutoff_counts_as_use():
    kl, act = encoder([False] * 4, [True] * 4)
    # cutoff = max(1e-3 * 10, atol 0.1) = 0.1: the floor, relative to the unit prior precision
    ident = identifiability([10.0, 0.2, 0.2, 0.05],
                            ci=[[8, 12], [0.15, 0.25], [0.05, 0.3], [0.03, 0.07]])
    v = decide_verdict(kl, act, sensitivity([N] * 4), ident, S)
    assert v.status == ("used", "used", "undetermined", "undetermined")
    np.testing.assert_array_equal(v.fisher_used, [True, True, False, False])


def test_used_evidence_wins_over_a_negligible_swap_interval():
    kl, act = encoder([False] * 2, [True] * 2)
    v = decide_verdict(kl, act, sensitivity([I, I]), identifiability([1.0, 0.0]), S)
    assert v.status == ("used", "ignored")


def test_encoder_side_statuses_take_precedence_over_fisher_alone():
    kl, act = encoder([True, False, False], [True, False, True])
    v = decide_verdict(kl, act, sensitivity([N] * 3), identifiability([1.0] * 3), S)
    assert v.status == ("collapsed", "uninformative", "used")


def test_a_swap_interval_above_zero_overrides_the_cut_offs():
    # Issue 22 item 3: a dimension the per-dimension swap shows read is never collapsed or
    # uninformative by a cut-off (KL < kl_eps, Var mu < active_threshold).
    kl, act = encoder([True, False, False], [True, False, True])
    v = decide_verdict(kl, act, sensitivity([U] * 3), identifiability([1.0] * 3), S)
    assert v.status == ("used", "used", "used") and v.verdict == "healthy"
    np.testing.assert_array_equal(v.evidence_informative, [True, True, False])


def test_an_mi_interval_above_kl_eps_overrides_the_variance_cut_off():
    # Var mu just under the cut (the 0.00998 < 0.01) while the MI interval is
    # [0.4, 0.6] nats: not uninformative; an interval [1e-4, 3e-3] (below kl_eps) is no
    # evidence against the cut-off.
    kl, act = encoder([False, False], [False, False])
    info = SimpleNamespace(per_dimension_ci=np.array([[0.4, 0.6], [1e-4, 3e-3]]))
    v = decide_verdict(kl, act, sensitivity([N, N]), None, S, information=info)
    assert v.status == ("undetermined", "uninformative")


def test_no_informative_dimension_is_collapsed():
    kl, act = encoder([True, False], [False, False])
    v = decide_verdict(kl, act, sensitivity([N] * 2), identifiability([1.0] * 2), S)
    assert v.verdict == "collapsed"


def test_verdict_is_never_collapsed_while_a_dimension_is_used():
    kl, act = encoder([False] * 2, [True] * 2)
    v = decide_verdict(kl, act, sensitivity([U, N], significant=False), None, S)
    assert v.status == ("used", "undetermined") and v.verdict == "undetermined"
    assert "none shown unused" in v.verdict_reason
    w = decide_verdict(kl, act, sensitivity([N, N], significant=False), None, S)
    assert w.verdict == "undetermined"  # p >= alpha alone, no interval: absence not shown
    unread = sensitivity([N, N], significant=False)
    unread.swap_ci = (0.0, 0.0)
    assert decide_verdict(kl, act, unread, None, S).verdict == "collapsed"


def test_missing_sensitivity_decides_from_fisher():
    kl, act = encoder([False] * 2, [True] * 2)
    v = decide_verdict(kl, act, None, identifiability([0.0, 0.0], rank=0), S)
    assert v.verdict == "collapsed" and "swap test is unavailable" in v.verdict_reason
    assert v.status == ("ignored", "ignored")  # zero gradient: the decoder has no path from z_d
    w = decide_verdict(kl, act, None, identifiability([1.0, 0.5]), S)
    assert w.verdict == "healthy" and w.decoder_checked


def test_missing_identifiability_decides_from_the_swap_tests():
    kl, act = encoder([False] * 2, [True] * 2)
    v = decide_verdict(kl, act, sensitivity([U, I]), None, S)
    assert v.status == ("used", "ignored") and v.verdict == "partial"
    w = decide_verdict(kl, act, sensitivity([I, I], significant=False), None, S)
    assert w.verdict == "collapsed"


def test_missing_decoder_side_says_so():
    kl, act = encoder([False, True], [True, True])
    v = decide_verdict(kl, act, None, None, S)
    assert v.status == ("undetermined", "collapsed") and not v.decoder_checked
    assert v.verdict == "undetermined" and "not checked" in v.verdict_reason


def test_per_dimension_swap_not_run_falls_back_to_fisher():
    kl, act = encoder([False] * 3, [True] * 3)
    v = decide_verdict(kl, act, sensitivity([N] * 3, dim_p=[np.nan] * 3, examples=0),
                       identifiability([1.0, 0.0, 0.05]), S)
    assert v.status == ("used", "ignored", "undetermined")
    assert np.all(np.isnan(v.swap_p_holm))


def test_section_and_reason_shape():
    kl, act = encoder([False, True, False], [True, True, False])
    v = decide_verdict(kl, act, sensitivity([U, I, I], dim_p=[1e-9, 0.5, 0.5]),
                       identifiability([1, 0, 0]), S)
    section = v.section()
    assert set(section.summary) == {"status_counts", "verdict", "verdict_reason"}
    assert set(section.summary["status_counts"]) == set(STATUSES)
    assert sum(section.summary["status_counts"].values()) == 3
    assert section.dimensions["status"] == ["used", "collapsed", "uninformative"]
    np.testing.assert_allclose(section.dimensions["swap_p_holm"], [3e-9, 1.0, 1.0])
    reason = section.summary["verdict_reason"]
    assert reason.startswith("Partial") and reason.endswith(".") and "\n" not in reason


def _holm_reference(p):
    m, order = len(p), sorted(range(len(p)), key=lambda i: p[i])
    out, running = [0.0] * m, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


@pytest.mark.parametrize("p", [[0.01, 0.04, 0.03, 0.005], [0.5], [0.2, 0.2, 0.01, 1.0, 0.001]])
def test_holm_matches_reference(p):
    np.testing.assert_allclose(holm(np.array(p)), _holm_reference(p))


def test_a_non_significant_swap_beside_undetermined_dimensions_is_not_collapse():
    """Failing to reject is not absence: 'collapsed' needs the swap interval within the
    negligible threshold min(0.01, 0.1 * I(x; z)) or every informative dimension ignored."""
    kl, act = encoder([False] * 4, [True, True, False, False])
    info = SimpleNamespace(mutual_information=0.5, per_dimension_ci=None)
    wide = sensitivity([N, N, N, N], significant=False, swap_delta=0.05)
    wide.swap_ci = (-0.02, 0.12)  # upper end 0.12 > min(0.01, 0.05): use not excluded
    v = decide_verdict(kl, act, wide, None, S, information=info)
    assert v.status_counts["undetermined"] == 2 and v.verdict == "undetermined"
    assert "ignores z" not in v.verdict_reason
    tight = sensitivity([N, N, N, N], significant=False, swap_delta=0.0)
    tight.swap_ci = (0.0, 0.0)  # the decoder ignores z exactly: a zero-width interval at 0
    assert decide_verdict(kl, act, tight, None, S, information=info).verdict == "collapsed"
    # the threshold is the cap 0.01 without an MI, 0.1 * I(x; z) when that is smaller
    edge = sensitivity([N, N, N, N], significant=False)
    edge.swap_ci = (-0.01, 0.009)
    assert decide_verdict(kl, act, edge, None, S).verdict == "collapsed"
    small_mi = SimpleNamespace(mutual_information=0.05, per_dimension_ci=None)
    assert decide_verdict(kl, act, edge, None, S, information=small_mi).verdict == "undetermined"
    # every informative dimension shown ignored: absence is shown dimension by dimension
    ignored = sensitivity([I, I, N, N], significant=False)
    ignored.swap_ci = (-0.02, 0.12)
    assert decide_verdict(kl, act, ignored, None, S, information=info).verdict == "collapsed"
