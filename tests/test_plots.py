"""Plots: one Figure per plot when its figures are there, None (and a note) when not.

The reports are real ``analyze`` runs (tests/real_reports.py)."""

import matplotlib.pyplot as plt
import pytest
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from real_reports import FAILURE

from collapse_diag.diagnostics.registry import display_order
from collapse_diag.render.colors import STATUS_COLORS
from collapse_diag.render.plots import PLOTS, SECTION_PLOTS, all_figures, figure_png, missing_note
from collapse_diag.render.plots_kl import plot_kl


@pytest.fixture(scope="module")
def healthy_figures(analysed):
    return all_figures(analysed["healthy"])


def test_registry_order_and_captions():
    specs = [ref.name for spec in display_order("gaussian") for ref in spec.plots
             if not ref.sequential]
    assert list(PLOTS) == [*specs, "overview"]
    assert specs[:6] == ["kl", "activity", "information", "sensitivity", "identifiability",
                         "likelihood"]
    for spec in PLOTS.values():
        assert spec.title and len(spec.caption) > 40 and spec.sources


def test_one_distinct_colour_per_status():
    assert set(STATUS_COLORS) == {"used", "ignored", "undetermined", "collapsed",
                                 "uninformative", "unknown"}
    assert len(set(STATUS_COLORS.values())) == len(STATUS_COLORS)


def test_every_plot_present_when_its_figures_are(healthy_figures):
    assert list(healthy_figures) == list(PLOTS)
    for name, fig in healthy_figures.items():
        if name in SECTION_PLOTS:  # the decoded outputs need generate(z): its model has none
            assert fig is None, name     # (drawn: tests/test_decoded_outputs.py)
            continue
        assert isinstance(fig, Figure), name
        assert fig.axes, name


def test_plots_carry_legends_and_labels(healthy_figures):
    for name in ("kl", "activity", "information", "sensitivity", "identifiability"):
        axes = [ax for ax in healthy_figures[name].axes if ax.get_xlabel()]
        assert axes, name
        assert all(ax.get_legend() is not None for ax in axes), name


def test_bars_use_the_status_colour(analysed):
    report = analysed["partial"]  # used, undetermined, ignored, collapsed, uninformative, used
    ax = plot_kl(report).axes[0]
    colours = {to_hex(p.get_facecolor()) for p in ax.patches if p.get_height() > 0}
    shown = {STATUS_COLORS[d["status"]].lower() for d in report.dimensions if d["kl"] > 0}
    assert len(shown) == 4  # the collapsed z3 has KL 0 exactly: no bar
    assert colours == shown


def test_missing_figures_give_none_and_a_note(analysed):
    report = analysed["failed"]
    figures = all_figures(report)
    assert figures["information"] is None  # not run
    assert figures["sensitivity"] is None and figures["identifiability"] is None  # failed
    assert all(figures[name] is not None for name in ("kl", "activity", "overview"))
    assert "failed" in missing_note(report, "sensitivity")
    assert FAILURE in missing_note(report, "sensitivity")
    assert "not computed" in missing_note(report, "information")


def test_only_what_was_computed_is_drawn(analysed):
    figures = all_figures(analysed["kl_only"])
    assert {name for name, fig in figures.items() if fig is not None} == {"kl", "overview"}


def test_no_pyplot_figures_are_left_open(healthy_figures, analysed):
    before = plt.get_fignums()
    all_figures(analysed["failed"])
    assert plt.get_fignums() == before


def test_png_bytes_are_deterministic(healthy_figures):
    fig = healthy_figures["kl"]
    first = figure_png(fig, dpi=30)
    assert first.startswith(b"\x89PNG\r\n\x1a\n")
    assert figure_png(fig, dpi=30) == first
    assert b"Software" not in first
