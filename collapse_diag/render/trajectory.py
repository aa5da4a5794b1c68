"""Write a trajectory as trajectory.json, trajectory.md (+ trajectory-plots/) and trajectory.html.

The documents are laid out as a :class:`~collapse_diag.render.document.Document`
and printed by the report's own Markdown and HTML writers, so the HTML file is
self-contained (PNGs embedded as data URIs) exactly like report.html. Every
file is written atomically.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePath
from typing import Any

from collapse_diag.config.presets import preset_label, skipped
from collapse_diag.render import _check_formats
from collapse_diag.render.document import Document, FigureBlock, Section
from collapse_diag.render.emit import draw_pngs, render_documents
from collapse_diag.render.replace import check_dpi, replace_set
from collapse_diag.render.tables import Table, upper_first
from collapse_diag.render.trajectory_plots import TRAJECTORY_PLOTS
from collapse_diag.report.headlines import label
from collapse_diag.report.invariants import check_trajectory
from collapse_diag.report.schema import SUMMARY_KEY as S
from collapse_diag.runs.trajectory import verdict_collapsed_phrase
from collapse_diag.runs.trajectory_fields import ROW_KEY as R
from collapse_diag.runs.trajectory_fields import SERIES
from collapse_diag.runs.trajectory_fields import TRAJECTORY_KEY as J

__all__ = ["PLOTS_FOLDER", "build_trajectory_document", "write_trajectory"]

#: Folder (next to trajectory.md) receiving the PNGs of the Markdown document.
PLOTS_FOLDER = "trajectory-plots"


def _fmt(value: Any, spec: str = ".3f") -> tuple[str, float | str | None]:
    if value is None or isinstance(value, bool):
        return "-", None
    if isinstance(value, int):
        return f"{value:,}", float(value)
    if isinstance(value, float):
        return format(value, spec), value
    return str(value), str(value)


def _table(headers: list[str], cells: list[list[Any]], sortable: bool = True) -> Table:
    pairs = [[_fmt(c) for c in row] for row in cells]
    return Table(headers, [[t for t, _ in row] for row in pairs],
                 [[k for _, k in row] for row in pairs], sortable)


def _steps_table(trajectory: Mapping[str, Any]) -> Table:
    """One row per step, the curves' figures by their short names (headlines.LABELS).

    A figure no step has (a discrete figure of a Gaussian model) is left out.
    """
    rows = trajectory[J.rows]
    series = [k for k in SERIES if any((r.get(R.summary) or {}).get(k) is not None
                                       for r in rows)]
    cells = []
    for row in rows:
        s = row.get(R.summary) or {}
        name = PurePath((row.get(R.checkpoint) or {}).get("path", "")).name or None
        counts = s.get(S.status_counts) or {}
        cells.append([row[R.step], name, s.get(S.verdict), *(s.get(k) for k in series),
                      ", ".join(f"{v} {k}" for k, v in counts.items() if v) or None])
    return _table(["step", "checkpoint", "verdict", *map(label, series), "statuses"], cells)


def _events_table(trajectory: Mapping[str, Any]) -> Table:
    events = trajectory[J.events]
    revivals = events.get("dimension_revival_steps") or []
    cells = [[f"z{d}", step, ", ".join(f"{s:,}" for s in revivals[d]) or None]
             for d, step in enumerate(events["dimension_collapse_steps"])]
    return _table(["dimension", "collapsed from step", "revived at step(s)"], cells)


def build_trajectory_document(trajectory: Mapping[str, Any], drawn: Iterable[str]) -> Document:
    """Lay out the trajectory's Markdown and HTML documents."""
    drawn = set(drawn)
    rows = trajectory[J.rows]
    final = (rows[-1].get(R.summary) or {}).get(S.verdict) if rows else None
    collapsed = trajectory[J.events]["verdict_collapsed_step"]
    if collapsed is None:
        reason = "The verdict never became collapsed."
    else:
        reason = (f"The {verdict_collapsed_phrase(trajectory)}; it is {final or 'n/a'} at the "
                  f"last step ({rows[-1][R.step]:,}).")
    figures = tuple(FigureBlock(name, title, caption,
                                None if name in drawn else "Not drawn: its figures are missing.")
                    for name, (_, title, caption) in TRAJECTORY_PLOTS.items())
    settings = trajectory.get(J.settings) or {}
    warnings = tuple(trajectory.get(J.warnings) or ())
    sections = (
        *([Section("Consistency warnings", "consistency-warnings",
                   ("These events contradict the rows they were derived from "
                    "(collapse_diag/report/invariants.py); please report it as a bug.",
                    *warnings))] if warnings else []),
        Section("What happened", "what-happened", tuple(trajectory[J.explanation])),
        Section("Plots", "plots", figures=figures),
        Section("Events", "events",
                ("The step from which each dimension stays collapsed (KL below kl_eps to the "
                 "last step), and the steps at which a collapsed dimension revived.",),
                tables=(_events_table(trajectory),)),
        Section("Steps", "steps", (f"One row per analysed step ({trajectory[J.source]}); "
                                   "KL, MI, swap delta and -ELBO in nats.",),
                tables=(_steps_table(trajectory),)),
        Section("Settings", "settings",
                (f"{upper_first(preset_label(trajectory.get(J.preset), settings))} "
                 "(docs/watching-collapse.md).",),
                tables=(_table(["setting", "value"],
                               [[k, json.dumps(v)] for k, v in settings.items()], False),)),
    )
    preset = trajectory.get(J.preset)
    left_out = skipped(preset, settings)
    if left_out:
        reason += f" These verdicts come from the {preset} preset: {left_out}."
    return Document("Posterior collapse over training", f"Final verdict: {final or 'n/a'}.",
                    reason, final, sections)


