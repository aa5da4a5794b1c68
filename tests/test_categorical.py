"""Categorical latents: closed-form KL and exact MI against torch.distributions, statuses."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from discrete_models import ExactCategorical
from torch.distributions import Categorical, kl_divergence

import collapse_diag
from collapse_diag.diagnostics.categorical import categorical_figures
from collapse_diag.report.invariants import check_report

# float64 sums of at most a few thousand terms: 1e-6 nats is far above their rounding
TOL = 1e-6


def _reference(model, x):
    """KL and MI per variable, and the joint MI, by torch.distributions and enumeration."""
    with torch.no_grad():
        q = Categorical(logits=model.posterior_logits(x))  # batch shape [N, D]
        p = Categorical(logits=model.prior_logits(x))
        kl = kl_divergence(q, p).mean(0)
        aggregate = Categorical(probs=q.probs.mean(0, keepdim=True).expand_as(q.probs))
        mi = kl_divergence(q, aggregate).mean(0)
        n, dims, k = q.probs.shape
        joint = torch.zeros(n, k**dims, dtype=torch.float64)
        for s, state in enumerate(itertools.product(range(k), repeat=dims)):
            joint[:, s] = torch.stack([q.probs[:, d, c] for d, c in enumerate(state)]).prod(0)
        joint_mi = kl_divergence(Categorical(probs=joint),
                                 Categorical(probs=joint.mean(0).expand_as(joint))).mean()
    return kl, mi, float(joint_mi)


@pytest.mark.parametrize("prior", [None, (0.5, 0.3, 0.2)])
def test_kl_and_mi_match_torch_distributions_exactly(prior):
    model = ExactCategorical(prior=prior)
    x = model.sample(300, seed=1)
    report = collapse_diag.analyze(model, x, seed=0)
    kl, mi, joint = _reference(model, x)
    assert report.errors == {} and report.warnings == [] and check_report(report) == []
    assert report.provenance["latent_kind"] == "categorical"
    for d, row in enumerate(report.dimensions):
        assert row["discrete_kl"] == pytest.approx(float(kl[d]), abs=TOL)
        assert row["discrete_mi"] == pytest.approx(float(mi[d]), abs=TOL)
        assert row["status"] == "used"
    assert report.summary["discrete_kl"] == pytest.approx(float(kl.sum()), abs=TOL)
    assert report.summary["discrete_mi"] == pytest.approx(joint, abs=TOL)
    # independent variables: the joint MI is the sum of the per-variable ones, up to the
    # dependence the finite sample shows; and mean KL = MI + KL(qbar || p) >= MI
    assert float(kl.sum()) >= joint - TOL
    assert report.summary["verdict"] == "healthy"
    from collapse_diag.render.plots import plots_for

    assert list(plots_for(report)) == ["position_usage"]  # no codebook, no Gaussian plots


def test_usage_perplexity_and_the_enumeration_limit():
    model = ExactCategorical(centres=(-4.0, 0.0, 4.0))
    x = model.sample(200, seed=2)
    with torch.no_grad():
        log_q = model.posterior_logits(x).numpy()
    figures = categorical_figures(log_q)
    qbar = torch.from_numpy(log_q).exp().mean(0)
    assert figures.perplexity == pytest.approx(Categorical(probs=qbar).entropy().exp().numpy(),
                                               rel=1e-9)
    assert figures.mi_ceiling == pytest.approx(math.log(200))
    wide = categorical_figures(log_q.repeat(4, axis=1)[:, :8])  # K^D = 3^8 > 4096: not enumerated
    assert wide.joint_mi is None


def test_an_ignored_and_a_collapsed_variable_get_their_statuses():
    model = ExactCategorical(ignored=(1,))
    report = collapse_diag.analyze(model, model.sample(200, seed=3), seed=0)
    assert [d["status"] for d in report.dimensions] == ["used", "ignored"]
    assert report.summary["verdict"] == "partial" and report.warnings == []
    flat = ExactCategorical(centres=(0.0, 0.0, 0.0))  # posterior = prior for every x
    collapsed = collapse_diag.analyze(flat, flat.sample(200, seed=4), seed=0)
    assert {d["status"] for d in collapsed.dimensions} == {"collapsed"}
    assert collapsed.summary["verdict"] == "collapsed"
    assert collapsed.summary["discrete_kl"] == pytest.approx(0.0, abs=1e-12)
