"""Issue 22's contradictions, each reproduced on a real report and checked gone on the page.

The models: tests/real_reports.py (the sequential one is the bundled sequence VAE, z [B, 16,
2]), and the text-like NLL curve of the shipped text_healthy checkpoint (14.1 -> 12.96 -> 12.21
nats at K = 1, 10, 100) written into a copy of the healthy report.
"""

from __future__ import annotations

import copy

from collapse_diag.render.document import build_document
from collapse_diag.render.likelihood_table import likelihood_table
from collapse_diag.render.tables import INDISTINGUISHABLE, dimension_table, summary_table
from collapse_diag.report.invariants import check_report, nll_still_falling
from collapse_diag.runs.trajectory import (
    build_trajectory,
    row_from_report,
    verdict_collapsed_phrase,
)


def _cells(table):
    return {row[0]: row[1:] for row in table.rows}


def test_fisher_rank_of_a_sequential_model_counts_its_coordinates(analysed):
    seq = analysed["sequential"]
    assert seq.summary["identifiable_dims"] > seq.latent_dim  # the "20 of 4" of the issue
    (value,) = _cells(summary_table(seq))["identifiable directions (Fisher rank)"]
    rank = seq.summary["identifiable_dims"]
    assert value == f"{rank} of 32 coordinates (16 steps x 2 dimensions)"
    (vector,) = _cells(summary_table(analysed["healthy"]))["identifiable directions (Fisher rank)"]
    assert vector == "3 of 3"


def test_a_negative_per_dimension_mi_is_shown_as_indistinguishable_from_zero(analysed):
    report = copy.deepcopy(analysed["collapsed"])
    report.dimensions[0]["mutual_information"] = -2.6e-5  # as on the shipped text_collapsed
    report.dimensions[0]["mi_indistinguishable_from_zero"] = True
    table = dimension_table(report)
    column = table.headers.index("MI (nats)")
    assert table.rows[0][column] == INDISTINGUISHABLE
    assert not any(cell.startswith("-") for row in table.rows for cell in row[column:column + 1])
    assert check_report(report) == []


def _still_falling(report):
    # A report written before K was decided by the curve: no nll_converged.
    for key in ("nll_converged", "nll_change", "nll_change_se"):
        report.summary.pop(key, None)
    report.summary["nll_convergence"] = {"samples": [1, 10, 100],
                                         "nll": [14.128, 12.956, 12.207],
                                         "nll_se": [0.215, 0.190, 0.167]}
    return report


def test_a_still_falling_nll_curve_is_said_to_be_still_falling(analysed):
    report = _still_falling(copy.deepcopy(analysed["healthy"]))
    assert nll_still_falling(report)
    cells = _cells(likelihood_table(report))
    assert "still falling" in cells["NLL convergence"][0]
    flat = copy.deepcopy(analysed["collapsed"])  # exact posterior: the bound is flat in K
    assert flat.summary["nll_converged"] is True and not nll_still_falling(flat)
    assert cells_of(flat)["NLL convergence"][0].startswith("converged")
    # The doubling rule's own decision is what the pages say, whatever the curve looks like.
    budget_stopped = copy.deepcopy(flat)
    budget_stopped.summary.update(nll_converged=False, nll_change=0.4, nll_change_se=0.05)
    assert nll_still_falling(budget_stopped)
    assert cells_of(budget_stopped)["NLL convergence"][0].startswith("not converged")


def cells_of(report):
    return _cells(likelihood_table(report))


def test_the_minibatch_mi_is_not_called_biased_low_and_sits_beside_the_whole_set_mi(analysed):
    cells = _cells(likelihood_table(analysed["collapsed"]))
    labels = list(cells)
    mb = next(label for label in labels if label.startswith("MI, minibatch"))
    assert "high near 0" in mb and "biased low)" not in mb
    assert labels.index("MI, whole-set estimate (the report's figure)") == labels.index(mb) - 1


def test_the_information_caption_names_no_undrawn_mark(analysed):
    document = build_document(analysed["collapsed"], drawn=())
    (figure,) = [f for s in document.sections for f in s.figures if f.name == "information"]
    assert "dashed" not in figure.caption


