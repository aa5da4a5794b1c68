"""Vector-quantised latents: codebook usage, dead codes, exact MI, swaps and the verdict."""

from __future__ import annotations

import math
import shutil
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from discrete_models import ConstantCodes, IdentityCodes, TinyVQVAE, mixture_data, train_vq

import collapse_diag
from collapse_diag import save_checkpoint
from collapse_diag.diagnostics.codebook import CODEBOOK_COLLAPSE_SHARE, codebook_figures
from collapse_diag.report.invariants import check_report
from collapse_diag_cli.main import main

TESTS = Path(__file__).resolve().parent
CODES = 64


def _entropy(counter: Counter) -> float:
    total = sum(counter.values())
    return -sum(c / total * math.log(c / total) for c in counter.values())


def _trained(reset: bool) -> tuple[TinyVQVAE, torch.Tensor]:
    """A bad codebook init (every code far from the encoder's outputs, crowded together)."""
    x = mixture_data(256)
    model = TinyVQVAE(positions=2, codes=CODES)
    with torch.no_grad():
        model.codebook.mul_(0.01).add_(3.0)
    return train_vq(model, x, steps=200, reset=reset), x


@pytest.fixture(scope="module")
def vq_reports():
    out = {}
    for reset in (False, True):
        model, x = _trained(reset)
        out[reset] = (model, x, collapse_diag.analyze(model, x, seed=0))
    return out


def test_a_bad_init_collapses_the_codebook_and_a_reset_does_not(vq_reports):
    _, _, bad = vq_reports[False]
    _, _, reset = vq_reports[True]
    assert bad.summary["verdict"] == "codebook collapse", bad.summary["verdict_reason"]
    assert bad.summary["codebook_collapse"] is True
    assert bad.summary["codebook_perplexity"] < CODEBOOK_COLLAPSE_SHARE * CODES
    assert reset.summary["verdict"] != "codebook collapse"
    assert reset.summary["codebook_used"] >= 0.9 * CODES
    assert reset.summary["codebook_perplexity"] > 0.5 * CODES
    for report in (bad, reset):
        assert report.errors == {} and report.warnings == [] and check_report(report) == []
        assert report.provenance["latent_kind"] == "codes"
        assert "kl" not in report.summary and "mutual_information" not in report.summary
    assert "Codebook collapse" in bad.summary["verdict_reason"]


def test_usage_perplexity_and_mi_match_a_brute_force_count(vq_reports):
    model, x, report = vq_reports[False]
    codes = model.encode_codes(x).reshape(len(x), -1)
    flat = Counter(codes.reshape(-1).tolist())
    # sums of a few hundred logs: agreement to 1e-12 nats
    assert report.summary["codebook_entropy"] == pytest.approx(_entropy(flat), abs=1e-12)
    assert report.summary["codebook_perplexity"] == pytest.approx(math.exp(_entropy(flat)),
                                                                  rel=1e-12)
    assert report.summary["codebook_counts"] == torch.bincount(
        codes.reshape(-1), minlength=CODES).tolist()
    assert report.summary["codebook_used"] == len(flat)
    assert report.summary["codebook_dead"] == CODES - len(flat)
    maps = Counter(tuple(row) for row in codes.tolist())
    assert report.summary["discrete_mi"] == pytest.approx(_entropy(maps), abs=1e-12)
    assert report.summary["discrete_mi_ceiling"] == pytest.approx(
        min(2 * math.log(CODES), math.log(len(x))))
    for pos, row in enumerate(report.dimensions):
        column = Counter(codes[:, pos].tolist())
        assert row["discrete_mi"] == pytest.approx(_entropy(column), abs=1e-12)
        assert row["codes_used"] == len(column)


def test_dead_code_confidence_is_the_smallest_sufficient_sample():
    alpha, k, positions = 0.05, 64, 3
    figures = codebook_figures(np.zeros((10, positions), dtype=np.int64), k, alpha)
    draws = figures.inputs_for_dead * positions
    assert (1 - 1 / k) ** draws <= alpha  # a 1/K code shows up with probability >= 1 - alpha
    assert (1 - 1 / k) ** (draws - positions) > alpha  # one input fewer would not do
    n = 10 * positions  # never seen in n draws: usage below the bound at 1 - alpha
    assert (1 - figures.dead_usage_bound) ** n == pytest.approx(alpha, rel=1e-9)
    assert figures.collapse is True and figures.used == 1 and figures.map_entropy == 0.0


