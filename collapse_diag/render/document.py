"""What a human-readable report says, in order, independent of its file format.

:func:`build_document` turns a Report into a :class:`Document`: the title, the
verdict, and the sections (explanation, key figures, failures, plots, the
per-dimension table, the sections the diagnostic specs add (``spec.sections``:
known factors, likelihood figures), settings, provenance). The Markdown and
HTML writers only print a Document, so both formats always hold the same content.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import PurePath

from collapse_diag.diagnostics.qualifications import is_qualification
from collapse_diag.diagnostics.registry import display_order
from collapse_diag.diagnostics.spec import resolve
from collapse_diag.render.explain import explain, verdict_parts
from collapse_diag.render.failures import is_render_error, render_error_key
from collapse_diag.render.plots import SECTION_PLOTS, missing_note, plots_for
from collapse_diag.render.tables import (
    Table,
    dimension_tables,
    errors_table,
    provenance_table,
    settings_table,
    summary_table,
    upper_first,
)
from collapse_diag.report.report import Report
from collapse_diag.report.schema import SUMMARY_KEY as SK

__all__ = ["Document", "FigureBlock", "Section", "build_document"]


@dataclass(frozen=True)
class FigureBlock:
    """One plot slot.

    Attributes:
        name: Key in :data:`collapse_diag.render.plots.PLOTS` (and the PNG file name).
        title: Heading of the plot.
        caption: How to read it.
        note: Why it was left out, or ``None`` when it was drawn.
    """

    name: str
    title: str
    caption: str
    note: str | None = None


@dataclass(frozen=True)
class Section:
    """A titled part of the document: paragraphs, then figures, then tables."""

    title: str
    anchor: str
    paragraphs: tuple[str, ...] = ()
    figures: tuple[FigureBlock, ...] = ()
    tables: tuple[Table, ...] = ()


@dataclass(frozen=True)
class Document:
    """A whole report as a writer prints it.

    Attributes:
        title: Document title.
        verdict_label: ``"Verdict: collapsed."``.
        verdict_reason: The one-sentence reason.
        verdict: one of ``schema.VERDICTS``, or ``None``.
        sections: In reading order.
    """

    title: str
    verdict_label: str
    verdict_reason: str
    verdict: str | None
    sections: tuple[Section, ...]


def build_document(report: Report, drawn: Collection[str]) -> Document:
    """Lay out the content of ``report``'s Markdown and HTML documents.

    Args:
        report: The report to describe.
        drawn: Names of the plots that were drawn; every other registered plot
            gets a note saying why it is missing.

    Returns:
        The document, ready for a writer.
    """
    checkpoint = (report.checkpoint or {}).get("path")
    title = "Posterior collapse report" + (f": {PurePath(checkpoint).name}" if checkpoint else "")
    label, reason = verdict_parts(report)
    figures = tuple(FigureBlock(name, spec.title, spec.caption,
                                None if name in drawn else _missing(report, name))
                    for name, spec in plots_for(report).items() if name not in SECTION_PLOTS)
    sections = []
    qualified = [w for w in report.warnings if is_qualification(w)]
    broken = [w for w in report.warnings if not is_qualification(w)]
    if qualified:
        sections.append(Section(
            "Few distinct inputs", "few-distinct-inputs",
            ("The verdict stands, but on little evidence:",
             # the warning without its machine-readable name (report.json keeps it)
             *(upper_first(w.split(": ", 1)[-1]) for w in qualified))))
    if broken:
        sections.append(Section(
            "Consistency warnings", "consistency-warnings",
            ("Some figures of this report break a relation they must satisfy (listed "
             "below, collapse_diag/report/invariants.py): read the figures named here with "
             "care, and please report it as a bug.", *broken)))
    sections += [
        Section("What this means", "what-this-means", tuple(explain(report))),
        Section("Key figures", "key-figures", tables=(summary_table(report),)),
    ]
    errors = errors_table(report)
    if errors is not None:
        diagnostics = any(not is_render_error(k) for k in report.errors)
        sections.append(Section(
            "Diagnostics that failed" if diagnostics else "Plots that failed",
            "diagnostics-that-failed",
            ("These parts raised an error; the others ran. Figures they would have "
             "produced are shown as missing (a plot that failed to draw is named in its "
             "place; its figures are in report.json).",), tables=(errors,)))
    sections.append(Section("Plots", "plots", figures=figures))
    sections.append(Section(
        "Per-dimension figures", "per-dimension-figures",
        ("One row per latent dimension, its figures split by what they measure into tables "
         "that each repeat the dimension and its status. Every column is explained in "
         "docs/reading-the-report.md of collapse-diag, the status rule in docs/statuses.md.",),
        tables=tuple(dimension_tables(report))))
    sections += _spec_sections(report, drawn)
    sections.append(Section("Settings", "settings", tables=(settings_table(report),)))
    sections.append(Section("Provenance", "provenance", tables=(provenance_table(report),)))
    return Document(title, label, reason, report.summary.get(SK.verdict), tuple(sections))


def _missing(report: Report, name: str) -> str:
    """Why plot ``name`` is not shown: it failed to draw, or its figures are missing."""
    failed = report.errors.get(render_error_key("plot", name))
    if failed is not None:
        return (f"Not drawn: drawing this plot failed ({str(failed).rstrip('.')}). Its figures "
                "are in report.json and the tables below.")
    return missing_note(report, name)


def _spec_sections(report: Report, drawn: Collection[str]) -> list[Section]:
    """The sections the diagnostics add (``spec.sections``), those with a table or text to show.

    A section's own plots (``ref.plots``) are shown in it when drawn.
    """
    sections = []
    specs = plots_for(report)
    for spec in display_order():
        for ref in spec.sections:
            table = resolve(ref.table)(report)
            tables = () if table is None else (table,) if isinstance(table, Table) else table
            text = resolve(ref.text)(report) if ref.text is not None else None
            if tables or text:
                figures = tuple(FigureBlock(name, specs[name].title, specs[name].caption)
                                for name in ref.plots if name in drawn)
                sections.append(Section(ref.title, ref.anchor, tuple(text or (ref.paragraph,)),
                                        figures=figures, tables=tables))
    return sections
