"""Plots: one Figure per plot when its figures are there, None (and a note) when not."""

import matplotlib.pyplot as plt
import pytest
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from report_fixtures import failed_report, healthy_report, minimal_report, partial_report

from collapse_diag.diagnostics.registry import display_order
from collapse_diag.render.colors import STATUS_COLORS
from collapse_diag.render.plots import PLOTS, all_figures, figure_png, missing_note
from collapse_diag.render.plots_identifiability import plot_identifiability
from collapse_diag.render.plots_information import plot_information
from collapse_diag.render.plots_kl import plot_kl
from collapse_diag.render.plots_sensitivity import plot_sensitivity


@pytest.fixture(scope="module")
def healthy_figures():
    return all_figures(healthy_report())


def test_registry_order_and_captions():
    specs = [ref.name for spec in display_order() for ref in spec.plots if not ref.sequential]
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
        assert isinstance(fig, Figure), name
        assert fig.axes, name


def test_plots_carry_legends_and_labels(healthy_figures):
    for name in ("kl", "activity", "information", "sensitivity", "identifiability"):
        axes = [ax for ax in healthy_figures[name].axes if ax.get_xlabel()]
        assert axes, name
        assert all(ax.get_legend() is not None for ax in axes), name


def test_bars_use_the_status_colour():
    report = partial_report()
    ax = plot_kl(report).axes[0]
    colours = {to_hex(p.get_facecolor()) for p in ax.patches if p.get_height() > 0}
    used = {STATUS_COLORS[d["status"]].lower() for d in report.dimensions}
    assert colours == used


def test_missing_figures_give_none_and_a_note():
    report = failed_report()
    figures = all_figures(report)
    assert figures["information"] is None  # disabled
    assert figures["sensitivity"] is None and figures["identifiability"] is None  # failed
    assert all(figures[name] is not None for name in ("kl", "activity", "overview"))
    assert "failed" in missing_note(report, "sensitivity")
    assert "decoder returned NaN" in missing_note(report, "sensitivity")
    assert "not computed" in missing_note(report, "information")


def test_nothing_is_drawn_for_an_empty_report():
    assert all(fig is None for fig in all_figures(minimal_report()).values())


def test_a_panel_without_figures_is_left_out_not_drawn_empty():
    report = healthy_report()
    report.distributions = {}
    assert len(plot_sensitivity(report).axes) == 1  # per-dimension bars only
    assert len(plot_identifiability(report).axes) == 1  # Fisher eigenvalues only
    for dim in report.dimensions:
        dim["mutual_information"] = None
    assert len(plot_information(report).axes) == 1  # the split, no per-dimension panel


def test_nan_and_null_values_are_skipped():
    report = healthy_report()
    report.dimensions[0]["kl"] = float("nan")
    report.dimensions[1]["kl"] = None
    ax = plot_kl(report).axes[0]
    assert len([t for t in ax.get_xticklabels() if t.get_text()]) == report.latent_dim - 2


def test_no_pyplot_figures_are_left_open(healthy_figures):
    before = plt.get_fignums()
    all_figures(failed_report())
    assert plt.get_fignums() == before


def test_png_bytes_are_deterministic(healthy_figures):
    fig = healthy_figures["kl"]
    first = figure_png(fig, dpi=30)
    assert first.startswith(b"\x89PNG\r\n\x1a\n")
    assert figure_png(fig, dpi=30) == first
    assert b"Software" not in first
