"""What people see: every plot draws without a matplotlib warning, inside its figure, with
its legends and notes off the data.

Found by screenshotting every kind of document in headless Chromium (the trajectory's
curves title ran off the figure's right edge, an all-zero KL warned about its log axis,
interval bars ran off the per-dimension swap plot). The reports are the real ``analyze``
runs of tests/real_reports.py; the trajectories are built by hand (tests/test_trajectory.py).
"""

import copy
import warnings

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from collapse_diag.diagnostics.qualifications import FEW_INPUTS
from collapse_diag.render.document import build_document
from collapse_diag.render.plots import all_figures
from collapse_diag.render.plots_information import plot_information
from collapse_diag.render.plots_likelihood import plot_likelihood
from collapse_diag.render.plots_sensitivity import _estimate_bounds, plot_sensitivity
from collapse_diag.render.trajectory import build_trajectory_document
from collapse_diag.render.trajectory_plots import TRAJECTORY_PLOTS
from collapse_diag.report.schema import DIMENSION_KEY as DK
from collapse_diag.runs.trajectory import build_trajectory, row_from_report

REPORTS = ("healthy", "collapsed", "partial", "sequential", "failed", "kl_only", "lean",
           "saturated")
#: One pixel of slack: extents are rounded to whole pixels by the renderer.
SLACK_PX = 1.0
#: Extents scale with the resolution and the layout is in inches: a low one draws faster.
DRAW_DPI = 40


def _outside(fig) -> list[str]:
    """The axes, legends and figure texts whose drawn extent leaves the figure."""
    fig.set_dpi(DRAW_DPI)
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.get_layout_engine().execute(fig)  # the layout of a draw, without painting pixels
    box, out = fig.bbox, []
    for artist in [*fig.axes, *fig.legends, *fig.texts]:
        ext = artist.get_tightbbox(renderer)
        if ext is not None and (ext.x0 < box.x0 - SLACK_PX or ext.x1 > box.x1 + SLACK_PX
                                or ext.y0 < box.y0 - SLACK_PX or ext.y1 > box.y1 + SLACK_PX):
            name = artist.get_title() if hasattr(artist, "get_title") else type(artist).__name__
            out.append(f"{name!r}: {[round(v) for v in ext.extents]} beyond "
                       f"{[round(v) for v in box.extents]}")
    return out


def _row(step, kls, verdict, status):
    report = {"summary": {"kl": sum(kls), "reconstruction": -10.0, "verdict": verdict,
                          "active_units": sum(k > 0.01 for k in kls), "mutual_information": 0.1,
                          "status_counts": {status: len(kls)}},
              "dimensions": [{"index": d, "kl": k, "status": status}
                             for d, k in enumerate(kls)]}
    return row_from_report(report, step)


def _trajectories() -> dict[str, dict]:
    """A run collapsed at initialisation that recovers (the longest curves title: it says
    'first collapsed ..., not at every later step'), and a 2-step, 2-dimension run (the
    smallest heatmaps)."""
    recovers = [_row(0, [0.0, 0.0, 0.0], "collapsed", "collapsed"),
                _row(1000, [0.5, 0.4, 0.0], "partial", "used"),
                _row(20000, [1.0, 0.8, 0.6], "healthy", "used")]
    small = [_row(100, [0.5, 0.0], "partial", "used"),
             _row(200, [0.0, 0.0], "collapsed", "collapsed")]
    return {name: build_trajectory(rows, settings={"kl_eps": 0.01}, source="checkpoints")
            for name, rows in (("recovers", recovers), ("small", small))}


@pytest.fixture(scope="module")
def figures(analysed):
    """Every plot of every real report and of both trajectories, drawn with warnings as errors
    (a warning while drawing fails the fixture, naming the plot)."""
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name in REPORTS:
            for plot, fig in all_figures(analysed[name]).items():
                out[f"{name}/{plot}"] = fig
        for name, trajectory in _trajectories().items():
            for plot, (draw, _, _) in TRAJECTORY_PLOTS.items():
                out[f"trajectory {name}/{plot}"] = draw(trajectory)
    return {k: v for k, v in out.items() if v is not None}


def test_the_figures_include_the_cases_that_went_wrong(figures, analysed):
    assert np.allclose([d[DK.kl] for d in analysed["collapsed"].dimensions], 0.0, atol=1e-3)
    assert {"collapsed/kl", "trajectory recovers/curves", "trajectory small/kl_heatmap",
            "healthy/sensitivity"} <= set(figures)
    title = figures["trajectory recovers/curves"].axes[0].get_title()
    assert "not at every later step" in title.replace("\n", " ")


def test_every_plot_stays_inside_its_figure(figures):
    outside = {name: bad for name, fig in figures.items() if (bad := _outside(fig))}
    assert outside == {}


def test_swap_intervals_lie_within_the_axes(analysed):
    for name in ("healthy", "partial"):
        report = analysed[name]
        ax = plot_sensitivity(report).axes[-1]
        bounds = _estimate_bounds(report)
        low, high = ax.get_ylim()
        shown = bounds[np.isfinite(bounds).all(axis=1)]
        assert shown.size and low <= shown.min() and shown.max() <= high, name


@pytest.mark.parametrize("plot", [plot_information, plot_likelihood, plot_sensitivity])
def test_no_legend_or_note_covers_the_data(plot, analysed):
    """Legends sit right of their axes (inside, they covered bars and error bars) and no
    free-standing note is written over the bars (the information split's off-scale ceiling
    is named in its legend)."""
    for name in ("healthy", "collapsed"):
        fig = plot(analysed[name])
        renderer = FigureCanvasAgg(fig).get_renderer()
        fig.draw(renderer)
        if plot is plot_information:  # the top panel: no note over the stacked bars
            assert not fig.axes[0].texts, name
        # the sensitivity's histogram keeps its small legend inside (nothing there to cover)
        for ax in fig.axes[-1:] if plot is plot_sensitivity else fig.axes:
            legend = ax.get_legend()
            if legend is not None and ax.get_xlabel():
                assert legend.get_window_extent(renderer).x0 >= ax.bbox.x1 - SLACK_PX, name


def test_the_steps_table_names_its_columns_and_drops_empty_ones():
    trajectory = build_trajectory(_trajectories()["recovers"]["rows"],
                                  settings={"kl_eps": 0.01}, source="checkpoints",
                                  preset="cheap")
    document = build_trajectory_document(trajectory, drawn=())
    steps = next(s for s in document.sections if s.anchor == "steps").tables[0]
    assert steps.headers == ["step", "checkpoint", "verdict", "KL", "MI", "AU", "-ELBO",
                             "statuses"]  # no swap delta, perplexity, ...: no step has one
    settings = next(s for s in document.sections if s.anchor == "settings").paragraphs[0]
    assert settings.startswith("Preset: cheap (no per-dimension Fisher information")


def test_the_few_inputs_section_reads_as_prose(analysed):
    report = copy.deepcopy(analysed["healthy"])
    report.warnings = [f"{FEW_INPUTS}: the verdict rests on 30 distinct inputs (30 analysed)"]
    section = build_document(report, drawn=()).sections[0]
    assert section.anchor == "few-distinct-inputs"
    assert section.paragraphs[1] == "The verdict rests on 30 distinct inputs (30 analysed)"
