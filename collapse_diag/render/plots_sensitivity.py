"""The decoder-sensitivity plot (the sensitivity diagnostic): swap deltas."""

from __future__ import annotations

import numpy as np
import seaborn as sns
from matplotlib.figure import Figure

from collapse_diag.render.colors import MI_COLOR, NEUTRAL
from collapse_diag.render.plots_style import side_by_side, status_bars, styled
from collapse_diag.report.report import Report
from collapse_diag.report.schema import DIMENSION_KEY as DK
from collapse_diag.report.schema import DISTRIBUTION_KEY as XK
from collapse_diag.report.schema import SUMMARY_KEY as SK
from collapse_diag.report.values import (
    dim_column,
    dim_labels,
    dim_statuses,
    finite,
    finite_values,
    setting,
)

__all__ = ["plot_sensitivity"]


@styled
def plot_sensitivity(report: Report) -> Figure | None:
    """Per-input whole-vector swap delta (histogram) and per-dimension swap delta (bars)."""
    deltas = finite_values(report.distributions.get(XK.swap_delta))
    per_dim = dim_column(report, DK.swap_delta)
    keep = np.flatnonzero(np.isfinite(per_dim))
    if deltas.size == 0 and keep.size == 0:
        return None
    fig, axes = side_by_side(int(deltas.size > 0) + int(keep.size > 0), legend_width=1.5)
    if deltas.size:
        ax = axes.pop(0)
        sns.histplot(x=deltas, color=NEUTRAL, ax=ax)
        ci = [finite(v) for v in report.summary.get(SK.swap_ci) or []]
        if len(ci) == 2 and None not in ci:
            conf = float(setting(report, "confidence"))
            ax.axvspan(ci[0], ci[1], color=MI_COLOR, alpha=0.2, label=f"{conf:.0%} CI of the mean")
        ax.axvline(0, color="black", lw=1, label="0: decoder ignores z")
        mean = finite(report.summary.get(SK.swap_delta))
        mean = float(deltas.mean()) if mean is None else mean
        ax.axvline(mean, color=MI_COLOR, lw=1.5, label=f"mean {mean:.3g} nats")
        ax.set(xlabel="log p(x|own z) - log p(x|another input's z)  [nats]",
               ylabel="inputs", title="Whole-vector swap, per input")
        ax.legend(fontsize=8)
    if keep.size:
        ax = axes.pop(0)
        status_bars(ax, [dim_labels(report)[i] for i in keep], per_dim[keep],
                     [dim_statuses(report)[i] for i in keep], float(setting(report, "kl_eps")))
        bounds = _estimate_bounds(report)[keep]
        shown = np.isfinite(bounds).all(axis=1)
        if shown.any():
            pos, mean = np.flatnonzero(shown), per_dim[keep][shown]
            # never negative: a report whose interval excludes its mean (written before
            # swap_estimate_ci existed) draws a one-sided bar instead of failing
            ax.errorbar(pos, mean, yerr=[np.maximum(mean - bounds[shown, 0], 0.0),
                                         np.maximum(bounds[shown, 1] - mean, 0.0)],
                        fmt="none", ecolor="black", elinewidth=1, capsize=2)
            # status_bars fixed the y limits before the intervals were drawn: widen them so
            # that no interval runs off the axes
            low, high = ax.get_ylim()
            reach = [float(bounds[shown].min()), float(bounds[shown].max())]
            pad = 0.05 * (max(high, reach[1]) - min(low, reach[0]))
            ax.set_ylim(min(low, reach[0] - pad), max(high, reach[1] + pad))
        use = [d.get(DK.decoder_use) if isinstance(d, dict) else None for d in report.dimensions]
        for pos, i in enumerate(keep):
            if use[i] == "used":
                ax.annotate("*", (pos, per_dim[i]), ha="center", va="bottom", fontsize=12)
        ax.axhline(0, color="black", lw=0.8)
        alpha = float(setting(report, "alpha"))
        ax.set(xlabel=f"latent dimension (bars: intervals of the mean, simultaneous at "
                      f"{1 - alpha:.0%}; * used)",
               ylabel="swap delta of z_d alone  [nats]", title="Per-dimension swap")
        ax.legend(title="status", fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def _estimate_bounds(report: Report) -> np.ndarray:
    """``(D, 2)`` bounds of each swap delta's interval (NaN where absent or unbounded).

    ``swap_estimate_ci`` (the interval of the printed mean); reports written before it
    existed fall back to the decision interval ``swap_ci``.
    """
    rows = []
    for d in report.dimensions:
        d = d if isinstance(d, dict) else {}
        ci = d.get(DK.swap_estimate_ci, d.get(DK.swap_ci))
        ok = isinstance(ci, list) and len(ci) == 2
        rows.append([finite(ci[0]), finite(ci[1])] if ok else [None, None])
    return np.array(rows, dtype=float).reshape(-1, 2)
