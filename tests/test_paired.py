"""`compare`'s paired differences of NLL, -ELBO and KL: known answers and scipy's paired t."""

from __future__ import annotations

import numpy as np
import pytest
from models_for_tests import LinearVAE, exact_linear_gaussian, sample_linear_data
from scipy import stats

from collapse_diag import analyze, compare
from collapse_diag.render.comparison import build_comparison_document
from collapse_diag.render.comparison_tables import paired_table
from collapse_diag.runs.paired import paired_difference

FAST = dict(diagnostics=["kl", "likelihood"], nll_samples=8, nll_examples=120, seed=0)


@pytest.fixture(scope="module")
def two_models():
    """The exact posterior of a linear Gaussian model and a worse encoder for the same decoder,
    analysed on the same 300 inputs with the same seed (so the same NLL subsample)."""
    exact = exact_linear_gaussian([1.5, 1.0, 0.5], sigma=0.7, obs_dim=5)
    worse = LinearVAE(exact.W.numpy(), exact.sigma, 0.6 * exact.A.numpy(),
                      exact.lv.numpy() + 0.7)
    data = sample_linear_data(exact, 300, seed=5)
    return analyze(exact, data, **FAST), analyze(worse, data, **FAST)


def test_paired_difference_matches_scipy_paired_t():
    rng = np.random.default_rng(0)
    shared = rng.normal(0, 5, 80)  # the inputs' own difficulty, common to both models
    a, b = shared + rng.normal(0.3, 0.2, 80), shared + rng.normal(0.0, 0.2, 80)
    d = paired_difference(a, b, 0.9)
    ref = stats.ttest_rel(a, b).confidence_interval(0.9)
    assert d["ci"] == pytest.approx([ref.low, ref.high], rel=1e-10)
    assert d["mean"] == pytest.approx(a.mean() - b.mean(), rel=1e-12)
    ref_u = stats.ttest_ind(a, b).confidence_interval(0.9)  # pooled-variance, equal n: same SE
    half = d["ci_unpaired"][1] - d["mean"]
    assert half == pytest.approx(ref_u.high - d["mean"], rel=0.02)  # df 79 against 158
    assert d["narrowing"] > 10  # sd of the shared part 5 against 0.2 * sqrt(2)


def test_paired_interval_is_several_times_narrower_and_ranks_only_when_it_excludes_0(
        two_models):
    exact, worse = two_models
    c = compare([exact, worse], names=["exact", "worse"])
    (entry,) = c.paired
    nll = entry["nll"]
    # Same inputs, same seed: the same 120 subsampled inputs, and the paired mean is the
    # difference of the reports' NLLs (float64 sums, 1e-10 nats).
    assert exact.distributions["nll_inputs"] == worse.distributions["nll_inputs"]
    assert nll["n"] == 120
    assert nll["mean"] == pytest.approx(exact.summary["nll"] - worse.summary["nll"], abs=1e-10)
    assert entry["neg_elbo"]["mean"] == pytest.approx(
        exact.summary["neg_elbo"] - worse.summary["neg_elbo"], abs=1e-10)
    assert entry["kl"]["n"] == 300 and entry["kl"]["mean"] == pytest.approx(
        exact.summary["kl"] - worse.summary["kl"], abs=1e-10)
    # The unpaired interval is what nll ± nll_se of the two reports amounts to.
    assert nll["se_unpaired"] == pytest.approx(
        np.hypot(exact.summary["nll_se"], worse.summary["nll_se"]), rel=1e-10)
    assert nll["narrowing"] > 3  # "several times narrower" (measured 6.0 here)
    # The exact posterior's bound is log p(x), the worse one's is above it: exact lower.
    assert nll["ci"][1] < 0 and nll["lower"] == "exact"
    # A model against itself: every difference is 0, nothing is ranked.
    same = compare([exact, exact], names=["a", "b"]).paired[0]
    assert same["nll"]["mean"] == 0 and same["nll"]["lower"] is None
    rows = paired_table(c).rows
    assert [r[2] for r in rows] == ["NLL", "-ELBO", "KL"] and rows[0][-1] == "exact lower"
    sections = [s.title for s in build_comparison_document(c, drawn=()).sections]
    assert "Paired differences" in sections
