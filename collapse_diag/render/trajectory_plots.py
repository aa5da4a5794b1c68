"""Plots of a trajectory (the dict form of trajectory.json), one function per plot.

Each takes the trajectory and returns a :class:`matplotlib.figure.Figure`, or
``None`` when the figures it needs are missing. Built on bare Figures (no
pyplot), inside seaborn's whitegrid style, as in :mod:`collapse_diag.render.plots_style`.
"""

from __future__ import annotations

import functools
import textwrap
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import seaborn as sns
from matplotlib.colors import ListedColormap, LogNorm
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from collapse_diag.render.colors import STATUS_COLORS
from collapse_diag.report.schema import DIMENSION_KEY as D
from collapse_diag.report.schema import SUMMARY_KEY as S
from collapse_diag.report.schema import SWAP_WINDOW_KEY as W
from collapse_diag.report.values import STATUS_ORDER, finite
from collapse_diag.runs.trajectory import verdict_collapsed_phrase
from collapse_diag.runs.trajectory_fields import ROW_KEY as R
from collapse_diag.runs.trajectory_fields import SERIES
from collapse_diag.runs.trajectory_fields import TRAJECTORY_KEY as J

__all__ = ["TRAJECTORY_PLOTS", "plot_kl_heatmap", "plot_status", "plot_curves",
           "status_color", "SERIES"]

Trajectory = Mapping[str, Any]


def status_color(status: str) -> str:
    """The colour of a status, as in the report's plots (grey for an unknown name)."""
    return STATUS_COLORS.get(status, STATUS_COLORS["unknown"])


def _styled(func: Callable[[Trajectory], Figure | None]) -> Callable[[Trajectory], Figure | None]:
    @functools.wraps(func)
    def wrapper(trajectory: Trajectory) -> Figure | None:
        with sns.axes_style("whitegrid"), sns.plotting_context("notebook", font_scale=0.85):
            return func(trajectory)

    return wrapper


def _steps(trajectory: Trajectory) -> list[int]:
    return [int(r[R.step]) for r in trajectory.get(J.rows) or []]


def _dim_matrix(trajectory: Trajectory, key: str) -> list[list[Any]]:
    """``[latent_dim][n_rows]`` values of a per-dimension field (``None`` where missing)."""
    rows = trajectory.get(J.rows) or []
    width = int(trajectory.get(J.latent_dim) or 0)
    out: list[list[Any]] = [[None] * len(rows) for _ in range(width)]
    for t, row in enumerate(rows):
        for d, dim in enumerate((row.get(R.dimensions) or [])[:width]):
            out[d][t] = dim.get(key)
    return out


def _dim_order(trajectory: Trajectory, kl: np.ndarray) -> list[int]:
    """Dimensions by collapse step (earliest first), never-collapsed last by final KL."""
    steps = (trajectory.get(J.events) or {}).get("dimension_collapse_steps") or []
    final = np.nan_to_num(kl[:, -1], nan=-1.0) if kl.size else np.zeros(0)

    def key(d: int) -> tuple[int, float, int]:
        step = steps[d] if d < len(steps) else None
        return (0, float(step), d) if step is not None else (1, -float(final[d]), d)

    return sorted(range(kl.shape[0]), key=key)


def _heatmap_size(steps: int, dims: int) -> tuple[float, float]:
    """Inches (width, height) of a dimensions x steps heatmap.

    Wide enough for its title, tall enough for its y label and colour bar label, a
    2-dimension, 2-step run included.
    """
    return min(14.0, max(5.5, 3.0 + 0.45 * steps)), max(2.8, 1.2 + 0.35 * dims)


def _set_title(fig: Figure, ax: Any, title: str) -> None:
    """``title`` on ``ax``, wrapped to the figure's width so that no part is cut off.

    A character of the title font is about 0.6 of its size wide; the width left is the
    figure's less 1.2 inches of margins and labels.
    """
    size = ax.title.get_fontsize()
    chars = max(20, int((fig.get_figwidth() - 1.2) * 72 / (0.6 * size)))
    ax.set_title(textwrap.fill(title, chars))


