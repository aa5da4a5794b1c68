"""What the decoder makes of z per time window (sequential latents): the diversity and the grid.

Reads ``summary.output_diversity_by_window`` and ``decoded_views.windows``
(collapse_diag/diagnostics/decoded_windows.py); both plots return ``None`` for vector
latents or without ``generate``, so other documents are unchanged.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure

from collapse_diag.render.plots_decoded import _grid, image_views
from collapse_diag.render.plots_style import styled
from collapse_diag.report.report import Report
from collapse_diag.report.schema import DIVERSITY_WINDOW_KEY as K
from collapse_diag.report.schema import SUMMARY_KEY as SK
from collapse_diag.report.values import setting

__all__ = ["plot_decoded_window_diversity", "plot_decoded_window_grid", "window_label"]

_COLOUR = "#332288"


def window_label(entry: dict[str, Any]) -> str:
    """``steps a–b`` (inclusive) of a window entry."""
    return f"steps {entry[K.start]}–{entry[K.stop] - 1}"


@styled
def plot_decoded_window_diversity(report: Report) -> Figure | None:
    """Output diversity per time window, with its interval, against the whole code's."""
    windows = report.summary.get(SK.output_diversity_by_window)
    if not windows or all(w.get(K.output_diversity) is None for w in windows):
        return None
    fig = Figure(figsize=(7.0, 3.4), layout="constrained")
    ax = fig.subplots()
    centres = np.array([(w[K.start] + w[K.stop] - 1) / 2 for w in windows], dtype=float)
    widths = np.array([w[K.stop] - w[K.start] for w in windows], dtype=float)
    values = np.array([np.nan if w.get(K.output_diversity) is None
                       else float(w[K.output_diversity]) for w in windows])
    ax.bar(centres, values, width=widths, color=_COLOUR, alpha=0.35, edgecolor="white")
    ax.plot(centres, values, "o", color=_COLOUR, ms=5)  # a window at 0 still shows
    for x, w, v in zip(centres, windows, values):
        ci = w.get(K.output_diversity_ci)
        if ci is not None and np.isfinite(v):
            ax.errorbar(x, v, yerr=[[max(v - ci[0], 0.0)], [max(ci[1] - v, 0.0)]],
                        color=_COLOUR, capsize=4, lw=1.5)
    whole = report.summary.get(SK.output_diversity)
    if whole is not None:
        ax.axhline(float(whole), color="black", ls="--", lw=1, label="whole code varied")
        ax.legend(fontsize=8)
    level = f"{100 * float(setting(report, 'confidence')):g}%"
    ax.set(xlabel="time step", ylabel="output diversity",
           title=f"Decoded diversity with z varied in one time window ({level} intervals)")
    ax.set_ylim(bottom=0)
    return fig


@styled
def plot_decoded_window_grid(report: Report) -> Figure | None:
    """Continuous outputs: per window, other inputs' codes put into the mean of q(z) there."""
    views = image_views(report)
    if views is None or not views.get("windows"):
        return None
    rows = [(window_label(w), w["decoded"]) for w in views["windows"]]
    inputs = views["windows"][0]["inputs"]
    return _grid(rows, views["shape"], [f"code of input {j}" for j in inputs])
