"""Seaborn plots of a :class:`~collapse_diag.report.Report`, one function per plot.

Every plot function takes a Report and returns a :class:`matplotlib.figure.Figure`,
or ``None`` when the figures it needs are missing (a diagnostic failed or was
disabled): a plot is left out, never drawn empty. Figures are built with the
object-oriented API on a bare :class:`~matplotlib.figure.Figure` (no pyplot, no
global figure registry, nothing to close, safe on the Agg backend). Each status
has one colour in every plot (:data:`STATUS_COLORS`).

The null-safe accessors that read numbers out of a Report live in
:mod:`collapse_diag.report_values` (re-exported here); the writers share them.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import seaborn as sns
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from collapse_diag.plots_likelihood import plot_likelihood as _plot_likelihood
from collapse_diag.report import Report
from collapse_diag.report_values import (
    STATUS_ORDER,
    dim_column,
    dim_labels,
    dim_statuses,
    finite,
    finite_values,
    setting,
    status_counts,
)

__all__ = [
    "PLOTS",
    "STATUS_COLORS",
    "STATUS_ORDER",
    "PlotSpec",
    "all_figures",
    "dim_column",
    "dim_labels",
    "dim_statuses",
    "figure_png",
    "finite",
    "missing_note",
    "plot_activity",
    "plot_identifiability",
    "plot_information",
    "plot_kl",
    "plot_overview",
    "plots_for",
    "plot_sensitivity",
    "setting",
    "status_counts",
]

#: One colour per status, the same in every plot and table (Okabe-Ito, colour-blind safe).
STATUS_COLORS = {
    "used": "#009E73",
    "undetermined": "#CC79A7",
    "ignored": "#0072B2",
    "uninformative": "#E69F00",
    "collapsed": "#D55E00",
    "unknown": "#999999",
}
_MI_COLOR, _MKL_COLOR, _NEUTRAL = "#332288", "#DDCC77", "#555555"
def _styled(func: Callable[[Report], Figure | None]) -> Callable[[Report], Figure | None]:
    """Build the figure inside seaborn's whitegrid style, without touching global state after."""

    @functools.wraps(func)
    def wrapper(report: Report) -> Figure | None:
        with sns.axes_style("whitegrid"), sns.plotting_context("notebook", font_scale=0.85):
            return func(report)

    return wrapper


def _width(n: int) -> float:
    return float(min(16.0, max(8.0, 3.0 + 0.3 * n)))


