"""Plots of discrete latents (the discrete diagnostic): codebook usage, usage per position."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from collapse_diag.render.plots_style import status_bars, styled, width
from collapse_diag.report.report import Report
from collapse_diag.report.schema import DIMENSION_KEY as DK
from collapse_diag.report.schema import SUMMARY_KEY as SK
from collapse_diag.report.values import dim_column, dim_labels, dim_statuses

__all__ = ["plot_codebook_usage", "plot_position_usage"]

#: Most codes drawn as bars (the most used); the rest are summed in the title.
MAX_BARS = 256


@styled
def plot_codebook_usage(report: Report) -> Figure | None:
    """Bar chart of the codebook usage counts, sorted by frequency (used codes only)."""
    counts = report.summary.get(SK.codebook_counts)
    if not isinstance(counts, list) or not counts:
        return None
    counts = np.asarray(counts, dtype=np.float64)
    order = np.argsort(-counts, kind="stable")
    used = order[counts[order] > 0][:MAX_BARS]
    fig = Figure(figsize=(width(len(used)), 4.2), layout="constrained")
    ax = fig.subplots()
    ax.bar(np.arange(len(used)), counts[used] / counts.sum(), color="#4c72b0")
    if len(used) <= 40:
        ax.set_xticks(np.arange(len(used)), [str(int(k)) for k in used], rotation=90)
    perplexity = report.summary.get(SK.codebook_perplexity)
    ax.set(xlabel="codebook entry (most used first)", ylabel="share of all code positions",
           title=f"{int((counts > 0).sum())} of {len(counts)} codes used, perplexity "
                 f"{float(perplexity or 0):.3g}")
    return fig


@styled
def plot_position_usage(report: Report) -> Figure | None:
    """Usage perplexity exp(H) per position / variable, coloured by status."""
    values = dim_column(report, DK.usage_perplexity)
    keep = np.flatnonzero(np.isfinite(values))
    if keep.size == 0:
        return None
    labels, statuses = dim_labels(report), dim_statuses(report)
    fig = Figure(figsize=(width(keep.size), 4.2), layout="constrained")
    ax = fig.subplots()
    status_bars(ax, [labels[i] for i in keep], values[keep], [statuses[i] for i in keep])
    ax.set(xlabel="position / variable", ylabel="usage perplexity exp(H)",
           title="Usage perplexity per position")
    ax.legend(title="status", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig
