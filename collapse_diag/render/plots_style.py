"""What the report's plots share: seaborn's style, figure widths, bars coloured by status.

Figures are built with the object-oriented API on a bare
:class:`matplotlib.figure.Figure` (no pyplot, no global figure registry, nothing
to close, safe on the Agg backend).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np
import seaborn as sns
from matplotlib.figure import Figure

from collapse_diag.render.colors import STATUS_COLORS
from collapse_diag.report.report import Report
from collapse_diag.report.values import STATUS_ORDER

__all__ = ["side_by_side", "status_bars", "styled", "width"]


def styled(func: Callable[[Report], Figure | None]) -> Callable[[Report], Figure | None]:
    """Build the figure inside seaborn's whitegrid style, without touching global state after."""

    @functools.wraps(func)
    def wrapper(report: Report) -> Figure | None:
        with sns.axes_style("whitegrid"), sns.plotting_context("notebook", font_scale=0.85):
            return func(report)

    return wrapper


def width(n: int) -> float:
    """Figure width in inches for ``n`` bars: 8 to 16."""
    return float(min(16.0, max(8.0, 3.0 + 0.3 * n)))


def status_bars(ax: Any, labels: list[str], values: np.ndarray, statuses: list[str],
                 min_top: float | None = None, annotate: bool = False) -> None:
    """Bars coloured by status, with a status legend and thinned tick labels.

    ``min_top``: the y axis reaches at least this high, so that negligible values
    (a few 1e-8 nats) look negligible instead of filling the axis. ``annotate``:
    write each value above its bar (up to 24 bars).
    """
    present = [s for s in STATUS_ORDER if s in statuses]
    sns.barplot(x=labels, y=values, hue=statuses, hue_order=present, order=labels,
                palette=STATUS_COLORS, saturation=1.0, dodge=False, errorbar=None, ax=ax,
                legend=True)
    n, step = len(labels), max(1, len(labels) // 32)
    ax.set_xticks(range(n)[::step], labels[::step], rotation=90 if n > 16 else 0)
    if min_top is not None:
        low, high = ax.get_ylim()
        ax.set_ylim(min(low, 0.0), max(high, min_top))
    if annotate and n <= 24:
        for pos, value in enumerate(values):
            ax.annotate(f"{value:.2g}", (pos, max(value, 0.0)), xytext=(0, 2), ha="center",
                        textcoords="offset points", va="bottom", fontsize=7)



def side_by_side(panels: int, legend_width: float) -> tuple[Figure, list[Any]]:
    """A figure of ``panels`` axes in a row (only the panels that have figures to draw)."""
    fig = Figure(figsize=(6.0 * panels + legend_width, 4.4), layout="constrained")
    return fig, list(np.atleast_1d(fig.subplots(1, panels)))

