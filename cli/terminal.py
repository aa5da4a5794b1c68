"""Plain-text summaries of a Report for the terminal.

The columns and the headline figures are those the diagnostic specs flag for
the terminal (``DimensionColumn.terminal``, ``SummaryRow.terminal``;
collapse_diag/diagnostics/spec.py), in display order; header and number
format of each column come from collapse_diag/render/tables.py.
"""

from __future__ import annotations

from collapse_diag.render import tables
from collapse_diag.render.tables import text_table
from collapse_diag.report.report import Report
from collapse_diag.report.schema import SUMMARY_KEY as SK

__all__ = ["dimension_table", "summary_line"]


def dimension_table(report: Report) -> str:
    """Fixed-width table, one row per latent dimension, of the columns the report has."""
    keys = [column.key for column in tables.dimension_columns() if column.terminal]
    table = tables.dimension_table(report, keys=keys)
    return text_table([table.headers, *table.rows], align_right=True)


def _figure(value: object) -> str:
    """An integer as is, any other number to three decimals."""
    return str(value) if isinstance(value, int) else f"{value:.3f}"


def summary_line(report: Report, name: str = "") -> str:
    """One line: verdict, unit counts and the headline figures."""
    s = report.summary
    parts = [f"{name}: " if name else ""]
    parts.append(f"verdict {s.get(SK.verdict, 'n/a')}")
    counts = s.get(SK.status_counts) or {}
    if counts:
        parts.append(" | " + ", ".join(f"{v} {k}" for k, v in counts.items() if v))
    parts.append(f" | {report.latent_dim} dims, {report.n_examples} inputs")
    for row in tables.summary_rows():
        if row.terminal and isinstance(s.get(row.key), (int, float)) \
                and not isinstance(s.get(row.key), bool):
            parts.append(f" | {row.terminal} {_figure(s[row.key])}")
    if report.errors:
        parts.append(f" | FAILED: {', '.join(report.errors)}")
    return "".join(parts)
