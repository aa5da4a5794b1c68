"""The KL-per-dimension plot (the kl diagnostic)."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from collapse_diag.render.plots_style import status_bars, styled, width
from collapse_diag.report.report import Report
from collapse_diag.report.schema import DIMENSION_KEY as DK
from collapse_diag.report.values import (
    dim_column,
    dim_labels,
    dim_statuses,
    setting,
)

__all__ = ["plot_kl"]


@styled
def plot_kl(report: Report) -> Figure | None:
    """Mean KL per dimension, sorted, coloured by status, with the ``kl_eps`` line."""
    kl = dim_column(report, DK.kl)
    keep = np.flatnonzero(np.isfinite(kl))
    if keep.size == 0:
        return None
    keep = keep[np.argsort(-kl[keep], kind="stable")]
    labels, statuses = dim_labels(report), dim_statuses(report)
    eps = float(setting(report, "kl_eps"))
    fig = Figure(figsize=(width(keep.size), 4.2), layout="constrained")
    ax = fig.subplots()
    status_bars(ax, [labels[i] for i in keep], kl[keep], [statuses[i] for i in keep],
                 annotate=True)
    positive = kl[keep][kl[keep] > 0]
    # limits first: an all-zero KL (a collapsed model) leaves the log axis no positive data
    # to autoscale from, which matplotlib warns about
    ax.set_ylim(min([eps, *positive]) / 4, max(kl[keep].max(), eps) * 4)
    ax.set_yscale("log")
    ax.axhline(eps, color="black", ls="--", lw=1, label=f"kl_eps = {eps:g} nats")
    ax.set(xlabel="latent dimension (sorted by KL)",
           ylabel="mean KL(q(z_d|x) || p(z_d))  [nats]", title="KL per dimension")
    ax.legend(title="status", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig
