"""Plots for sequential latents: KL over (dimension x step), KL and swap effect by position.

Named by the kl diagnostic's spec (``PlotRef(..., sequential=True)``) and drawn
only for reports of sequential models (``summary.kl_by_step`` not null;
:func:`collapse_diag.render.plots.plots_for`), so vector-latent documents are
unchanged. Like every plot, a function ``(report) -> Figure | None`` on a bare
Figure (no pyplot).
"""

from __future__ import annotations

import numpy as np
import seaborn as sns
from matplotlib.figure import Figure

from collapse_diag.report.report import Report
from collapse_diag.report.schema import DIMENSION_KEY as DK
from collapse_diag.report.schema import SUMMARY_KEY as SK
from collapse_diag.report.schema import SWAP_WINDOW_KEY as W
from collapse_diag.report.values import dim_labels, setting

__all__ = ["kl_matrix", "plot_by_position", "plot_kl_heatmap"]

_KL, _SWAP, _FLAT = "#332288", "#D55E00", "#999999"


def kl_matrix(report: Report) -> np.ndarray | None:
    """Per-dimension ``kl_by_step`` as an array ``(D, T)`` (NaN for null), or ``None``."""
    rows = [row.get(DK.kl_by_step) for row in report.dimensions]
    if not rows or any(not isinstance(r, list) for r in rows):
        return None
    return np.array([[np.nan if v is None else float(v) for v in r] for r in rows])


def plot_kl_heatmap(report: Report) -> Figure | None:
    """Masked mean KL per (dimension, step), nats, on a colour scale from 0."""
    kl = kl_matrix(report)
    if kl is None:
        return None
    d, t = kl.shape
    with sns.axes_style("white"), sns.plotting_context("notebook", font_scale=0.85):
        fig = Figure(figsize=(min(14.0, 3.0 + 0.35 * t), min(9.0, 1.6 + 0.3 * d)),
                     layout="constrained")
        ax = fig.subplots()
        image = ax.imshow(np.ma.masked_invalid(kl), aspect="auto", cmap="viridis", vmin=0,
                          interpolation="nearest")
        fig.colorbar(image, ax=ax, label="mean KL [nats]")
        ax.set(xlabel="time step", ylabel="latent dimension",
               title="KL(q(z_t,d|x) || p(z_t,d|...)) per dimension and step")
        ax.set_xticks(range(0, t, max(1, t // 16)))
        rows = range(0, d, max(1, d // 24))  # named as in every other plot and table: z0, ...
        ax.set_yticks(rows, [dim_labels(report)[i] for i in rows])
    return fig


def plot_by_position(report: Report) -> Figure | None:
    """KL summed over dimensions per step (top) and the swap effect per time window (bottom)."""
    total = report.summary.get(SK.kl_by_step)
    if not isinstance(total, list):
        return None
    kl = np.array([np.nan if v is None else float(v) for v in total])
    steps = np.arange(len(kl))
    windows = report.summary.get(SK.swap_delta_by_window) or []
    alpha = float(setting(report, "alpha"))
    with sns.axes_style("whitegrid"), sns.plotting_context("notebook", font_scale=0.85):
        fig = Figure(figsize=(8.0, 5.2), layout="constrained")
        top, bottom = fig.subplots(2, 1, sharex=True)
        top.plot(steps, kl, marker="o", ms=4, color=_KL)
        top.axhline(float(setting(report, "kl_eps")), color="black", ls="--", lw=1,
                    label="kl_eps")
        top.set(ylabel="KL summed over dims [nats]", title="KL and swap effect by position")
        top.legend(fontsize=8)
        for w in windows:
            delta = w.get(W.swap_delta)
            if delta is None:
                continue
            p = w.get(W.p_value)
            used = p is not None and p < alpha and delta > 0
            bottom.bar((w[W.start] + w[W.stop] - 1) / 2, delta, width=w[W.stop] - w[W.start],
                       color=_SWAP if used else _FLAT, alpha=0.8, edgecolor="white")
        if not windows:
            bottom.text(0.5, 0.5, "swap test not run", ha="center", transform=bottom.transAxes)
        bottom.set(xlabel="time step", ylabel="swap delta [nats]")
        bottom.set_title(f"per time window (coloured: p < {alpha:g})", fontsize=9)
    return fig
