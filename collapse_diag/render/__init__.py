"""Write a Report as the files a person reads: report.json, report.md (+ plots/), report.html.

Usage::

    from collapse_diag.render import write_report, render_directory

    write_report(report, "out/")                 # report.json, report.md, plots/*.png, report.html
    render_directory("out/", formats=("html",))  # re-render from out/report.json, no model needed

The report is first normalised through its JSON form, so documents written
right after an analysis and documents re-rendered later from report.json are
the same. Everything is rendered in memory first (each plot once, shared by the
Markdown and HTML documents), then each file is written atomically (temporary
file + rename): a failure never leaves a half-written file behind.

A plot or a document that cannot be drawn never costs the analysis: the failure
is recorded in ``report.errors`` (``plot:<name>``, ``document:<format>``), the
documents name it where the figure would have been, and report.json is written
with it (the CLI then exits 4, "a part failed").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from html import escape
from pathlib import Path
from typing import Any

from collapse_diag.diagnostics.qualifications import report_warnings
from collapse_diag.exceptions import invalid_parameter
from collapse_diag.render.document import build_document
from collapse_diag.render.emit import draw_pngs, render_documents
from collapse_diag.render.explain import explain
from collapse_diag.render.failures import error_message, is_render_error, render_error_key
from collapse_diag.render.markdown import escape_markdown
from collapse_diag.render.plots import (
    DISCRETE_PLOTS,
    PLOTS,
    SEQUENCE_PLOTS,
    figure_marks,
    plots_for,
)
from collapse_diag.render.replace import check_dpi, replace_set
from collapse_diag.report.formats import REPORT_FORMATS
from collapse_diag.report.invariants import caption_marks_drawn
from collapse_diag.report.report import Report

__all__ = ["FORMATS", "explain", "render_directory", "write_report"]

#: Output formats, in the order they are written.
FORMATS = REPORT_FORMATS


def _check_formats(formats: str | Iterable[str], where: str) -> tuple[str, ...]:
    """Validate ``formats`` (an iterable of names, or one comma-separated string)."""
    items: list[object]
    if isinstance(formats, str):
        items = [part.strip() for part in formats.split(",") if part.strip()]
    else:
        try:
            items = list(formats)
        except TypeError:
            items = []
    if not items or any(item not in FORMATS for item in items):
        raise invalid_parameter("formats", where, f"a subset of {list(FORMATS)}", formats)
    return tuple(name for name in FORMATS if name in items)


def write_report(report: Report, out_dir: str | Path,
                 formats: str | Iterable[str] = FORMATS, *, dpi: int = 110,
                 extra: Mapping[str, bytes | None] | None = None,
                 removed: list[str] | None = None) -> dict[str, Path]:
    """Write ``report`` into ``out_dir`` in the chosen formats.

    Args:
        report: The report to write.
        out_dir: Folder to write into (created if needed).
        formats: Any of ``"json"`` (report.json), ``"md"`` (report.md with its PNGs in
            ``plots/``), ``"html"`` (report.html with the PNGs embedded); default all.
        dpi: Resolution of the plots (10 to :data:`MAX_DPI`).
        extra: More files of the set, relative name -> content, or ``None`` for a
            file of the set this run does not write (the CLI's ``encodings.npz``).
        removed: When given, the stale files removed are appended to it (below).

    Returns:
        Format name -> path written; ``"plots"`` -> the folder of the PNGs when Markdown
        was written and at least one plot was drawn.

    The files are replaced as a set (:func:`collapse_diag.io.file_set.replace_files`):
    written aside, then swapped in whole, so a failure or a signal leaves the earlier
    report as it was. When report.json is written, every document of the set that
    this run does not write (report.md, report.html, plots/*.png from an earlier
    run) is removed, since it would describe another report; without ``json``
    (re-rendering from report.json) only the chosen documents are replaced.

    A plot or document that raises is recorded in ``report.errors`` (of ``report`` itself
    and of the report.json written) under ``plot:<name>`` / ``document:<format>``, and
    the rest is written; failures recorded by an earlier rendering are replaced.

    Raises:
        InvalidParameterError: ``formats`` names an unknown format or none, or ``dpi`` is
            not an int in [10, MAX_DPI].
        ReportWriteError: ``out_dir`` cannot be written (an ``OSError``); nothing changed.
    """
    chosen = _check_formats(formats, "write_report")
    check_dpi(dpi, "write_report")
    original = report
    for key in [k for k in report.errors if is_render_error(k)]:
        del report.errors[key]  # this rendering decides again
    report = Report.from_dict(report.to_dict())
    report.warnings = report_warnings(report)
    out = Path(out_dir)
    pngs: dict[str, bytes] = {}
    texts: dict[str, str] = {}
    if "md" in chosen or "html" in chosen:
        specs = plots_for(report)

        def captions(name: str, fig: Any) -> None:
            report.warnings += [f"caption_marks_drawn: plot {name}: {message}" for message
                                in caption_marks_drawn(specs[name].caption, figure_marks(fig))]

        failed: dict[str, str] = {}
        pngs = draw_pngs(specs, report, dpi, failures=failed, inspect=captions)
        report.errors.update({render_error_key("plot", k): v for k, v in failed.items()})
        texts = _documents(report, pngs, chosen)
    original.errors.update({k: v for k, v in report.errors.items() if is_render_error(k)})
    files: dict[str, bytes] = {}
    written: dict[str, Path] = {}
    if "json" in chosen:
        files["report.json"] = report.to_json().encode("utf-8")
        written["json"] = out / "report.json"
    if "md" in chosen:
        files.update({_md_image(name): data for name, data in pngs.items()})
        files["report.md"] = texts["md"].encode("utf-8")
        written["md"] = out / "report.md"
        if pngs:
            written["plots"] = out / "plots"
    if "html" in chosen:
        files["report.html"] = texts["html"].encode("utf-8")
        written["html"] = out / "report.html"
    plots = [_md_image(name) for name in sorted(PLOTS.keys() | SEQUENCE_PLOTS.keys()
                                                 | DISCRETE_PLOTS.keys())]
    members = {"json": ["report.json"], "md": ["report.md", *plots], "html": ["report.html"]}
    chosen_members = [m for fmt in (FORMATS if "json" in chosen else chosen)
                      for m in members[fmt]]
    for name, data in (extra or {}).items():
        chosen_members.append(name)
        if data is not None:
            files[name] = data
    stale = replace_set(out, files, chosen_members, "the report")
    if removed is not None:
        removed.extend(stale)
    return written


def _documents(report: Report, pngs: dict[str, bytes], chosen: tuple[str, ...]
               ) -> dict[str, str]:
    """The Markdown / HTML texts; a format that fails gets a stub naming the failure.

    The failure is recorded in ``report.errors`` (``document:<format>``) before the
    stub is written, so the stub and report.json both name it.
    """
    formats = [f for f in chosen if f in ("md", "html")]
    texts: dict[str, str] = {}

    def fail(fmt: str, message: str) -> None:
        report.errors[render_error_key("document", fmt)] = message
        texts[fmt] = _stub(report, fmt, message)

    try:
        document = build_document(report, drawn=pngs.keys())
    except Exception as err:  # noqa: BLE001 - isolate a failing document, record it
        for fmt in formats:
            fail(fmt, error_message(err))
        return texts
    for fmt in formats:
        try:
            texts.update(render_documents(document, pngs, (fmt,), _md_image))
        except Exception as err:  # noqa: BLE001 - isolate a failing document, record it
            fail(fmt, error_message(err))
    return texts


def _md_image(name: str) -> str:
    return f"plots/{name}.png"


def _stub(report: Report, fmt: str, message: str) -> str:
    """A page that only says the full document failed, and where the figures are.

    Written without the document writers (they may be what failed); text escaped.
    """
    failed = [f"{k}: {v}" for k, v in sorted(report.errors.items())]
    lead = (f"The {fmt} document could not be rendered ({message}). The analysis is "
            "complete: every figure is in report.json.")
    if fmt == "md":
        items = "".join(f"- {escape_markdown(line)}\n" for line in failed)
        return (f"# Posterior collapse report\n\n**Document not rendered.** "
                f"{escape_markdown(lead)}\n\n## What failed\n\n{items}")
    items = "".join(f"<li>{escape(line)}</li>" for line in failed)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<title>Posterior collapse report</title></head><body>"
            f"<h1>Posterior collapse report</h1><p><strong>Document not rendered.</strong> "
            f"{escape(lead)}</p><h2>What failed</h2><ul>{items}</ul></body></html>\n")


def render_directory(directory: str | Path, formats: str | Iterable[str] = ("md", "html"),
                     *, dpi: int = 110) -> dict[str, Path]:
    """Re-render the documents of ``directory`` from its report.json, without the model.

    Args:
        directory: A folder holding a report.json written by ``collapse-diag analyze``
            or :func:`write_report`.
        formats: As in :func:`write_report`; default Markdown and HTML.
        dpi: Resolution of the plots.

    Returns:
        Format name -> path written (see :func:`write_report`).

    Raises:
        DataError: report.json is missing, unreadable or of an unknown schema version.
        InvalidParameterError: ``formats`` names an unknown format or none.
    """
    chosen = _check_formats(formats, "render_directory")
    report = Report.from_json(Path(directory) / "report.json")
    return write_report(report, directory, chosen, dpi=dpi)