def _status_bars(ax: Any, labels: list[str], values: np.ndarray, statuses: list[str],
                 min_top: float | None = None, annotate: bool = False) -> None:
    """Bars coloured by status, with a status legend and thinned tick labels.

    ``min_top``: the y axis reaches at least this high, so that negligible values
    (a few 1e-8 nats) look negligible instead of filling the axis. ``annotate``:
    write each value above its bar (up to 24 bars).
    """
    present = [s for s in STATUS_ORDER if s in statuses]
    sns.barplot(x=labels, y=values, hue=statuses, hue_order=present, order=labels,
                palette=STATUS_COLORS, saturation=1.0, dodge=False, errorbar=None, ax=ax,
                legend=True)
    n, step = len(labels), max(1, len(labels) // 32)
    ax.set_xticks(range(n)[::step], labels[::step], rotation=90 if n > 16 else 0)
    if min_top is not None:
        low, high = ax.get_ylim()
        ax.set_ylim(min(low, 0.0), max(high, min_top))
    if annotate and n <= 24:
        for pos, value in enumerate(values):
            ax.annotate(f"{value:.2g}", (pos, max(value, 0.0)), xytext=(0, 2), ha="center",
                        textcoords="offset points", va="bottom", fontsize=7)


@_styled
def plot_kl(report: Report) -> Figure | None:
    """Mean KL per dimension, sorted, coloured by status, with the ``kl_eps`` line."""
    kl = dim_column(report, "kl")
    keep = np.flatnonzero(np.isfinite(kl))
    if keep.size == 0:
        return None
    keep = keep[np.argsort(-kl[keep], kind="stable")]
    labels, statuses = dim_labels(report), dim_statuses(report)
    eps = float(setting(report, "kl_eps"))
    fig = Figure(figsize=(_width(keep.size), 4.2), layout="constrained")
    ax = fig.subplots()
    _status_bars(ax, [labels[i] for i in keep], kl[keep], [statuses[i] for i in keep],
                 annotate=True)
    positive = kl[keep][kl[keep] > 0]
    ax.set_yscale("log")
    ax.set_ylim(min([eps, *positive]) / 4, max(kl[keep].max(), eps) * 4)
    ax.axhline(eps, color="black", ls="--", lw=1, label=f"kl_eps = {eps:g} nats")
    ax.set(xlabel="latent dimension (sorted by KL)",
           ylabel="mean KL(q(z_d|x) || p(z_d))  [nats]", title="KL per dimension")
    ax.legend(title="status", loc="upper right")
    return fig


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


@_styled
def plot_activity(report: Report) -> Figure | None:
    """Var_x[mu_d(x)] against E_x[sigma_d^2(x)] per dimension, log-log, weak/noisy regions."""
    mv, pv = dim_column(report, "mu_variance"), dim_column(report, "posterior_variance")
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
    ax.plot([lo, hi], [lo, hi], ls=":", color=_NEUTRAL, lw=1, label="Var mu = E sigma² (SNR 1)")
    ax.axvline(thr, color="black", ls="--", lw=1, label=f"active_threshold = {thr:g}")
    ax.axhline(1.0, color=_NEUTRAL, ls="-.", lw=0.8, label="prior variance 1")
    statuses = [dim_statuses(report)[i] for i in keep]
    sns.scatterplot(x=x, y=y, hue=statuses, hue_order=[s for s in STATUS_ORDER if s in statuses],
                    palette=STATUS_COLORS, s=70, edgecolor="white", ax=ax, zorder=3)
    if keep.size <= 24:
        _label_points(ax, x, y, [dim_labels(report)[i] for i in keep],
                      np.log10(xhi / xlo), np.log10(yhi / ylo))
    ax.text((xlo * thr) ** 0.5, ylo * 1.6, "weak:\nmu(x) barely\nmoves", ha="center",
            va="bottom", color=_NEUTRAL, fontsize=9)
    ax.text(thr * (xhi / thr) ** 0.2, yhi / 1.6, "noisy: sigma² swamps\nthe spread of mu(x)",
            ha="left", va="top", color="#A0522D", fontsize=9)
    ax.text(xhi / 1.6, ylo * 1.6, "informative", ha="right", va="bottom", color=_NEUTRAL,
            fontsize=9)
    ax.set(xlabel="Var_x[mu_d(x)]  (spread of the mean across inputs)",
           ylabel="E_x[sigma_d²(x)]  (mean posterior variance)", title="Activity map")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    return fig


@_styled
def plot_information(report: Report) -> Figure | None:
    """Mean KL split into mutual information and marginal KL, ceiling log N; MI per dimension."""
    summary = report.summary
    mi, mkl, kl = (finite(summary.get(k)) for k in ("mutual_information", "marginal_kl", "kl"))
    if mi is None:
        return None
    mkl = mkl if mkl is not None else (kl - mi if kl is not None else None)
    ceiling = finite(summary.get("mi_ceiling"))
    per_dim = dim_column(report, "mutual_information")
    has_dims = bool(np.isfinite(per_dim).any())
    fig = Figure(figsize=(_width(report.latent_dim), 5.6 if has_dims else 2.6),
                 layout="constrained")
    axes = fig.subplots(2, 1, height_ratios=[1, 2.4]) if has_dims else [fig.subplots()]
    ax = axes[0]
    handles = [ax.barh([0], [mi], color=_MI_COLOR, hatch="//" if mi < 0 else None,
                       label=f"mutual information I(x; z) = {mi:.3g} nats")]
    if mkl is not None:
        handles.append(ax.barh([0], [mkl], left=[max(mi, 0.0)], color=_MKL_COLOR,
                               label=f"marginal KL(q(z) || p(z)) = {mkl:.3g} nats"))
    shown = max(mi, 0.0) + max(mkl or 0.0, 0.0)
    if ceiling is not None and ceiling <= 20 * shown:
        handles.append(ax.axvline(ceiling, color="black", ls="--", lw=1.2,
                                  label=f"MI ceiling log N = {ceiling:.3g} nats"))
    elif ceiling is not None:
        ax.set_xlim(min(mi, 0.0) * 1.1, max(shown * 1.1, float(setting(report, "kl_eps"))))
        ax.text(0.99, 0.5, f"MI ceiling log N = {ceiling:.3g} nats, off this scale →",
                transform=ax.transAxes, ha="right", va="center", fontsize=8)
    total = f"; together the mean KL = {kl:.3g} nats" if kl is not None else ""
    ax.set(yticks=[], xlabel=f"nats{total}", title="Information split")
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    if has_dims:
        keep = np.flatnonzero(np.isfinite(per_dim))
        _status_bars(axes[1], [dim_labels(report)[i] for i in keep], per_dim[keep],
                     [dim_statuses(report)[i] for i in keep], float(setting(report, "kl_eps")),
                     annotate=True)
        axes[1].axhline(0, color="black", lw=0.8)
        axes[1].set(xlabel="latent dimension", ylabel="I(x; z_d)  [nats]")
        axes[1].legend(title="status", loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    return fig


def _side_by_side(panels: int, legend_width: float) -> tuple[Figure, list[Any]]:
    """A figure of ``panels`` axes in a row (only the panels that have figures to draw)."""
    fig = Figure(figsize=(6.0 * panels + legend_width, 4.4), layout="constrained")
    return fig, list(np.atleast_1d(fig.subplots(1, panels)))


@_styled
def plot_sensitivity(report: Report) -> Figure | None:
    """Per-input whole-vector swap delta (histogram) and per-dimension swap delta (bars)."""
    deltas = finite_values(report.distributions.get("swap_delta"))
    per_dim = dim_column(report, "swap_delta")
    keep = np.flatnonzero(np.isfinite(per_dim))
    if deltas.size == 0 and keep.size == 0:
        return None
    fig, axes = _side_by_side(int(deltas.size > 0) + int(keep.size > 0), legend_width=1.5)
    if deltas.size:
        ax = axes.pop(0)
        sns.histplot(x=deltas, color=_NEUTRAL, ax=ax)
        ci = [finite(v) for v in report.summary.get("swap_ci") or []]
        if len(ci) == 2 and None not in ci:
            conf = float(setting(report, "confidence"))
            ax.axvspan(ci[0], ci[1], color=_MI_COLOR, alpha=0.2, label=f"{conf:.0%} CI of the mean")
        ax.axvline(0, color="black", lw=1, label="0: decoder ignores z")
        mean = finite(report.summary.get("swap_delta"))
        mean = float(deltas.mean()) if mean is None else mean
        ax.axvline(mean, color=_MI_COLOR, lw=1.5, label=f"mean {mean:.3g} nats")
        ax.set(xlabel="log p(x|own z) - log p(x|another input's z)  [nats]",
               ylabel="inputs", title="Whole-vector swap, per input")
        ax.legend(fontsize=8)
    if keep.size:
        ax = axes.pop(0)
        _status_bars(ax, [dim_labels(report)[i] for i in keep], per_dim[keep],
                     [dim_statuses(report)[i] for i in keep], float(setting(report, "kl_eps")))
        ci = [d.get("swap_ci") if isinstance(d, dict) else None for d in report.dimensions]
        bounds = np.array([[finite(c[0]), finite(c[1])] if isinstance(c, list) and len(c) == 2
                           else [None, None] for c in ci], dtype=float)[keep]
        shown = np.isfinite(bounds).all(axis=1)
        if shown.any():
            pos = np.flatnonzero(shown)
            ax.errorbar(pos, per_dim[keep][shown],
                        yerr=[per_dim[keep][shown] - bounds[shown, 0],
                              bounds[shown, 1] - per_dim[keep][shown]],
                        fmt="none", ecolor="black", elinewidth=1, capsize=2)
        use = [d.get("decoder_use") if isinstance(d, dict) else None for d in report.dimensions]
        for pos, i in enumerate(keep):
            if use[i] == "used":
                ax.annotate("*", (pos, per_dim[i]), ha="center", va="bottom", fontsize=12)
        ax.axhline(0, color="black", lw=0.8)
        alpha = float(setting(report, "alpha"))
        ax.set(xlabel=f"latent dimension (bars: intervals simultaneous at {1 - alpha:.0%}; "
                      "* used)",
               ylabel="swap delta of z_d alone  [nats]", title="Per-dimension swap")
        ax.legend(title="status", fontsize=8)
    return fig


@_styled
def plot_identifiability(report: Report) -> Figure | None:
    """Eigenvalues of the latent Fisher information with the rank cut-off; likelihood flatness."""
    eig = finite_values(report.summary.get("fisher_eigenvalues"))
    std = finite_values(report.distributions.get("likelihood_std"))
    if eig.size == 0 and std.size == 0:
        return None
    fig, axes = _side_by_side(int(eig.size > 0) + int(std.size > 0), legend_width=1.0)
    if eig.size:
        ax = axes.pop(0)
        cutoff = finite(report.summary.get("fisher_rank_cutoff"))
        if cutoff is None:  # a report written before the cut-off was stored
            from collapse_diag.diagnostics.fisher_grades import fisher_cutoff

            cutoff = fisher_cutoff(eig.max(), float(setting(report, "fisher_rank_rtol")),
                                   float(setting(report, "fisher_rank_atol")))
        floor = min([cutoff, *eig[eig > 0]]) / 100
        rank = np.arange(1, eig.size + 1)
        above = eig >= cutoff
        ax.plot(rank, np.maximum(eig, floor), color=_NEUTRAL, lw=0.8, zorder=1)
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
        sns.histplot(x=std, log_scale=log, color=_NEUTRAL, ax=ax)
        ax.axvline(thr, color="black", ls="--", lw=1, label=f"flatness_threshold = {thr:g}")
        flat = finite(report.summary.get("flat_fraction"))
        title = "Likelihood flatness" + (f": {flat:.0%} of inputs flat" if flat is not None else "")
        ax.set(xlabel="std of log p(x|z) over prior draws of z  [nats]", ylabel="inputs",
               title=title)
        ax.legend(fontsize=8)
    return fig


_OVERVIEW_ROWS = (("kl", "KL"), ("kl_collapse_rate", "collapse rate"),
                  ("mu_variance", "Var mu(x)"), ("posterior_variance", "E sigma²(x)"),
                  ("mutual_information", "MI"), ("swap_delta", "swap delta"),
                  ("fisher", "Fisher"))


@_styled
def plot_overview(report: Report) -> Figure | None:
    """Heatmap of every dimension's figures, each row divided by its largest magnitude, + status."""
    rows = [(label, dim_column(report, key)) for key, label in _OVERVIEW_ROWS]
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


@dataclass(frozen=True)
class PlotSpec:
    """One registered plot: what it is called, what it shows and what it needs.

    Attributes:
        title: Heading of the plot in the documents.
        caption: One or two sentences saying how to read it.
        sources: Diagnostics whose figures it draws (named in the note when it is left out).
        function: ``(report) -> Figure | None``.
    """

    title: str
    caption: str
    sources: tuple[str, ...]
    function: Callable[[Report], Figure | None]

    def __call__(self, report: Report) -> Figure | None:
        """Draw the plot for ``report`` (``None`` when its figures are missing)."""
        return self.function(report)


#: Every plot, in display order.
PLOTS: dict[str, PlotSpec] = {
    "kl": PlotSpec(
        "KL per dimension",
        "Mean KL(q(z_d|x) || p(z_d)) of each dimension, largest first, coloured by status. "
        "Bars under the dashed kl_eps line are collapsed: their posterior is the prior.",
        ("kl",), plot_kl),
    "activity": PlotSpec(
        "Activity map",
        "One point per dimension: how far mu(x) moves across inputs (x) against the mean "
        "posterior variance (y). Left of the dashed line the signal is too weak (mu(x) barely "
        "moves); above the dotted diagonal it is too noisy (sigma² exceeds the spread of mu).",
        ("activity",), plot_activity),
    "information": PlotSpec(
        "Information split",
        "The mean KL is the mutual information I(x; z) (what z tells about x) plus the marginal "
        "KL(q(z) || p(z)) (how far the average code is from the prior). No MI estimate can "
        "exceed the dashed ceiling log N.",
        ("information",), plot_information),
    "sensitivity": PlotSpec(
        "Decoder sensitivity",
        "How much worse each input is explained when given another input's z (left; mass at 0 "
        "means the decoder ignores z), and the same for one dimension at a time (right).",
        ("sensitivity",), plot_sensitivity),
    "identifiability": PlotSpec(
        "Identifiability",
        "Eigenvalues of the Fisher information of z (left): directions below the cut-off do "
        "not change p(x|z). Right: per input, how much log p(x|z) varies over prior draws; "
        "left of the dashed line the likelihood is flat in z.",
        ("identifiability",), plot_identifiability),
    "likelihood": PlotSpec(
        "NLL bound against K",
        "The importance-weighted bound on the NLL with K' = 1, 10, 100, ... of the K codes "
        "drawn per input, with its standard error over inputs; the dashed line is -ELBO. "
        "A curve still falling at the right needs a larger nll_samples.",
        ("likelihood",), _plot_likelihood),
    "overview": PlotSpec(
        "Per-dimension overview",
        "Every dimension's figures, each row divided by its largest magnitude (numbers: the "
        "raw values), with the status strip on top.",
        ("kl", "activity", "information", "sensitivity", "identifiability", "verdict"),
        plot_overview),
}


def all_figures(report: Report) -> dict[str, Figure | None]:
    """Every registered plot of ``report``, in display order (``None``: left out)."""
    return {name: spec(report) for name, spec in PLOTS.items()}


def plots_for(report: Report) -> dict[str, PlotSpec]:
    """The plots of ``report``: :data:`PLOTS`, then those of sequential latents.

    For sequential reports :data:`collapse_diag.plots_sequence.SEQUENCE_PLOTS` follow.
    """
    from collapse_diag.plots_sequence import SEQUENCE_PLOTS, is_sequential

    return {**PLOTS, **SEQUENCE_PLOTS} if is_sequential(report) else PLOTS


def missing_note(report: Report, name: str) -> str:
    """One sentence saying why plot ``name`` was left out of ``report``'s documents."""
    from collapse_diag.plots_sequence import SEQUENCE_PLOTS

    spec = PLOTS.get(name) or SEQUENCE_PLOTS[name]
    failed = [s for s in spec.sources if s in report.errors]
    if failed:
        why = "; ".join(f"the {s} diagnostic failed: {str(report.errors[s]).rstrip('.')}"
                        for s in failed)
        return f"Not drawn: its figures are missing ({why})."
    return ("Not drawn: its figures were not computed (the "
            f"{' / '.join(spec.sources)} diagnostic was disabled or did not run).")


def figure_png(fig: Figure, dpi: int = 110) -> bytes:
    """Render ``fig`` to PNG bytes (no software tag, so the bytes depend only on the figure)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    return buffer.getvalue()