def _row(step, kls, verdict):
    statuses = ["collapsed" if k < 0.01 else "used" for k in kls]
    return row_from_report({"summary": {"kl": sum(kls), "verdict": verdict,
                                        "status_counts": {s: statuses.count(s)
                                                          for s in set(statuses)}},
                            "dimensions": [{"index": d, "kl": k, "status": s}
                                           for d, (k, s) in enumerate(zip(kls, statuses))]},
                           step)


def test_trajectory_wording_holds_at_every_step_it_covers():
    """A fresh encoder collapsed at step 0 that ends healthy: never "collapsed from step 0"."""
    ends_healthy = build_trajectory(
        [_row(0, [0.0, 0.0], "collapsed"), _row(100, [0.5, 0.4], "healthy"),
         _row(200, [0.6, 0.5], "healthy")], settings={"kl_eps": 0.01}, source="checkpoints")
    phrase = verdict_collapsed_phrase(ends_healthy)
    assert phrase == "verdict first collapsed at initialisation (step 0), not at every later step"
    text = " ".join(ends_healthy["explanation"])
    assert "at initialisation (step 0); it changed later" in text
    assert "collapsed from" not in text
    stays = build_trajectory(
        [_row(0, [0.5, 0.5], "healthy"), _row(100, [0.0, 0.0], "collapsed"),
         _row(200, [0.0, 0.0], "collapsed")], settings={"kl_eps": 0.01}, source="checkpoints")
    assert verdict_collapsed_phrase(stays) == "verdict collapsed from step 100 on"
    assert stays["warnings"] == [] and ends_healthy["warnings"] == []


def test_a_probe_that_reads_the_factor_from_mu_but_not_from_z_says_weak_signal(analysed):
    """The collapsed demo's case: mu(x) moves with the factor (accuracy 1.0 from mu) while a
    sampled z does not carry it; the page names the weak-signal case, not "z does not encode"."""
    from collapse_diag.render.explain import explain

    report = copy.deepcopy(analysed["collapsed"])
    probe = report.summary["probes"]["sign"]
    probe["accuracy_mu"] = 1.0
    text = " ".join(explain(report))
    assert "from mu(x) at 1" in text and "posterior noise swamps" in text
    assert "neither z nor mu(x) encodes it" not in text


def test_a_cheap_preset_trajectory_says_what_the_preset_does_not_see(tmp_path):
    from collapse_diag.render.trajectory import write_trajectory

    traj = build_trajectory([_row(0, [0.5, 0.5], "partial"), _row(100, [0.5, 0.6], "partial")],
                            settings={"kl_eps": 0.01}, source="monitor", preset="cheap")
    md = write_trajectory(traj, tmp_path, formats=("md",))["md"].read_text()
    assert "These verdicts come from the cheap preset: no per-dimension Fisher" in md
    assert "may read partial where a full analysis of the same weights reads healthy" in md
    full = build_trajectory([_row(0, [0.5, 0.5], "healthy")], settings={"kl_eps": 0.01},
                            source="monitor", preset="full")
    md = write_trajectory(full, tmp_path / "full", formats=("md",))["md"].read_text()
    assert "These verdicts come from" not in md and "Preset: full" in md


def test_a_learned_prior_report_says_mi_may_exceed_kl(analysed):
    """The VRNN case of the issue (MI 0.768 above KL 0.628 on one dimension): with a learned,
    possibly conditional, prior the page says why that is no contradiction, naming the
    dimension; a fixed-prior report says nothing of the kind."""
    from collapse_diag.render.explain import information_text

    report = copy.deepcopy(analysed["healthy"])
    report.provenance["has_prior"] = True
    report.dimensions[1]["mutual_information"], report.dimensions[1]["kl"] = 0.768, 0.628
    text = information_text(report)
    assert "may exceed its KL without contradiction (here z1)" in text
    assert check_report(report) == []
    assert "learned prior" not in information_text(analysed["healthy"])


def test_a_collapsed_verdict_without_a_collapsed_dimension_is_explained():
    """"No dimension collapsed at any analysed step" next to a collapsed verdict: the page
    says where the verdict comes from instead of leaving the two sentences to contradict."""
    traj = build_trajectory([_row(0, [0.5, 0.5], "collapsed"), _row(100, [0.6, 0.5], "healthy")],
                            settings={"kl_eps": 0.01}, source="checkpoints")
    text = " ".join(traj["explanation"])
    assert "No dimension collapsed at any analysed step." in text
    assert "the collapsed verdict comes from the other evidence" in text
