"""Number formatting and the tables both document writers show.

Each table is a :class:`Table` of already formatted cells plus raw sort keys;
the Markdown and HTML writers only decide how to print it, so what a table
holds is decided here, once. The key-figures rows and the per-dimension columns
are those the diagnostic specs declare (``spec.summary_rows``, ``spec.columns``;
collapse_diag/diagnostics/spec.py); this module implements their number formats,
and splits the per-dimension columns into one table per ``column.group``
(:data:`DIMENSION_GROUPS`): the 20 or so columns side by side would not fit a
laptop's window.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from typing import Any, NamedTuple

from collapse_diag.diagnostics.registry import display_order
from collapse_diag.diagnostics.spec import DimensionColumn, SummaryRow
from collapse_diag.report.invariants import coordinates
from collapse_diag.report.report import Report
from collapse_diag.report.schema import DIMENSION_KEY as DK
from collapse_diag.report.schema import PROBE_KEY as PRK
from collapse_diag.report.schema import SUMMARY_KEY as SK
from collapse_diag.report.values import finite, setting

__all__ = [
    "DIMENSION_GROUPS",
    "MISSING",
    "Table",
    "dimension_columns",
    "dimension_table",
    "dimension_tables",
    "errors_table",
    "fmt_counts",
    "fmt_interval",
    "fmt_num",
    "fmt_p",
    "fmt_pct",
    "join_names",
    "probes_table",
    "provenance_table",
    "settings_table",
    "summary_cell",
    "summary_rows",
    "summary_table",
    "text_table",
    "upper_first",
]

#: Shown for a figure that was not computed.
MISSING = "—"
#: Shown for a negative estimate of a quantity that cannot be negative (MI): estimator noise,
#: indistinguishable from 0 (the value itself stays in report.json).
INDISTINGUISHABLE = "≈ 0"


class Table(NamedTuple):
    """A table ready to print.

    Attributes:
        headers: Column titles.
        rows: Formatted cells, one list per row.
        keys: Raw value of each cell (number or text, ``None`` when missing), for sorting.
        sortable: Whether an interactive document may let a reader sort it by column.
        title: Heading printed above it (``None``: none, the section's title says it).
        caption: How to read it, printed below it (``None``: none).
    """

    headers: list[str]
    rows: list[list[str]]
    keys: list[list[float | str | None]]
    sortable: bool = False
    title: str | None = None
    caption: str | None = None


def text_table(rows: list[list[str]], align_right: bool = False) -> str:
    """Fixed-width plain-text table for a terminal; ``rows[0]`` is the header.

    Columns are padded to their widest cell and separated by two spaces.
    """
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    pad = str.rjust if align_right else str.ljust
    return "\n".join("  ".join(pad(c, w) for c, w in zip(r, widths)).rstrip() for r in rows)


def fmt_num(value: Any, digits: int = 3) -> str:
    """A number in at most ``digits`` significant figures; :data:`MISSING` for null/NaN."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    number = finite(value)
    if number is None:
        return MISSING
    if number == 0:
        return "0"
    if abs(number) >= 1e7:
        return f"{number:.{digits - 1}e}"
    text = f"{number:.{digits}g}"
    return f"{number:.0f}" if "e+" in text else text


def fmt_p(value: Any) -> str:
    """A p-value: ``< 0.001`` below a thousandth, else three decimals."""
    number = finite(value)
    if number is None:
        return MISSING
    return "< 0.001" if number < 1e-3 else f"{number:.3f}"


def fmt_pct(value: Any) -> str:
    """A fraction in [0, 1] as a percentage."""
    number = finite(value)
    if number is None:
        return MISSING
    return f"{100 * number:.1f}%" if 0 < abs(number) < 0.01 else f"{100 * number:.0f}%"


def join_names(names: Iterable[str], limit: int = 6) -> str:
    """``"z0, z3 and z5"``; past ``limit`` names, ``"z0, z1, ... and 9 more"``."""
    names = list(names)
    if len(names) > limit:
        return f"{', '.join(names[:limit])} and {len(names) - limit} more"
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _table(headers: list[str], raw_rows: list[list[Any]],
           formats: list[Callable[[Any], str]]) -> Table:
    rows = [[fmt(v) for fmt, v in zip(formats, row, strict=True)] for row in raw_rows]
    keys = [[finite(v) if finite(v) is not None else (None if v is None else str(v)) for v in row]
            for row in raw_rows]
    return Table(headers, rows, keys)


def _text(value: Any) -> str:
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ", ".join(_text(v) for v in value) or "none"
    return fmt_num(value) if isinstance(value, (int, float)) else str(value)


def fmt_interval(value: Any) -> str:
    """``[low, high]`` as ``"low to high"``; :data:`MISSING` when either bound is missing."""
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        return MISSING
    low, high = (finite(v) for v in value)
    if low is None or high is None:
        return MISSING
    return f"{fmt_num(low)} to {fmt_num(high)}"


def fmt_counts(counts: Any) -> str | None:
    """``{"used": 3, "ignored": 0, ...}`` as ``"3 used"`` (zero counts left out), or None."""
    if not isinstance(counts, dict) or not counts:
        return None
    parts = [f"{int(v)} {k}" for k, v in counts.items() if finite(v)]
    return ", ".join(parts) if parts else "none"


def _of_dims(report: Report, row: SummaryRow) -> str:
    """``"3 of 8"``; the Fisher rank counts latent coordinates: T x D for a sequential z."""
    if row.key == SK.identifiable_dims and coordinates(report) != report.latent_dim:
        steps = coordinates(report) // report.latent_dim
        return (f"{int(report.summary[row.key])} of {coordinates(report)} coordinates "
                f"({steps} steps x {report.latent_dim} dimensions)")
    return f"{int(report.summary[row.key])} of {report.latent_dim}"


def _nats(report: Report, row: SummaryRow) -> str:
    return f"{fmt_num(report.summary[row.key])} nats"


def _nats_ci(report: Report, row: SummaryRow) -> str:
    ci = [finite(v) for v in report.summary.get(row.related[0]) or []]
    if len(ci) != 2 or None in ci:
        return _nats(report, row)
    return (f"{_nats(report, row)} ({setting(report, 'confidence'):.0%} CI {fmt_num(ci[0])} to "
            f"{fmt_num(ci[1])})")


def _nats_flagged(report: Report, row: SummaryRow) -> str:
    flags = [key.rsplit("_", 1)[-1] for key in row.related if report.summary.get(key)]
    return _nats(report, row) + (f" ({', '.join(flags)})" if flags else "")


def _inputs_rounds(report: Report, row: SummaryRow) -> str:
    s, (used, budget) = report.summary, row.related
    return f"{s.get(used)} of at most {s.get(budget)}, {s[row.key]} round(s)"


#: Key-figures row formats (``spec.SummaryRow.format``): ``(report, row) -> cell``, called
#: when ``summary[row.key]`` is there (a number for the numeric formats).
_ROW_FORMATTERS: dict[str, Callable[[Report, SummaryRow], str | None]] = {
    "text": lambda report, row: str(report.summary[row.key]),
    "num": lambda report, row: fmt_num(report.summary[row.key]),
    "nats": _nats,
    "of_dims": _of_dims,
    "counts": lambda report, row: fmt_counts(report.summary[row.key]),
    "p_value": lambda report, row: fmt_p(report.summary[row.key]),
    "percent": lambda report, row: fmt_pct(report.summary[row.key]),
    "nats_ci": _nats_ci,
    "nats_flagged": _nats_flagged,
    "inputs_rounds": _inputs_rounds,
}
#: Formats whose value must be a finite number (otherwise the row is left out).
_NUMERIC_ROWS = ("num", "nats", "of_dims", "percent", "nats_ci", "nats_flagged", "p_value",
                 "inputs_rounds")

#: Per-dimension column formats (``spec.DimensionColumn.format``).
_COLUMN_FORMATTERS: dict[str, Callable[[Any], str]] = {
    "text": _text,
    "num": fmt_num,
    "nonnegative": lambda v: INDISTINGUISHABLE if (finite(v) or 0.0) < 0 else fmt_num(v),
    "percent": fmt_pct,
    "interval": fmt_interval,
    "p_value": fmt_p,
}


def dimension_columns() -> list[DimensionColumn]:
    """Every per-dimension column of the specs, in display order (the verdict's status first)."""
    return [column for spec in display_order() for column in spec.columns]


def dimension_table(report: Report, keys: Collection[str] | None = None) -> Table:
    """One row per latent dimension; columns with no value in any dimension are left out.

    Args:
        report: The report.
        keys: Show only these columns (``dimensions[d]`` keys of :func:`dimension_columns`,
            in that order); default all. The terminal shows a subset.
    """
    columns = [c for c in dimension_columns() if keys is None or c.key in keys]
    columns = [c for c in columns
               if any(isinstance(d, dict) and d.get(c.key) is not None for d in report.dimensions)]
    raw = [[d.get(DK.index, i) if isinstance(d, dict) else i]
           + [d.get(c.key) if isinstance(d, dict) else None for c in columns]
           for i, d in enumerate(report.dimensions)]
    table = _table(["dim"] + [c.header for c in columns], raw,
                   [lambda v: f"z{v}"] + [_COLUMN_FORMATTERS[c.format] for c in columns])
    return table._replace(sortable=True)


#: Title and caption of the documents' table of each group of per-dimension columns
#: (``DimensionColumn.group``, :data:`~collapse_diag.diagnostics.spec.COLUMN_GROUPS`), in the
#: order they are shown; the ``lead`` columns open every table instead of one of their own.
DIMENSION_GROUPS: dict[str, tuple[str, str]] = {
    "encoder": ("What the encoder puts in z",
                "How much each dimension tells about its input (KL and MI in nats; an MI "
                "estimate below 0 is noise and reads ≈ 0) and how its posterior varies from "
                "input to input."),
    "decoder": ("What the decoder does with z",
                "How much worse the decoder explains an input when this dimension alone comes "
                "from another input's z (swap delta, nats; 0: the decoder ignores it). Where "
                "shown, the decision interval against the negligible threshold decides used, "
                "ignored or undetermined."),
    "why": ("Identifiability and cause",
            "Fisher: how sharply the likelihood pins the dimension down (its diagonal of the "
            "Fisher information; flat: not at all). KL of q*: the KL of the decoder's own "
            "best posterior, beside the encoder's KL; cause: why an unused dimension is "
            "unused (docs/statuses.md)."),
}


def dimension_tables(report: Report) -> list[Table]:
    """:func:`dimension_table` split into one table per group of columns (those with a value).

    Each opens with the dimension and its ``lead`` columns (the status), then the columns of
    its group (:data:`DIMENSION_GROUPS`); a group none of whose columns has a value is left
    out. Every other column is in exactly one of them.
    """
    columns = dimension_columns()
    lead = [c.key for c in columns if c.group == "lead"]
    opening = len(dimension_table(report, lead).headers)  # the dimension and its status
    tables = []
    for group, (title, caption) in DIMENSION_GROUPS.items():
        table = dimension_table(report, lead + [c.key for c in columns if c.group == group])
        if len(table.headers) > opening:
            tables.append(table._replace(title=title, caption=caption))
    return tables


def summary_rows() -> list[SummaryRow]:
    """Every key-figures row of the specs, in display order (the verdict first)."""
    return [row for spec in display_order() for row in spec.summary_rows]


def summary_cell(report: Report, row: SummaryRow) -> str | None:
    """The formatted value of ``row`` in ``report``, or ``None`` when it was not computed."""
    value = report.summary.get(row.key)
    if value is None or (row.format in _NUMERIC_ROWS and finite(value) is None):
        return None
    return _ROW_FORMATTERS[row.format](report, row)


def summary_table(report: Report) -> Table:
    """The model-level figures that were computed: each spec's rows (:func:`summary_rows`)."""
    cells = [[row.label, summary_cell(report, row)] for row in summary_rows()]
    kept = [[label, value] for label, value in cells if value is not None]
    return Table(["figure", "value"], kept, [[a, b] for a, b in kept])


def settings_table(report: Report) -> Table:
    """Every setting of the run, as stored in report.json."""
    raw = [[name, value] for name, value in (report.settings or {}).items()]
    return _table(["setting", "value"], raw, [str, lambda v: "none" if v is None else _text(v)])


def _flatten(prefix: str, value: Any) -> list[list[Any]]:
    if isinstance(value, dict):
        return [row for key, sub in value.items() for row in _flatten(f"{prefix}{key}.", sub)]
    return [[prefix[:-1], value]]


def provenance_table(report: Report) -> Table:
    """How the report was produced: checkpoint, seed, versions, model, data, time."""
    checkpoint = report.checkpoint or {}
    raw = [
        ["checkpoint", checkpoint.get("path", "none (library use)")],
        ["checkpoint sha256", checkpoint.get("sha256")],
        ["seed", (report.settings or {}).get("seed")],
        ["inputs analysed (N)", report.n_examples],
        ["latent dimensions (D)", report.latent_dim],
        ["collapse-diag version", report.collapse_diag_version],
        ["report schema version", report.schema_version],
        *_flatten("", report.provenance or {}),
    ]
    return _table(["item", "value"], raw, [str, _text])


def probes_table(report: Report) -> Table | None:
    """Linear probes of known factors from a sampled z (and from mu(x)), or ``None`` when none.

    A factor that could not be probed (``summary.probes_skipped``) gets a row with its reason.
    """
    probes = report.summary.get(SK.probes)
    skipped = report.summary.get(SK.probes_skipped)
    probes = probes if isinstance(probes, dict) else {}
    skipped = skipped if isinstance(skipped, dict) else {}
    if not probes and not skipped:
        return None
    raw = [[factor, p.get(PRK.accuracy), p.get(PRK.accuracy_mu), p.get(PRK.baseline),
            [f"z{i}" for i in p.get(PRK.dimensions) or []]]
           for factor, p in sorted(probes.items()) if isinstance(p, dict)]
    raw += [[factor, None, None, None, f"not probed: {reason}"]
            for factor, reason in sorted(skipped.items())]
    return _table(["factor", "accuracy from z", "accuracy from mu(x)", "baseline",
                   "dimensions used"], raw, [str, fmt_num, fmt_num, fmt_num, _text])


def errors_table(report: Report) -> Table | None:
    """Diagnostics that failed and their messages, or ``None`` when none failed."""
    if not report.errors:
        return None
    return _table(["diagnostic", "message"], [[k, v] for k, v in sorted(report.errors.items())],
                  [str, str])


def upper_first(text: str) -> str:
    """``text`` with its first letter in upper case.

    (str.capitalize lowers all the others: "Fisher" would read "fisher".)
    """
    return text[:1].upper() + text[1:]
