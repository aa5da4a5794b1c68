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
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from collapse_diag.exceptions import invalid_parameter
from collapse_diag.render.document import build_document
from collapse_diag.render.emit import draw_pngs, render_documents
from collapse_diag.render.explain import explain
from collapse_diag.render.plots import PLOTS, SEQUENCE_PLOTS, figure_marks, plots_for
from collapse_diag.report.formats import REPORT_FORMATS
from collapse_diag.report.invariants import caption_marks_drawn, check_report
from collapse_diag.report.report import Report, write_text_atomic

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
                 formats: str | Iterable[str] = FORMATS, *, dpi: int = 110) -> dict[str, Path]:
    """Write ``report`` into ``out_dir`` in the chosen formats.

    Args:
        report: The report to write.
        out_dir: Folder to write into (created if needed).
        formats: Any of ``"json"`` (report.json), ``"md"`` (report.md with its PNGs in
            ``plots/``), ``"html"`` (report.html with the PNGs embedded); default all.
        dpi: Resolution of the plots.

    Returns:
        Format name -> path written; ``"plots"`` -> the folder of the PNGs when Markdown
        was written and at least one plot was drawn.

    Raises:
        InvalidParameterError: ``formats`` names an unknown format or none, or ``dpi`` < 10.
    """
    chosen = _check_formats(formats, "write_report")
    if isinstance(dpi, bool) or not isinstance(dpi, int) or dpi < 10:
        raise invalid_parameter("dpi", "write_report", "an int >= 10", dpi)
    report = Report.from_dict(report.to_dict())
    report.warnings = [str(v) for v in check_report(report)]
    out = Path(out_dir)
    texts: dict[str, str] = {}
    pngs: dict[str, bytes] = {}
    if "md" in chosen or "html" in chosen:
        specs = plots_for(report)

        def captions(name: str, fig: Any) -> None:
            report.warnings += [f"caption_marks_drawn: plot {name}: {message}" for message
                                in caption_marks_drawn(specs[name].caption, figure_marks(fig))]

        pngs = draw_pngs(specs, report, dpi, captions)
        texts.update(render_documents(build_document(report, drawn=pngs.keys()), pngs, chosen,
                                      lambda name: f"plots/{name}.png"))
    written: dict[str, Path] = {}
    if "json" in chosen:
        written["json"] = report.write_json(out / "report.json")
    if "md" in chosen:
        plots = out / "plots"
        for name, data in pngs.items():
            write_text_atomic(plots / f"{name}.png", data)
        # a plot drawn by an earlier run, missing now
        for name in (PLOTS.keys() | SEQUENCE_PLOTS.keys()) - pngs.keys():
            (plots / f"{name}.png").unlink(missing_ok=True)
        written["md"] = write_text_atomic(out / "report.md", texts["md"])
        if pngs:
            written["plots"] = plots
    if "html" in chosen:
        written["html"] = write_text_atomic(out / "report.html", texts["html"])
    return written


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
