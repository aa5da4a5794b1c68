"""The verdict runs whenever its inputs (kl, activity) run: ``diagnostics=`` cannot drop it."""

import pytest
from toy_models import ToyVAE

from collapse_diag import analyze
from collapse_diag.diagnostics.minimums import MIN_INPUTS
from collapse_diag.exceptions import DataError


def test_selecting_kl_and_activity_still_gives_the_verdict():
    model = ToyVAE((2.0, 1.0, 0.0), 0.5)  # z2 has weight 0: q(z2|x) = p(z2), KL 0
    report = analyze(model, model.sample(100, seed=1), diagnostics=["kl", "activity"])
    assert "verdict" in report.timings and not report.errors
    assert [d["status"] for d in report.dimensions][2] == "collapsed"
    assert report.summary["status_counts"]["collapsed"] == 1
    assert report.summary["verdict"] == "undetermined"  # none used: never "partial"
    assert "decoder use not checked" in report.summary["verdict_reason"]


def test_without_its_inputs_there_is_no_verdict_and_no_error():
    report = analyze(ToyVAE(), ToyVAE().sample(1), diagnostics=["kl"])
    assert "verdict" not in report.summary and "verdict" not in report.timings
    assert not report.errors


def test_the_verdict_minimum_applies_when_it_runs():
    n = MIN_INPUTS["verdict"] - 1
    with pytest.raises(DataError, match=f"the verdict needs at least {MIN_INPUTS['verdict']}"):
        analyze(ToyVAE(), ToyVAE().sample(n), diagnostics=["kl", "activity"])
