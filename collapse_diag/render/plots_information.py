"""The information split (the information diagnostic): mean KL = MI + marginal KL."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from collapse_diag.render.colors import MI_COLOR, MKL_COLOR
from collapse_diag.render.plots_style import status_bars, styled, width
from collapse_diag.report.report import Report
from collapse_diag.report.schema import DIMENSION_KEY as DK
from collapse_diag.report.schema import SUMMARY_KEY as SK
from collapse_diag.report.values import (
    dim_column,
    dim_labels,
    dim_statuses,
    finite,
    setting,
)

__all__ = ["plot_information"]


@styled
def plot_information(report: Report) -> Figure | None:
    """Mean KL split into mutual information and marginal KL, ceiling log N; MI per dimension."""
    summary = report.summary
    mi, mkl, kl = (finite(summary.get(k)) for k in (SK.mutual_information, SK.marginal_kl, SK.kl))
    if mi is None:
        return None
    mkl = mkl if mkl is not None else (kl - mi if kl is not None else None)
    ceiling = finite(summary.get(SK.mi_ceiling))
    per_dim = dim_column(report, DK.mutual_information)
    has_dims = bool(np.isfinite(per_dim).any())
    fig = Figure(figsize=(width(report.latent_dim), 5.6 if has_dims else 2.6),
                 layout="constrained")
    axes = fig.subplots(2, 1, height_ratios=[1, 2.4]) if has_dims else [fig.subplots()]
    ax = axes[0]
    handles = [ax.barh([0], [mi], color=MI_COLOR, hatch="//" if mi < 0 else None,
                       label=f"mutual information I(x; z) = {mi:.3g} nats")]
    if mkl is not None:
        handles.append(ax.barh([0], [mkl], left=[max(mi, 0.0)], color=MKL_COLOR,
                               label=f"marginal KL(q(z) || p(z)) = {mkl:.3g} nats"))
    shown = max(mi, 0.0) + max(mkl or 0.0, 0.0)
    if ceiling is not None and ceiling <= 20 * shown:
        handles.append(ax.axvline(ceiling, color="black", ls="--", lw=1.2,
                                  label=f"MI ceiling log N = {ceiling:.3g} nats"))
    elif ceiling is not None:
        ax.set_xlim(min(mi, 0.0) * 1.1, max(shown * 1.1, float(setting(report, "kl_eps"))))
        # named in the legend (a note over the bars would cover them)
        handles.append(Line2D([], [], ls="none",
                              label=f"MI ceiling log N = {ceiling:.3g} nats, off this scale →"))
    total = f"; together the mean KL = {kl:.3g} nats" if kl is not None else ""
    ax.set(yticks=[], xlabel=f"nats{total}", title="Information split")
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    if has_dims:
        keep = np.flatnonzero(np.isfinite(per_dim))
        status_bars(axes[1], [dim_labels(report)[i] for i in keep], per_dim[keep],
                     [dim_statuses(report)[i] for i in keep], float(setting(report, "kl_eps")),
                     annotate=True)
        axes[1].axhline(0, color="black", lw=0.8)
        axes[1].set(xlabel="latent dimension", ylabel="I(x; z_d)  [nats]")
        axes[1].legend(title="status", loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    return fig
