"""Image grids of what the decoder makes of z (the decoded diagnostic, continuous outputs).

Both grids share one grey scale per figure (the smallest and largest value drawn),
so a row that does not change reads as constant, and a white background.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure

from collapse_diag.render.plots_style import styled
from collapse_diag.report.report import Report
from collapse_diag.report.schema import DIMENSION_KEY as DK
from collapse_diag.report.schema import SUMMARY_KEY as SK
from collapse_diag.report.values import dim_column, dim_statuses

__all__ = ["image_views", "plot_decoded_samples", "plot_decoded_traversal"]

#: Inches per image cell; a row label takes ``_LABEL`` inches on the left.
_CELL, _LABEL = 0.8, 2.0


def image_views(report: Report) -> dict[str, Any] | None:
    """``summary.decoded_views`` of a report with continuous outputs, else ``None``."""
    views = report.summary.get(SK.decoded_views)
    if report.summary.get(SK.output_kind) != "continuous" or not isinstance(views, dict):
        return None
    return views


def _layout(shape: list[int]) -> tuple[bool, float, float, str]:
    """How a cell draws an output of ``shape``: ``(transpose, width, height, aspect)``.

    Images whose sides differ by at most 2x keep square pixels; longer outputs (a
    sequence's steps x dimensions, a vector) become a wide strip, time along x.
    """
    h, w = shape[0], shape[1]
    if max(h, w) > 2 * min(h, w):
        return h > w, 1.5 * _CELL, 0.5 * _CELL, "auto"
    return False, _CELL, _CELL * h / w, "equal"


def _grid(rows: list[tuple[str, list[list[float] | None]]], shape: list[int],
          header: list[str] | None = None) -> Figure:
    """One image per cell, one labelled row per entry of ``rows``; ``None`` cells left blank."""
    columns = max(len(cells) for _, cells in rows)
    values = [v for _, cells in rows for c in cells if c is not None for v in c]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    if high <= low:
        high = low + 1.0
    transpose, width, height, aspect = _layout(shape)
    fig = Figure(figsize=(_LABEL + width * columns, 0.25 + height * len(rows)
                          + (0.3 if header else 0)), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(rows), columns, squeeze=False))
    for r, (label, cells) in enumerate(rows):
        for c in range(columns):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if c < len(cells) and cells[c] is not None:
                image = np.asarray(cells[c], dtype=float).reshape(shape)
                ax.imshow(np.swapaxes(image, 0, 1) if transpose else image, cmap="gray_r",
                          vmin=low, vmax=high, interpolation="nearest", aspect=aspect)
            if header and r == 0 and c < len(header):
                ax.set_title(header[c], fontsize=8)
        axes[r, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
    return fig


@styled
def plot_decoded_samples(report: Report) -> Figure | None:
    """Inputs, their reconstructions at mu(x), and decodes of other codes (prior, other inputs)."""
    views = image_views(report)
    if views is None:
        return None
    recon = views.get("reconstructions") or []
    rows: list[tuple[str, list[Any]]] = []
    if any(r.get("pixels") is not None for r in recon):
        rows.append(("input x", [r.get("pixels") for r in recon]))
    rows.append(("decoded at mu(x)", [r["decoded"] for r in recon]))
    codes = views.get("from_codes") or []
    groups = ((name, [c for c in codes if c["code"].startswith(prefix)])
              for name, prefix in (("mean of q(z)", "mean"), ("prior draws", "prior"),
                                   ("other inputs' codes", "code of")))
    rows += [(name, [c["decoded"] for c in group]) for name, group in groups if group]
    return _grid(rows, views["shape"])


@styled
def plot_decoded_traversal(report: Report) -> Figure | None:
    """One row per traversed dimension (largest KL first), labelled with its status and KL."""
    views = image_views(report)
    if views is None or not views.get("traversal"):
        return None
    statuses, kl = dim_statuses(report), dim_column(report, DK.kl)
    rows = []
    for entry in views["traversal"]:
        d = entry["dimension"]
        status = statuses[d] if d < len(statuses) else None
        parts = [f"z{d}"] + ([status] if status else []) + (
            [f"KL {kl[d]:.2g}"] if d < len(kl) and np.isfinite(kl[d]) else [])
        rows.append((" · ".join(parts), entry["decoded"]))
    steps = len(views["traversal"][0]["decoded"])
    header = ["low"] + [""] * (steps - 2) + ["high"]
    return _grid(rows, views["shape"], header)
