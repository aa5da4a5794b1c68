"""The identifiability plot: Fisher eigenvalues of z and likelihood flatness."""

from __future__ import annotations

import numpy as np
import seaborn as sns
from matplotlib.figure import Figure

from collapse_diag.render.colors import NEUTRAL, STATUS_COLORS
from collapse_diag.render.plots_style import side_by_side, styled
from collapse_diag.report.report import Report
from collapse_diag.report.schema import DISTRIBUTION_KEY as XK
from collapse_diag.report.schema import SUMMARY_KEY as SK
from collapse_diag.report.values import (
    finite,
    finite_values,
    setting,
)

__all__ = ["plot_identifiability"]


@styled
def plot_identifiability(report: Report) -> Figure | None:
    """Eigenvalues of the latent Fisher information with the rank cut-off; likelihood flatness."""
    eig = finite_values(report.summary.get(SK.fisher_eigenvalues))
    std = finite_values(report.distributions.get(XK.likelihood_std))
    if eig.size == 0 and std.size == 0:
        return None
    fig, axes = side_by_side(int(eig.size > 0) + int(std.size > 0), legend_width=1.0)
    if eig.size:
        ax = axes.pop(0)
        cutoff = finite(report.summary.get(SK.fisher_rank_cutoff))
        if cutoff is None:  # a report written before the cut-off was stored
            from collapse_diag.diagnostics.estimators.fisher_grades import fisher_cutoff

            cutoff = fisher_cutoff(eig.max(), float(setting(report, "fisher_rank_rtol")),
                                   float(setting(report, "fisher_rank_atol")))
        floor = min([cutoff, *eig[eig > 0]]) / 100
        rank = np.arange(1, eig.size + 1)
        above = eig >= cutoff
        ax.plot(rank, np.maximum(eig, floor), color=NEUTRAL, lw=0.8, zorder=1)
        for mask, status, label in ((above, "used", "identifiable"),
                                    (~above, "collapsed", "below the cut-off")):
            if mask.any():
                ax.scatter(rank[mask], np.maximum(eig[mask], floor), color=STATUS_COLORS[status],
                           s=40, zorder=2, label=f"{label} ({int(mask.sum())})")
        ax.axhline(cutoff, color="black", ls="--", lw=1, label=f"rank cut-off {cutoff:.2g}")
        ax.set(yscale="log", xlabel="eigenvalue rank", title="Fisher information of z",
               ylabel="eigenvalue  [nats² per unit z²]")
        ax.legend(fontsize=8)
    if std.size:
        ax = axes.pop(0)
        thr = float(setting(report, "flatness_threshold"))
        log = bool((std > 0).all())
        sns.histplot(x=std, log_scale=log, color=NEUTRAL, ax=ax)
        ax.axvline(thr, color="black", ls="--", lw=1, label=f"flatness_threshold = {thr:g}")
        flat = finite(report.summary.get(SK.flat_fraction))
        title = "Likelihood flatness" + (f": {flat:.0%} of inputs flat" if flat is not None else "")
        ax.set(xlabel="std of log p(x|z) over prior draws of z  [nats]", ylabel="inputs",
               title=title)
        ax.legend(fontsize=8)
    return fig