def test_statuses_follow_the_decoder_position_by_position():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 8, (120, 3), generator=g)
    report = collapse_diag.analyze(IdentityCodes((1.0, 0.0, 1.0)), x, seed=0)
    assert [d["status"] for d in report.dimensions] == ["used", "ignored", "used"]
    assert report.summary["verdict"] == "partial" and report.warnings == []
    collapsed = collapse_diag.analyze(ConstantCodes((1.0, 1.0)), x[:, :2], seed=0)
    assert collapsed.summary["verdict"] == "collapsed"
    assert {d["status"] for d in collapsed.dimensions} == {"collapsed"}
    assert collapsed.summary["discrete_mi"] == 0.0


def test_a_vq_checkpoint_on_the_command_line_writes_the_codebook_plot(tmp_path, monkeypatch):
    shutil.copy(TESTS / "discrete_models.py", tmp_path / "kinds.py")
    shutil.copy(TESTS / "toy_models.py", tmp_path / "toy_models.py")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "kinds", raising=False)
    x = torch.randint(0, 8, (80, 2), generator=torch.Generator().manual_seed(1))
    path = save_checkpoint(tmp_path / "vq.pt", IdentityCodes(), "kinds:IdentityCodes", {},
                           data=x)
    result = CliRunner().invoke(main, ["analyze", str(path), "--out", str(tmp_path / "r"),
                                       "--format", "md"])
    sys.modules.pop("kinds", None)
    assert result.exit_code == 0, result.output
    assert "perplexity" in result.output and "verdict partial" in result.output
    text = (tmp_path / "r" / "report.md").read_text()
    assert "Codebook usage" in text and "KL per dimension" not in text
    assert (tmp_path / "r" / "plots" / "codebook_usage.png").is_file()
    assert not (tmp_path / "r" / "plots" / "kl.png").exists()


def test_compare_and_track_read_the_codebook_headlines(vq_reports):
    from toy_models import ToyVAE

    from collapse_diag.exceptions import DataError
    from collapse_diag.runs.comparison import DISCRETE_COLUMNS, compare
    from collapse_diag.runs.trajectory import build_trajectory, row_from_report

    bad, reset = vq_reports[False][2], vq_reports[True][2]
    comparison = compare([bad, reset], names=["bad", "reset"])
    assert comparison.kind == "codes" and comparison.columns == DISCRETE_COLUMNS
    assert comparison.best["codebook_perplexity"] == ["reset"]
    assert comparison.notes == ("No identifiability across models: it matches Gaussian "
                                "encodings, and these models have codes latents.",)
    assert [r["codebook_used"] for r in comparison.rows] == [bad.summary["codebook_used"],
                                                             reset.summary["codebook_used"]]
    gaussian = collapse_diag.analyze(ToyVAE(), ToyVAE().sample(60), seed=0,
                                     diagnostics=["kl", "activity"])
    with pytest.raises(DataError, match="one latent kind"):
        compare([bad, gaussian], names=["vq", "vae"])
    rows = [row_from_report(r.to_dict(), step) for step, r in enumerate((bad, reset))]
    trajectory = build_trajectory(rows, settings={}, source="checkpoints")
    assert [row["summary"]["codebook_perplexity"] for row in trajectory["rows"]] == [
        bad.summary["codebook_perplexity"], reset.summary["codebook_perplexity"]]
    # K travels with the rows (null for Gaussian) and is the perplexity curve's reference line
    assert [row["codebook_size"] for row in trajectory["rows"]] == [CODES, CODES]
    assert row_from_report(gaussian.to_dict(), 0)["codebook_size"] is None
    from collapse_diag.render.trajectory_plots import plot_curves

    fig = plot_curves(trajectory)
    lines = [(ax.get_ylabel(), line.get_ydata()[0]) for ax in fig.axes for line in ax.lines
             if line.get_linestyle() == ":"]
    assert len(lines) == 1 and lines[0][1] == CODES and "perplexity" in lines[0][0]


def test_a_selection_naming_kl_runs_the_discrete_diagnostic_in_its_place():
    x = torch.randint(0, 8, (60, 2), generator=torch.Generator().manual_seed(3))
    report = collapse_diag.analyze(IdentityCodes(), x, seed=0,
                                   diagnostics=["kl", "activity", "information", "sensitivity",
                                                "verdict"])  # the cheap preset's
    assert report.errors == {} and report.summary["verdict"] == "partial"
    assert set(report.timings) == {"discrete"}


def test_the_discrete_invariant_catches_contradicting_figures(vq_reports):
    import copy

    from collapse_diag.report.invariants import discrete_figures_agree

    report = copy.deepcopy(vq_reports[False][2])
    assert discrete_figures_agree(report) == []
    report.summary["codebook_perplexity"] = report.summary["codebook_used"] + 1.0
    report.summary["codebook_collapse"] = False
    report.summary["discrete_mi"] = report.summary["discrete_mi_ceiling"] + 1.0
    assert len(discrete_figures_agree(report)) == 3
