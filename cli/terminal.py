"""Plain-text summaries of a Report for the terminal."""

from __future__ import annotations

from typing import Any

from collapse_diag.render.tables import text_table
from collapse_diag.report import Report

__all__ = ["dimension_table", "summary_line"]

_COLUMNS = (
    ("dim", "index", "d"),
    ("status", "status", "s"),
    ("signal", "signal", "s"),
    ("KL", "kl", ".3f"),
    ("KL<eps", "kl_collapse_rate", ".2f"),
    ("Var[mu]", "mu_variance", ".3g"),
    ("E[s^2]", "posterior_variance", ".3g"),
    ("MI", "mutual_information", ".3f"),
    ("swap", "swap_delta", ".3f"),
    ("swap interval", "swap_ci", "interval"),
    ("fisher", "fisher", ".3g"),
)


def _cell(value: Any, spec: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if spec == "interval":
        if not isinstance(value, list) or len(value) != 2 or None in value:
            return "-"
        return f"[{value[0]:.3f}, {value[1]:.3f}]"
    return format(value, spec)


def dimension_table(report: Report) -> str:
    """Fixed-width table, one row per latent dimension, of the columns the report has."""
    columns = [c for c in _COLUMNS if any(c[1] in row for row in report.dimensions)]
    rows = [[title for title, _, _ in columns]]
    rows += [[_cell(row.get(key), spec) for _, key, spec in columns] for row in report.dimensions]
    return text_table(rows, align_right=True)


def summary_line(report: Report, name: str = "") -> str:
    """One line: verdict, unit counts and the headline figures."""
    s = report.summary
    parts = [f"{name}: " if name else ""]
    parts.append(f"verdict {s.get('verdict', 'n/a')}")
    counts = s.get("status_counts") or {}
    if counts:
        parts.append(" | " + ", ".join(f"{v} {k}" for k, v in counts.items() if v))
    parts.append(f" | {report.latent_dim} dims, {report.n_examples} inputs")
    for label, key, spec in (("KL", "kl", ".3f"), ("MI", "mutual_information", ".3f"),
                             ("active units", "active_units", "d"),
                             ("swap delta", "swap_delta", ".3f")):
        if s.get(key) is not None:
            parts.append(f" | {label} {format(s[key], spec)}")
    if report.errors:
        parts.append(f" | FAILED: {', '.join(report.errors)}")
    return "".join(parts)
