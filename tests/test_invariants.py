"""Every report invariant (collapse_diag/report/invariants.py) holds on real reports and
fails on a report hand-edited to break it; a violation is shown in the written documents."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from matplotlib.figure import Figure

from collapse_diag.diagnostics.qualifications import is_qualification
from collapse_diag.render import write_report
from collapse_diag.render.plots import figure_marks
from collapse_diag.report.invariants import (
    REPORT_INVARIANTS,
    caption_marks_drawn,
    check_report,
    check_trajectory,
)
from collapse_diag.runs.trajectory import build_trajectory, row_from_report


def _names(report):
    return {v.invariant for v in check_report(report)}


def test_every_real_report_passes_every_invariant(analysed):
    for name, report in analysed.items():
        assert check_report(report) == [], name
        assert [w for w in report.warnings if not is_qualification(w)] == [], name


def _mi_above_kl(report):
    row = report.dimensions[0]
    row["mutual_information"] = row["kl"] + 1.0
    row["mutual_information_ci"] = [row["kl"] + 0.9, row["kl"] + 1.1]


def _summary_mi_above_kl(report):
    s = report.summary
    s["mutual_information"], s["mutual_information_ci"] = s["kl"] + 1, [s["kl"] + .9, s["kl"] + 1.1]


def _negative_mi_unflagged(report):
    report.dimensions[1]["mutual_information"] = -0.2
    report.dimensions[1]["mi_indistinguishable_from_zero"] = False


def _summary_negative_mi_unflagged(report):
    report.summary["mutual_information"], report.summary["mi_negative"] = -0.1, False
    report.summary["mutual_information_ci"] = None


def _rank_20_of_4(report):
    report.summary["identifiable_dims"] = report.latent_dim + 17


def _too_many_active(report):
    report.summary["active_units"] = report.latent_dim + 1


def _counts_off(report):
    report.summary["status_counts"]["used"] += 1


def _row_status_changed(report):
    report.dimensions[0]["status"] = "ignored"


def _healthy_with_ignored(report):
    _row_status_changed(report)
    report.summary["status_counts"] = {"used": 2, "ignored": 1}


def _collapsed_with_used(report):
    report.summary["verdict"] = "collapsed"


def _inference_cause_on_a_used_dimension(report):
    report.dimensions[0]["cause"] = "inference"


def _partial_with_every_dimension_used(report):
    report.summary["verdict"] = "partial"


def _codebook_collapse_unflagged(report):
    report.summary["verdict"] = "codebook collapse"  # with no codebook figure behind it


def _mi_above_its_ceiling(report):
    report.summary["discrete_mi"], report.summary["discrete_mi_ceiling"] = 5.0, 4.0


def _diversity_without_generate(report):
    report.summary["output_kind"] = "unavailable"
    report.summary["output_diversity"] = 0.5


def _token_share_above_decode_share(report):
    report.summary.update(output_kind="tokens", output_diversity=0.4, differ_fraction=0.2)


#: Invariant -> hand edits of the healthy report (3 used dimensions) that break it.
BREAKS = {
    "mi_within_kl": [_mi_above_kl, _summary_mi_above_kl],
    "negative_estimates_flagged": [_negative_mi_unflagged, _summary_negative_mi_unflagged],
    "ranks_within_dimensions": [_rank_20_of_4, _too_many_active],
    "status_counts_match_rows": [_counts_off, _row_status_changed],
    "verdict_matches_statuses": [_healthy_with_ignored, _collapsed_with_used],
    "causes_match_statuses": [_inference_cause_on_a_used_dimension,
                              _partial_with_every_dimension_used],
    "discrete_figures_agree": [_codebook_collapse_unflagged, _mi_above_its_ceiling],
    "decoded_figures_agree": [_diversity_without_generate, _token_share_above_decode_share],
}


def test_every_invariant_has_a_breaking_edit():
    assert set(BREAKS) == set(REPORT_INVARIANTS)


@pytest.mark.parametrize("invariant, edit", [(k, e) for k, es in BREAKS.items() for e in es])
def test_a_hand_edited_report_fails_its_invariant(analysed, invariant, edit):
    report = copy.deepcopy(analysed["healthy"])
    assert _names(report) == set()
    edit(report)
    assert invariant in _names(report)


def test_mi_above_kl_is_not_checked_against_a_learned_prior(analysed):
    """KL to a conditional prior p(z_t | z_<t, x) is not bounded below by I(x; z)."""
    report = copy.deepcopy(analysed["healthy"])
    _mi_above_kl(report)
    report.provenance["has_prior"] = True
    assert "mi_within_kl" not in _names(report)


def test_mi_above_kl_within_its_interval_holds(analysed):
    report = copy.deepcopy(analysed["healthy"])
    row = report.dimensions[0]
    row["mutual_information"], row["mutual_information_ci"] = row["kl"] + 0.01, \
        [row["kl"] - 0.05, row["kl"] + 0.07]
    assert "mi_within_kl" not in _names(report)


def test_fisher_rank_counts_against_the_coordinates_of_a_sequential_latent(analysed):
    seq = copy.deepcopy(analysed["sequential"])  # z [B, 16, 2]: 32 coordinates
    assert seq.summary["identifiable_dims"] > seq.latent_dim
    assert "ranks_within_dimensions" not in _names(seq)
    seq.summary["identifiable_dims"] = 33
    assert "ranks_within_dimensions" in _names(seq)


def test_a_violation_is_written_as_a_visible_warning(analysed, tmp_path):
    report = copy.deepcopy(analysed["healthy"])
    _rank_20_of_4(report)
    written = write_report(report, tmp_path, formats=("json", "md", "html"))
    md = written["md"].read_text()
    assert "## Consistency warnings" in md and "Fisher rank 20 is not within 0..3" in md
    assert "ranks_within_dimensions" in written["html"].read_text()
    assert "ranks_within_dimensions" in written["json"].read_text()


def test_a_clean_report_has_no_warning_section(analysed, tmp_path):
    md = write_report(analysed["partial"], tmp_path, formats=("md",))["md"].read_text()
    assert "Consistency warnings" not in md


def _figure(ls):
    fig = Figure()
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1])
    if ls:
        ax.axhline(0.5, ls=ls)
    return fig


def test_caption_marks_must_be_drawn():
    caption = "Bars under the dashed kl_eps line are collapsed."
    assert caption_marks_drawn(caption, figure_marks(_figure("--"))) == []
    assert caption_marks_drawn(caption, figure_marks(_figure(None))) != []
    assert caption_marks_drawn("along each dotted line", figure_marks(_figure(":"))) == []
    assert caption_marks_drawn("along each dotted line", figure_marks(_figure("--"))) != []


def test_every_drawn_plot_draws_the_marks_its_caption_names(analysed, tmp_path):
    for name in ("healthy", "collapsed", "partial", "sequential", "saturated"):
        report = copy.deepcopy(analysed[name])
        write_report(report, tmp_path / name, formats=("json", "md"))
        text = (tmp_path / name / "report.json").read_text()
        assert "caption_marks_drawn" not in text, name


# --- trajectories ---------------------------------------------------------------------------

def _row(step, kls, verdict):
    statuses = ["collapsed" if k < 0.01 else "used" for k in kls]
    report = {"summary": {"kl": float(np.sum(kls)), "verdict": verdict,
                          "status_counts": {s: statuses.count(s) for s in set(statuses)}},
              "dimensions": [{"index": d, "kl": k, "status": s}
                             for d, (k, s) in enumerate(zip(kls, statuses))]}
    return row_from_report(report, step)


def _trajectory():
    rows = [_row(0, [0.0, 0.5], "partial"), _row(100, [0.0, 0.0], "collapsed"),
            _row(200, [0.3, 0.5], "healthy"), _row(300, [0.0, 0.4], "partial")]
    return build_trajectory(rows, settings={"kl_eps": 0.01}, source="checkpoints")


def test_a_built_trajectory_passes():
    assert check_trajectory(_trajectory()) == []


def test_a_trajectory_with_a_wrong_verdict_step_fails():
    traj = _trajectory()
    traj["events"]["verdict_collapsed_step"] = 0
    assert {v.invariant for v in check_trajectory(traj)} == {
        "trajectory_verdict_events_match_rows"}


def test_a_trajectory_with_a_wrong_collapse_step_fails():
    traj = _trajectory()
    traj["events"]["dimension_collapse_steps"][0] = 0  # it revived at 200
    assert {v.invariant for v in check_trajectory(traj)} == {
        "trajectory_collapse_events_match_rows"}
    traj = _trajectory()
    traj["events"]["dimension_collapse_steps"][0] = None  # collapsed at the last step
    assert {v.invariant for v in check_trajectory(traj)} == {
        "trajectory_collapse_events_match_rows"}
