"""Plots that overlay several models of a :class:`~collapse_diag.runs.comparison.Comparison`.

Each function takes a Comparison and returns a :class:`matplotlib.figure.Figure`
(object-oriented API, no pyplot), or ``None`` when no model has the figures it
needs. Statuses keep the colours of the single-model report.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle

from collapse_diag.render.colors import STATUS_COLORS
from collapse_diag.report.invariants import nll_still_falling
from collapse_diag.report.schema import DIMENSION_KEY as D
from collapse_diag.report.schema import NLL_CONVERGENCE_KEY as C
from collapse_diag.report.schema import RENAMED_STATUSES
from collapse_diag.report.schema import SUMMARY_KEY as S
from collapse_diag.report.values import dim_column, finite, setting
from collapse_diag.runs.comparison import Comparison, model_statuses, short_unique_names

__all__ = ["COMPARISON_PLOTS", "short_names"]

_UNKNOWN = "#999999"


def short_names(names: Sequence[str]) -> list[str]:
    """The shortest distinct trailing path parts of ``names`` as plot labels.

    ``runs/a/seed1`` -> ``seed1``; a ``$`` is escaped, so that a name such as
    ``$beta$-vae`` is drawn as written instead of being parsed (and possibly
    refused) as matplotlib mathtext.
    """
    return [name.replace("$", r"\$") for name in short_unique_names(names)]


def status_color(status: str | None) -> str:
    """The report's colour of a status (either name of the used status); grey if unknown."""
    if status is None:
        return _UNKNOWN
    return STATUS_COLORS.get(RENAMED_STATUSES.get(status, status), _UNKNOWN)


def _styled(func: Callable[[Comparison], Figure | None]) -> Callable[[Comparison], Figure | None]:
    @functools.wraps(func)
    def wrapper(comparison: Comparison) -> Figure | None:
        with sns.axes_style("whitegrid"), sns.plotting_context("notebook", font_scale=0.85):
            return func(comparison)

    return wrapper


def _palette(n: int) -> list[Any]:
    return list(sns.color_palette("colorblind", n))


@_styled
def plot_kl_sorted(comparison: Comparison) -> Figure | None:
    """Per-dimension KL of every model, sorted decreasing, on one log axis."""
    curves = [(label, np.sort(kl[np.isfinite(kl)])[::-1])
              for label, kl in zip(short_names(comparison.names),
                                   (dim_column(m.report, D.kl) for m in comparison.models))]
    curves = [(label, kl) for label, kl in curves if kl.size]
    if not curves:
        return None
    eps = float(setting(comparison.models[0].report, "kl_eps"))
    fig = Figure(figsize=(8.5, 4.4), layout="constrained")
    ax = fig.subplots()
    floor = eps / 100
    for (label, kl), colour in zip(curves, _palette(len(curves))):
        ax.plot(np.arange(1, kl.size + 1), np.maximum(kl, floor), marker="o", ms=4,
                color=colour, label=label)
    ax.axhline(eps, color="black", ls="--", lw=1, label=f"kl_eps = {eps:g} nats")
    ax.set(yscale="log", xlabel="dimension rank (largest KL first)",
           ylabel="mean KL(q(z_d|x) || p(z_d))  [nats]", title="KL per dimension, sorted")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    return fig


