"""Sequential latents in the documents and through `collapse-diag analyze` (issue 12)."""

import json

import pytest
from click.testing import CliRunner

from collapse_diag import analyze, save_checkpoint
from collapse_diag.examples.sequence_vae import build_sequence_vae, sample_inputs
from collapse_diag.render.explain import explain
from collapse_diag.render.plots import PLOTS, SEQUENCE_PLOTS, plots_for
from collapse_diag.render.plots_sequence import kl_matrix
from collapse_diag.render.sequence_text import sequence_text, step_ranges
from collapse_diag_cli.main import main

FAST = dict(mi_samples=4, swap_bootstrap=50, prior_samples=4, fisher_samples=2, nll_samples=8)


@pytest.fixture
def first_half_report(analysed):
    """The bundled sequence VAE on 200 inputs (tests/real_reports.py ``sequential``)."""
    return analysed["sequential"]


def test_explanation_says_where_z_is_used(first_half_report):
    text = sequence_text(first_half_report)
    assert text.startswith("z carries information for the first 8 steps (steps 0–7) and "
                           "collapses after step 7")
    assert "ignores it from step 8 on" in text
    assert "Dimension 0 carries information at steps 0–7." in text
    assert text in explain(first_half_report)


def test_step_ranges_and_no_text_for_vector_reports(analysed):
    assert step_ranges([True, True, False, True, True]) == [(0, 1), (3, 4)]
    assert step_ranges([False, False]) == []
    vector = analysed["healthy"]
    assert vector.summary["kl_by_step"] is None
    assert sequence_text(vector) is None
    assert plots_for(vector) is PLOTS


def test_sequence_plots_drawn_for_sequential_reports_only(first_half_report, analysed):
    assert list(plots_for(first_half_report)) == [*PLOTS, *SEQUENCE_PLOTS]
    for spec in SEQUENCE_PLOTS.values():
        assert spec(first_half_report) is not None
    assert kl_matrix(first_half_report).shape == (2, 16)
    assert all(spec(analysed["healthy"]) is None for spec in SEQUENCE_PLOTS.values())


def test_analyze_cli_on_a_saved_sequential_checkpoint(tmp_path):
    model = build_sequence_vae()
    path = save_checkpoint(tmp_path / "seq.pt", model,
                           "collapse_diag.examples.sequence_vae:SequenceVAE",
                           {"weights": [2.0, 0.0], "steps": 16, "used_steps": 8},
                           data=sample_inputs(model, 200, seed=2, min_length=12))
    out = tmp_path / "rep"
    result = CliRunner().invoke(main, ["analyze", str(path), "--out", str(out), "--prior-samples",
                                       "4", "--per-dim-swap-examples", "20", "--format",
                                       "json,md"])
    assert result.exit_code == 0, result.output
    payload = json.loads((out / "report.json").read_text())
    assert payload["provenance"]["latent_steps"] == 16
    assert payload["summary"]["kl_by_step"][8:] == [0.0] * 8
    assert [w["swap_delta"] for w in payload["summary"]["swap_delta_by_window"]][2:] == [0, 0]
    assert [d["status"] for d in payload["dimensions"]] == ["used", "collapsed"]
    assert (out / "plots" / "kl_heatmap.png").stat().st_size > 0
    assert (out / "plots" / "sequence_position.png").stat().st_size > 0
    assert "collapses after step 7" in (out / "report.md").read_text()


def test_collapsed_checkpoint_fails_on_collapse(tmp_path):
    model = build_sequence_vae(weights=(0.0, 0.0))
    path = save_checkpoint(tmp_path / "seq0.pt", model,
                           "collapse_diag.examples.sequence_vae:SequenceVAE",
                           {"weights": [0.0, 0.0]}, data=sample_inputs(model, 120, seed=2))
    result = CliRunner().invoke(main, ["analyze", str(path), "--out", str(tmp_path / "r"),
                                       "--prior-samples", "4", "--format", "json",
                                       "--fail-on-collapse"])
    assert result.exit_code == 1, result.output
    assert "collapsed" in result.output


@pytest.mark.parametrize("name, verdict, statuses", [
    ("sequence_first_half.pt", "partial", ["used", "collapsed"]),
    ("sequence_collapsed.pt", "collapsed", ["collapsed", "collapsed"]),
])
def test_shipped_sequence_checkpoints(name, verdict, statuses):
    from pathlib import Path

    import torch

    import collapse_diag.examples as examples
    from collapse_diag.examples.sequence_vae import CHECKPOINTS
    from collapse_diag.io.checkpoint import load_checkpoint

    path = Path(examples.__file__).parent / "checkpoints" / name
    loaded = load_checkpoint(path)
    model = build_sequence_vae(**CHECKPOINTS[name])
    expected = sample_inputs(model, 400, seed=0, min_length=12)  # as write_checkpoints made it
    assert all(torch.equal(loaded.data[k], expected[k]) for k in expected)
    report = analyze(loaded.model, loaded.data, seed=0, **FAST)
    assert report.verdict == verdict
    assert [d["status"] for d in report.dimensions] == statuses


def test_save_encodings_is_refused_for_sequential_latents(tmp_path):
    from collapse_diag.exceptions import InvalidParameterError

    model = build_sequence_vae()
    with pytest.raises(InvalidParameterError, match="sequential latents"):
        analyze(model, sample_inputs(model, 20), save_encodings=tmp_path / "e.npz")
    assert not (tmp_path / "e.npz").exists()
