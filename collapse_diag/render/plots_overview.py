"""The per-dimension overview heatmap: one row per dimension column a spec flags ``overview``.

The rows follow the diagnostics' display order
(:func:`collapse_diag.diagnostics.registry.display_order`), labelled by the
columns' headers; each row is divided by its largest magnitude.
"""

from __future__ import annotations

import numpy as np
import seaborn as sns
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from collapse_diag.diagnostics.registry import display_order
from collapse_diag.render.colors import STATUS_COLORS
from collapse_diag.render.plots_style import styled
from collapse_diag.report.report import Report
from collapse_diag.report.values import (
    STATUS_ORDER,
    dim_column,
    dim_labels,
    dim_statuses,
)

__all__ = ["overview_rows", "plot_overview"]


def overview_rows() -> list[tuple[str, str]]:
    """``(dimension key, label)`` of each overview row: the columns the specs flag ``overview``."""
    return [(column.key, column.header) for spec in display_order() for column in spec.columns
            if column.overview]


@styled
def plot_overview(report: Report) -> Figure | None:
    """Heatmap of every dimension's figures, each row divided by its largest magnitude, + status."""
    rows = [(label, dim_column(report, key)) for key, label in overview_rows()]
    rows = [(label, values) for label, values in rows if np.isfinite(values).any()]
    if not rows:
        return None
    raw = np.vstack([values for _, values in rows])
    scale = np.nanmax(np.abs(raw), axis=1, keepdims=True)
    norm = raw / np.where(scale > 0, scale, 1.0)
    n, labels, statuses = raw.shape[1], dim_labels(report), dim_statuses(report)
    fig = Figure(figsize=(min(16.0, max(7.0, 2.5 + 0.5 * n)), 1.4 + 0.45 * (len(rows) + 1)),
                 layout="constrained")
    grid = fig.add_gridspec(2, 2, height_ratios=[1, len(rows)], width_ratios=[40, 1])
    strip, ax, cax = (fig.add_subplot(grid[i, j]) for i, j in ((0, 0), (1, 0), (1, 1)))
    codes = np.array([[STATUS_ORDER.index(s) for s in statuses]])
    sns.heatmap(codes, cmap=ListedColormap([STATUS_COLORS[s] for s in STATUS_ORDER]),
                vmin=-0.5, vmax=len(STATUS_ORDER) - 0.5, cbar=False, linewidths=0.5,
                xticklabels=False, yticklabels=["status"], ax=strip)
    strip.tick_params(axis="y", rotation=0)
    present = [s for s in STATUS_ORDER if s in statuses]
    strip.legend(handles=[Patch(color=STATUS_COLORS[s], label=s) for s in present],
                 loc="lower left", bbox_to_anchor=(0, 1.05), ncol=len(present), fontsize=8,
                 frameon=False)
    annot = np.array([[f"{v:.2g}" if np.isfinite(v) else "" for v in row] for row in raw])
    ax.set_facecolor("#DDDDDD")
    sns.heatmap(norm, mask=~np.isfinite(norm), cmap="mako_r", vmin=min(0.0, np.nanmin(norm)),
                vmax=1.0, annot=annot if n <= 12 else False, fmt="", annot_kws={"fontsize": 7},
                linewidths=0.5, yticklabels=[label for label, _ in rows], ax=ax, cbar_ax=cax,
                cbar_kws={"label": "value / row max |value|"},
                xticklabels=labels if n <= 48 else max(1, n // 32))
    ax.tick_params(axis="y", rotation=0)
    ax.set_xlabel("latent dimension (grey: not computed)")
    return fig