@_styled
def plot_rate_distortion(comparison: Comparison) -> Figure | None:
    """Every model as a point (rate R, distortion D); dotted lines of equal -ELBO = R + D."""
    points = [(label, finite(row.get(S.rate)), finite(row.get(S.distortion)), row["data_group"])
              for label, row in zip(short_names(comparison.names), comparison.rows)]
    points = [p for p in points if p[1] is not None and p[2] is not None]
    if not points:
        return None
    fig = Figure(figsize=(8.5, 5.0), layout="constrained")
    ax = fig.subplots()
    markers = dict(zip(dict.fromkeys(p[3] for p in points), "osD^vP*X"))
    rates, dists = np.array([p[1] for p in points]), np.array([p[2] for p in points])
    span = max(np.ptp(rates), np.ptp(dists), 1.0)
    lo_r, hi_r = rates.min() - 0.15 * span, rates.max() + 0.15 * span
    for number, ((label, r, d, group), colour) in enumerate(
            zip(points, _palette(len(points))), start=1):
        ax.plot(np.array([lo_r, hi_r]), r + d - np.array([lo_r, hi_r]), ls=":", lw=0.8,
                color=colour)
        ax.scatter([r], [d], s=80, color=colour, marker=markers[group], zorder=3,
                   label=f"{number}: {label} (-ELBO {r + d:.3g})"
                   + (f", data {group}" if len(markers) > 1 else ""))
        # a number, not the name, beside the point: short, and kept inside the axes, so it
        # never runs into the legend or another point's label (the legend names it)
        ax.annotate(str(number), (r, d), xytext=(5, 3), textcoords="offset points",
                    fontsize=8, annotation_clip=True, clip_on=True)
    ax.set(xlim=(lo_r, hi_r), ylim=(dists.min() - 0.15 * span, dists.max() + 0.15 * span),
           xlabel="rate R = KL(q(z|x) || p(z))  [nats]",
           ylabel="distortion D = -E_q log p(x|z)  [nats]",
           title="Rate-distortion plane (dotted: equal -ELBO)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    return fig


@_styled
def plot_status_strips(comparison: Comparison) -> Figure | None:
    """One strip per model, one cell per latent dimension, coloured by status."""
    strips = [model_statuses(m.report) for m in comparison.models]
    if not any(s is not None for strip in strips for s in strip):
        return None
    width = max(len(s) for s in strips)
    fig = Figure(figsize=(min(16.0, max(7.0, 3.0 + 0.35 * width)), 1.2 + 0.45 * len(strips)),
                 layout="constrained")
    ax = fig.subplots()
    seen: dict[str, str] = {}
    for row, strip in enumerate(strips):
        for d, status in enumerate(strip):
            colour = status_color(status)
            seen.setdefault(status or "no status", colour)
            ax.add_patch(Rectangle((d, row), 0.94, 0.8, color=colour))
    ax.set(xlim=(-0.1, width), ylim=(len(strips) - 0.1, -0.1), xlabel="latent dimension z_d",
           title="Per-dimension status")
    ax.set_yticks(np.arange(len(strips)) + 0.4, short_names(comparison.names))
    step = max(1, width // 32)
    ax.set_xticks(np.arange(0, width, step) + 0.47, [str(d) for d in range(0, width, step)])
    ax.grid(False)
    ax.legend(handles=[Patch(color=c, label=s) for s, c in seen.items()], loc="upper left",
              bbox_to_anchor=(1.01, 1.0), fontsize=8)
    return fig


@_styled
def plot_nll_convergence(comparison: Comparison) -> Figure | None:
    """The IW-NLL bound at K' = 1, 10, 100, ..., K of every model, with its standard error."""
    curves = []
    for label, model in zip(short_names(comparison.names), comparison.models):
        conv = model.report.summary.get(S.nll_convergence)
        if isinstance(conv, dict) and conv.get(C.samples):
            k = conv[C.samples]
            se = [finite(v) or 0.0 for v in conv.get(S.nll_se) or [None] * len(k)]
            if nll_still_falling(model.report):
                label += " (still falling)"
            curves.append((label, k, conv[S.nll], se))
    if not curves:
        return None
    fig = Figure(figsize=(8.5, 4.4), layout="constrained")
    ax = fig.subplots()
    for (label, k, nll, se), colour in zip(curves, _palette(len(curves))):
        ax.errorbar(k, nll, yerr=se, marker="o", ms=4, capsize=3, color=colour, label=label)
    ax.set(xscale="log", xlabel="K, codes drawn from q(z|x) per input",
           ylabel="IW bound on NLL  [nats per input]",
           title="NLL bound against K (a curve still falling at the right needs more K)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    return fig


#: Plot name -> (title, caption, function), in display order.
COMPARISON_PLOTS: dict[str, tuple[str, str, Callable[[Comparison], Figure | None]]] = {
    "kl_sorted": (
        "KL per dimension, sorted",
        "Each model's per-dimension mean KL, largest first. Points under the dashed kl_eps "
        "line are collapsed dimensions (shown at the floor of the axis when 0).",
        plot_kl_sorted),
    "rate_distortion": (
        "Rate-distortion plane",
        "Each model at (rate, distortion) (Alemi et al. 2018); -ELBO = R + D is constant "
        "along each dotted line. A collapsed model sits at R ~ 0.",
        plot_rate_distortion),
    "status_strips": (
        "Per-dimension status",
        "One row per model, one cell per latent dimension, in index order, coloured by status.",
        plot_status_strips),
    "nll_convergence": (
        "NLL bound against K",
        "The importance-weighted NLL bound with K' = 1, 10, 100, ... up to nll_samples codes, "
        "then each doubled K, with its standard error over inputs. A curve still falling at "
        "the right needs a larger nll_max_samples.",
        plot_nll_convergence),
}
