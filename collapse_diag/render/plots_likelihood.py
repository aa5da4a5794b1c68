"""The plot of the importance-weighted NLL bound against K (one analysed model).

Named by the likelihood diagnostic's spec as plot ``"likelihood"``. Like every
plot, a function ``(report) -> Figure | None`` on a bare Figure (no pyplot).
"""

from __future__ import annotations

import numpy as np
import seaborn as sns
from matplotlib.figure import Figure

from collapse_diag.report.report import Report
from collapse_diag.report.schema import NLL_CONVERGENCE_KEY as C
from collapse_diag.report.schema import SUMMARY_KEY as SK
from collapse_diag.report.values import finite

__all__ = ["plot_likelihood"]

_LINE, _ELBO = "#332288", "#555555"


def plot_likelihood(report: Report) -> Figure | None:
    """NLL bound at K' = 1, 10, 100, ..., K with its standard error; -ELBO for reference."""
    conv = report.summary.get(SK.nll_convergence)
    if not isinstance(conv, dict) or not conv.get(C.samples):
        return None
    k = np.asarray(conv[C.samples], dtype=float)
    nll = np.array([finite(v) if finite(v) is not None else np.nan for v in conv[C.nll]])
    se = np.array([finite(v) or 0.0 for v in conv.get(C.nll_se) or [None] * len(k)])
    with sns.axes_style("whitegrid"), sns.plotting_context("notebook", font_scale=0.85):
        fig = Figure(figsize=(7.5, 4.2), layout="constrained")
        ax = fig.subplots()
        ax.errorbar(k, nll, yerr=se, marker="o", ms=5, capsize=3, color=_LINE,
                    label="IW bound on NLL ± standard error")
        neg_elbo = finite(report.summary.get(SK.neg_elbo))
        if neg_elbo is not None:
            ax.axhline(neg_elbo, color=_ELBO, ls="--", lw=1, label=f"-ELBO = {neg_elbo:.4g}")
        ax.set(xscale="log" if k.max() > 1 else "linear",
               xlabel="K, codes drawn from q(z|x) per input",
               ylabel="nats per input", title="NLL bound against K")
        # the K drawn, as plain numbers (a log axis over 1 to 8 would print 2x10^0, ...)
        ax.set_xticks(k, [f"{v:,.0f}" for v in k])
        ax.minorticks_off()
        # beside the axes: inside, it covers the error bars of the largest K
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig
