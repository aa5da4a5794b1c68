"""`collapse-diag demo` on the shipped checkpoints: the verdicts the issue promises."""

import json

import pytest

from collapse_diag import Report
from collapse_diag.demo import comparison_table
from collapse_diag.examples import SHIPPED

PROBE_GAIN = 0.2  # healthy: some factor beats its majority baseline by at least this
PROBE_MARGIN = 0.05  # collapsed: no factor beats its baseline by this much


def _report(out, name):
    return Report.from_json(out / name / "report.json")


def test_demo_writes_a_report_per_model_and_a_table(demo_dir):
    out, output = demo_dir
    for name in SHIPPED:
        assert (out / name / "report.json").is_file()
        assert (out / name / "report.md").is_file()
        assert name in output
    assert "verdict" in output and "best probe" in output


def test_shipped_collapsed_model_is_collapsed(demo_dir):
    report = _report(demo_dir[0], "text_collapsed")
    assert report.summary["verdict"] == "collapsed"
    assert not report.summary["swap_significant"]
    for factor, probe in report.summary["probes"].items():
        assert probe["accuracy"] < probe["baseline"] + PROBE_MARGIN, factor


@pytest.mark.parametrize("name", ["text_healthy", "digits"])
def test_shipped_healthy_models_are_not_collapsed(demo_dir, name):
    report = _report(demo_dir[0], name)
    assert report.summary["verdict"] != "collapsed"
    assert report.summary["swap_significant"]
    gains = [p["accuracy"] - p["baseline"] for p in report.summary["probes"].values()]
    assert max(gains) >= PROBE_GAIN
    assert report.summary["verdict"] == "healthy"
    assert report.summary["status_counts"]["used"] == report.latent_dim
    # clear cases stop early: round 1 of the per-dimension swap decides every dimension
    assert report.summary["per_dim_swap_rounds"] == 1
    assert report.summary["per_dim_swap_examples"] == 128


def test_demo_reports_are_deterministic(demo_dir, tmp_path):
    # The demo's own call for one model (collapse_diag/demo.py: analyze with the checkpoint's
    # data, labels and the seed, then write_report), run again: the same report.json.
    from collapse_diag import analyze, load_checkpoint, write_report

    out, name = demo_dir[0], "digits"
    loaded = load_checkpoint(SHIPPED[name])
    report = analyze(loaded.model, loaded.data, labels=loaded.labels, seed=0,
                     checkpoint={"path": str(SHIPPED[name]), "sha256": loaded.sha256})
    write_report(report, tmp_path / name, ("json",))

    def stable(path):
        payload = json.loads(path.read_text())
        payload.pop("timings")
        payload["provenance"].pop("created")
        return payload

    assert stable(tmp_path / name / "report.json") == stable(out / name / "report.json")


def test_comparison_table_handles_missing_figures(analysed):
    """A real run without a verdict (diagnostics=["kl"]): dashes, and the KL it has."""
    from collapse_diag.report.schema import STATUSES

    kl_only, healthy = analysed["kl_only"], analysed["healthy"]
    lines = comparison_table({"m": kl_only, "h": healthy}).splitlines()
    assert lines[0].split()[:3] == ["model", "verdict", STATUSES[0]]
    cells = lines[1].split()
    assert cells[:2 + len(STATUSES)] == ["m"] + ["-"] * (1 + len(STATUSES))
    assert f"{kl_only.summary['kl']:.3f}" in cells
    row = lines[2].split()
    assert row[:3] == ["h", "healthy", "3"]  # three used dimensions
    probe = healthy.summary["probes"]["sign"]
    assert lines[2].endswith(f"sign {probe['accuracy']:.2f}/{probe['baseline']:.2f}")
