"""The activity map (the activity diagnostic): Var_x[mu_d(x)] against E_x[sigma_d^2(x)]."""

from __future__ import annotations

from typing import Any

import numpy as np
import seaborn as sns
from matplotlib.figure import Figure

from collapse_diag.render.colors import NEUTRAL, STATUS_COLORS
from collapse_diag.render.plots_style import styled
from collapse_diag.report.report import Report
from collapse_diag.report.schema import DIMENSION_KEY as DK
from collapse_diag.report.values import (
    STATUS_ORDER,
    dim_column,
    dim_labels,
    dim_statuses,
    setting,
)

__all__ = ["plot_activity"]


def _label_points(ax: Any, x: np.ndarray, y: np.ndarray, names: list[str], xspan: float,
                  yspan: float) -> None:
    """Name the points of a log-log scatter; points closer than a few % of the axes share one."""
    groups: list[tuple[float, float, list[str]]] = []
    for lx, ly, name in sorted(zip(np.log10(x), np.log10(y), names, strict=True)):
        near = groups and abs(lx - groups[-1][0]) < 0.12 * xspan
        if near and abs(ly - groups[-1][1]) < 0.05 * yspan:
            groups[-1][2].append(name)
        else:
            groups.append((lx, ly, [name]))
    for lx, ly, group in groups:
        text = ", ".join(group) if len(group) <= 3 else f"{group[0]} … {group[-1]} ({len(group)})"
        ax.annotate(text, (10**lx, 10**ly), xytext=(5, 4), textcoords="offset points", fontsize=8)


@styled
def plot_activity(report: Report) -> Figure | None:
    """Var_x[mu_d(x)] against E_x[sigma_d^2(x)] per dimension, log-log, weak/noisy regions."""
    mv, pv = dim_column(report, DK.mu_variance), dim_column(report, DK.posterior_variance)
    keep = np.flatnonzero(np.isfinite(mv) & np.isfinite(pv))
    if keep.size == 0:
        return None
    thr = float(setting(report, "active_threshold"))
    positive = np.concatenate([mv[keep], pv[keep]])
    floor = min([thr, *positive[positive > 0]]) / 10
    x, y = np.maximum(mv[keep], floor), np.maximum(pv[keep], floor)
    xlo, xhi = min(x.min(), thr) / 4, max(x.max(), thr, 1.0) * 4
    ylo, yhi = min(y.min(), thr, 1.0) / 4, max(y.max(), 1.0) * 4
    lo, hi = min(xlo, ylo), max(xhi, yhi)
    fig = Figure(figsize=(8.5, 5.0), layout="constrained")
    ax = fig.subplots()
    ax.set(xscale="log", yscale="log", xlim=(xlo, xhi), ylim=(ylo, yhi))
    ax.axvspan(lo, thr, color="#EEEEEE", zorder=0)
    ax.fill_between([thr, hi], [thr, hi], [hi, hi], color="#FDF0E6", zorder=0)
    ax.plot([lo, hi], [lo, hi], ls=":", color=NEUTRAL, lw=1, label="Var mu = E sigma² (SNR 1)")
    ax.axvline(thr, color="black", ls="--", lw=1, label=f"active_threshold = {thr:g}")
    ax.axhline(1.0, color=NEUTRAL, ls="-.", lw=0.8, label="prior variance 1")
    statuses = [dim_statuses(report)[i] for i in keep]
    sns.scatterplot(x=x, y=y, hue=statuses, hue_order=[s for s in STATUS_ORDER if s in statuses],
                    palette=STATUS_COLORS, s=70, edgecolor="white", ax=ax, zorder=3)
    if keep.size <= 24:
        _label_points(ax, x, y, [dim_labels(report)[i] for i in keep],
                      np.log10(xhi / xlo), np.log10(yhi / ylo))
    # on the region's grey, so that the SNR-1 diagonal passes behind the words, not through
    ax.text((xlo * thr) ** 0.5, ylo * 1.6, "weak:\nmu(x) barely\nmoves", ha="center",
            va="bottom", color=NEUTRAL, fontsize=9, zorder=2.5,
            bbox={"facecolor": "#EEEEEE", "edgecolor": "none", "pad": 1.0})
    ax.text(thr * (xhi / thr) ** 0.2, yhi / 1.6, "noisy: sigma² swamps\nthe spread of mu(x)",
            ha="left", va="top", color="#A0522D", fontsize=9)
    ax.text(xhi / 1.6, ylo * 1.6, "informative", ha="right", va="bottom", color=NEUTRAL,
            fontsize=9)
    ax.set(xlabel="Var_x[mu_d(x)]  (spread of the mean across inputs)",
           ylabel="E_x[sigma_d²(x)]  (mean posterior variance)", title="Activity map")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    return fig
