"""Issue 25: collapse-diag render --kl-eps / --active-threshold re-derives without the model."""

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from toy_models import ToyVAE

import collapse_diag
from collapse_diag import InvalidParameterError
from collapse_diag.report.invariants import check_report
from collapse_diag.report.report import Report
from collapse_diag.runs.rethreshold import rethreshold
from collapse_diag_cli.main import main

# one round of the per-dimension swap (max = first round): its decisions do not depend on
# which dimensions the thresholds call informative, so a re-derived report can equal a run
SETTINGS = {"seed": 2, "per_dim_swap_examples": 40, "per_dim_swap_max_examples": 40,
            "swap_bootstrap": 50, "mi_samples": 4, "prior_samples": 4, "fisher_samples": 2,
            "fisher_bootstrap": 20, "nll_samples": 4, "nll_examples": 20,
            "refine_examples": 16, "refine_steps": 20}
DERIVED = ("status", "cause", "active", "signal")
SUMMARY = ("verdict", "verdict_reason", "status_counts", "collapsed_units", "active_units",
           "signal_counts", "collapse_cause", "cause_counts")


@pytest.fixture(scope="module")
def runs():
    # KL per dimension 0.5 log(1 + w^2 / s^2): 1.04, 0.043, 0.0045 nats (toy_models.py)
    model = ToyVAE(weights=(1.5, 0.15, 0.05), noise=0.5)
    x = model.sample(160, seed=1)
    return {eps: collapse_diag.analyze(model, x, kl_eps=eps, **SETTINGS)
            for eps in (0.002, 0.05)}


def _decided(report):
    return ({k: report.summary.get(k) for k in SUMMARY},
            [{k: row.get(k) for k in DERIVED} for row in report.dimensions])


def test_rethresholding_equals_a_run_at_the_new_kl_eps(runs):
    low, high = runs[0.002], runs[0.05]
    assert _decided(low) != _decided(high)  # the threshold matters on this model
    for source, target in ((low, high), (high, low)):
        again = rethreshold(Report.from_dict(json.loads(source.to_json())),
                            kl_eps=target.settings["kl_eps"])
        assert _decided(again) == _decided(target)
        assert again.settings["kl_eps"] == target.settings["kl_eps"]
        assert check_report(again) == [] and again.warnings == []
        note = again.provenance["rethresholded"]
        assert note["from"] == {"kl_eps": source.settings["kl_eps"]}
        assert note["to"] == {"kl_eps": target.settings["kl_eps"]}
        assert [row["kl_collapse_rate"] for row in again.dimensions] == [None] * 3
        assert "kl_collapse_rate" in note["not_rederived"][0]


def test_active_threshold_and_what_needs_a_new_run(runs):
    report = runs[0.002]
    again = rethreshold(report, active_threshold=10.0)  # no Var_x[mu_d] reaches 10
    assert again.summary["active_units"] == 0
    assert again.summary["signal_counts"]["weak"] == 3
    # dimension 0: its MI interval (about [1.0, 1.3]) lies above kl_eps, evidence that
    # overrides the cut-off (verdict.py); dimension 2 (KL 0.0045) has no such evidence
    assert again.dimensions[0]["status"] == report.dimensions[0]["status"] == "used"
    assert again.dimensions[2]["status"] == "uninformative"
    assert check_report(again) == []
    assert report.settings["active_threshold"] == 0.01  # the input is left unchanged
    with pytest.raises(InvalidParameterError, match=r"\['alpha'\] cannot be changed without "
                                                    "a new run"):
        rethreshold(report, alpha=0.1)
    with pytest.raises(InvalidParameterError, match="kl_eps"):
        rethreshold(report, kl_eps=-1.0)


def test_the_render_command_rewrites_report_json_and_the_documents(runs, tmp_path):
    from collapse_diag.render import write_report

    write_report(runs[0.002], tmp_path, ("json",))
    result = CliRunner().invoke(main, ["render", os.fsdecode(tmp_path), "--kl-eps", "0.05",
                                       "--format", "md"])
    assert result.exit_code == 0, result.output
    assert f"verdict at kl_eps = 0.05: {runs[0.05].verdict}" in result.output
    written = json.loads((Path(tmp_path) / "report.json").read_text())
    assert written["settings"]["kl_eps"] == 0.05
    assert [r["status"] for r in written["dimensions"]] == [
        r["status"] for r in runs[0.05].dimensions]
    assert (Path(tmp_path) / "report.md").is_file()
    bad = CliRunner().invoke(main, ["render", os.fsdecode(tmp_path), "--kl-eps", "-1"])
    assert bad.exit_code == 2