def _step_ticks(ax: Any, steps: list[int]) -> None:
    every = max(1, len(steps) // 12)
    ax.set_xticks(np.arange(0, len(steps), every) + 0.5)
    ax.set_xticklabels([f"{steps[i]:,}" for i in range(0, len(steps), every)], rotation=45,
                       ha="right")


@_styled
def plot_kl_heatmap(trajectory: Trajectory) -> Figure | None:
    """Per-dimension KL over steps (log colour scale), dimensions ordered by collapse step."""
    steps = _steps(trajectory)
    kl = np.array([[np.nan if finite(v) is None else float(v) for v in series]
                   for series in _dim_matrix(trajectory, D.kl)], dtype=float)
    if kl.size == 0 or not np.isfinite(kl).any():
        return None
    eps = float((trajectory.get(J.settings) or {}).get("kl_eps", 0.01))
    floor = eps / 100
    order = _dim_order(trajectory, kl)
    values = np.clip(kl[order], floor, None)
    fig = Figure(figsize=_heatmap_size(len(steps), len(order)), layout="constrained")
    ax = fig.subplots()
    sns.heatmap(values, ax=ax, cmap="viridis", norm=LogNorm(vmin=floor, vmax=max(
        float(np.nanmax(values)), eps * 10)), mask=~np.isfinite(values),
        yticklabels=[f"z{d}" for d in order], cbar_kws={"label": "mean KL [nats], log scale"})
    _step_ticks(ax, steps)
    ax.set(xlabel="step", ylabel="dimension (by collapse step)")
    _set_title(fig, ax, f"KL per dimension over training (below {eps:g} nats: collapsed)")
    return fig


@_styled
def plot_status(trajectory: Trajectory) -> Figure | None:
    """Per-dimension status over steps, one colour per status."""
    steps = _steps(trajectory)
    statuses = _dim_matrix(trajectory, D.status)
    if not statuses or all(s is None for row in statuses for s in row):
        return None
    names = [s or "unknown" for row in statuses for s in row]
    present = [s for s in STATUS_ORDER if s in names] + sorted(set(names) - set(STATUS_ORDER))
    codes = np.array([[present.index(s or "unknown") for s in row] for row in statuses])
    kl = np.array([[np.nan if finite(v) is None else float(v) for v in series]
                   for series in _dim_matrix(trajectory, D.kl)], dtype=float)
    order = _dim_order(trajectory, kl) if kl.size else list(range(len(statuses)))
    fig = Figure(figsize=_heatmap_size(len(steps), len(order)), layout="constrained")
    ax = fig.subplots()
    sns.heatmap(codes[order], ax=ax, cmap=ListedColormap([status_color(s) for s in present]),
                vmin=-0.5, vmax=len(present) - 0.5, cbar=False, linewidths=0.5,
                linecolor="white", yticklabels=[f"z{d}" for d in order])
    _step_ticks(ax, steps)
    ax.legend(handles=[Patch(color=status_color(s), label=s) for s in present],
              bbox_to_anchor=(1.01, 1), loc="upper left", title="status")
    ax.set(xlabel="step", ylabel="dimension (by collapse step)", title="Status over training")
    return fig


@_styled
def plot_curves(trajectory: Trajectory) -> Figure | None:
    """Summary figures (KL, MI, active units, swap delta, -ELBO) against step."""
    rows = trajectory.get(J.rows) or []
    steps = np.array(_steps(trajectory), dtype=float)
    series = {}
    for key in SERIES:
        values = np.array([np.nan if finite((r.get(R.summary) or {}).get(key)) is None
                           else float(r[R.summary][key]) for r in rows], dtype=float)
        if np.isfinite(values).any():
            series[key] = values
    if not series:
        return None
    fig = Figure(figsize=(7.5, 1.9 * len(series) + 0.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(len(series), 1, sharex=True))
    collapsed = (trajectory.get(J.events) or {}).get("verdict_collapsed_step")
    for ax, (key, values) in zip(axes, series.items()):
        keep = np.isfinite(values)
        ax.plot(steps[keep], values[keep], marker="o", ms=3, color="#332288")
        ax.set_ylabel(SERIES[key])
        if key != S.codebook_perplexity and np.all(values[keep] == np.round(values[keep])):
            # a count (active units); the perplexity keeps its own limits, K drawn within them
            low, high = float(values[keep].min()), float(values[keep].max())
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_ylim(low - 0.5 if low > 0 else -0.5, high + 0.5)
        if key == S.codebook_perplexity:
            _codebook_size_line(ax, rows)
        if collapsed is not None:
            ax.axvline(collapsed, color=STATUS_COLORS["collapsed"], ls="--", lw=1)
    axes[-1].set_xlabel("step")
    title = "Summary figures over training"
    if collapsed is not None:
        title += f" (dashed: {verdict_collapsed_phrase(trajectory)})"
    _set_title(fig, axes[0], title)
    return fig


def _codebook_size_line(ax: Any, rows: list[Mapping[str, Any]]) -> None:
    """The ceiling K of the codebook perplexity (the rows' ``codebook_size``), dotted."""
    sizes = [r.get(R.codebook_size) for r in rows if finite(r.get(R.codebook_size)) is not None]
    if not sizes:
        return
    for k in sorted(set(sizes)):  # one K per run; a changed K shows as a second line
        ax.axhline(float(k), color="black", ls=":", lw=1, label=f"K = {int(k)}")
    ax.legend(fontsize=8, loc="lower left")


@_styled
def plot_window_swap(trajectory: Trajectory) -> Figure | None:
    """Sequential latents: the swap delta of each time window over steps (None otherwise)."""
    steps = _steps(trajectory)
    windows = [(r.get(R.summary) or {}).get(S.swap_delta_by_window) or []
               for r in trajectory.get(J.rows) or []]
    spans = sorted({(w.get(W.start), w.get(W.stop)) for ws in windows for w in ws
                    if isinstance(w, Mapping)}, key=lambda span: (span[0] or 0, span[1] or 0))
    if not spans:
        return None
    values = np.full((len(spans), len(steps)), np.nan)
    for t, ws in enumerate(windows):
        for w in ws:
            delta = finite(w.get(W.swap_delta)) if isinstance(w, Mapping) else None
            if delta is not None:
                values[spans.index((w.get(W.start), w.get(W.stop))), t] = delta
    if not np.isfinite(values).any():
        return None
    fig = Figure(figsize=_heatmap_size(len(steps), len(spans)), layout="constrained")
    ax = fig.subplots()
    top = max(float(np.nanmax(values)), 1e-3)
    sns.heatmap(np.clip(values, 0.0, None), ax=ax, cmap="viridis", vmin=0.0, vmax=top,
                mask=~np.isfinite(values), cbar_kws={"label": "swap delta [nats]"},
                yticklabels=[f"steps {a}-{b - 1}" if isinstance(a, int) and isinstance(b, int)
                             else "?" for a, b in spans])
    _step_ticks(ax, steps)
    ax.set(xlabel="step", ylabel="time window of z")
    _set_title(fig, ax, "Swap delta per time window over training (0: not read)")
    return fig


#: Plot name -> (function, title, caption), in display order.
TRAJECTORY_PLOTS: dict[str, tuple[Callable[[Trajectory], Figure | None], str, str]] = {
    "kl_heatmap": (plot_kl_heatmap, "KL per dimension over training",
                   "Mean KL(q(z_d|x) || p(z_d)) of each dimension at each step, log colour "
                   "scale; dimensions ordered by the step at which they collapsed (never "
                   "collapsed last)."),
    "status": (plot_status, "Status of each dimension over training",
               "Per-dimension status at each step (rules in docs/statuses.md)."),
    "curves": (plot_curves, "Summary figures over training",
               "Total KL, mutual information, active units, whole-vector swap delta, "
               "-ELBO and, for a model with generate(z), the output diversity (how much the "
               "decoded output changes with z) against step (discrete latents: the codebook "
               "perplexity, dotted its ceiling K). A panel appears when its figure was "
               "measured at some step."),
    "window_swap": (plot_window_swap, "Decoder use per time window over training",
                    "Sequential latents: the mean drop in log p(x|z) when the steps of one time "
                    "window come from another input's z, per window (rows) and step; 0 (dark, "
                    "negative estimates shown as 0): the decoder does not read that window."),
}