def write_trajectory(trajectory: Mapping[str, Any], out_dir: str | Path,
                     formats: Iterable[str] = ("json", "md", "html"), *,
                     dpi: int = 110, removed: list[str] | None = None) -> dict[str, Path]:
    """Write the trajectory's documents into ``out_dir``, replacing an earlier set whole.

    Args:
        trajectory: The content of trajectory.json (see
            :func:`~collapse_diag.runs.trajectory.build_trajectory`).
        out_dir: Folder to write into (created if needed).
        formats: Any of ``json``, ``md`` (with its PNGs in ``trajectory-plots/``), ``html``.
        dpi: Resolution of the plots.
        removed: When given, the stale documents of an earlier trajectory removed (the
            formats not written now) are appended to it.

    Returns:
        Format name -> path written.

    Raises:
        InvalidParameterError: an unknown format, or none, or ``dpi`` outside [10, MAX_DPI].
        ReportWriteError: ``out_dir`` cannot be written; it is left as it was.
    """
    chosen = _check_formats(formats, "write_trajectory")
    check_dpi(dpi, "write_trajectory")
    trajectory = {**trajectory, J.warnings: [str(v) for v in check_trajectory(trajectory)]}
    pngs: dict[str, bytes] = {}
    texts: dict[str, str] = {}
    if "md" in chosen or "html" in chosen:
        pngs = draw_pngs({name: plot for name, (plot, _, _) in TRAJECTORY_PLOTS.items()},
                         trajectory, dpi)
        texts.update(render_documents(build_trajectory_document(trajectory, pngs), pngs, chosen,
                                      _plot_path))
    files: dict[str, bytes] = {}
    if "json" in chosen:
        files["trajectory.json"] = (json.dumps(trajectory, indent=2, allow_nan=False)
                                    + "\n").encode("utf-8")
    if "md" in chosen:
        files.update({_plot_path(name): data for name, data in pngs.items()})
    files.update({f"trajectory.{fmt}": texts[fmt].encode("utf-8") for fmt in ("md", "html")
                  if fmt in chosen})
    members = [*(f"trajectory.{fmt}" for fmt in ("json", "md", "html")),
               *(_plot_path(name) for name in TRAJECTORY_PLOTS)]
    stale = replace_set(out_dir, files, members, "the trajectory")
    if removed is not None:
        removed.extend(stale)
    return {fmt: Path(out_dir) / f"trajectory.{fmt}" for fmt in chosen}


def _plot_path(name: str) -> str:
    return f"{PLOTS_FOLDER}/{name}.png"
