"""Plain-text summaries of a Report for the terminal."""

from __future__ import annotations

from collapse_diag.render import tables
from collapse_diag.render.tables import text_table
from collapse_diag.report import Report

__all__ = ["dimension_table", "summary_line"]

#: The per-dimension columns the terminal shows, of those the report documents define
#: (collapse_diag/render/tables.py: header and format of each).
_KEYS = ("status", "signal", "kl", "kl_collapse_rate", "mu_variance", "posterior_variance",
         "mutual_information", "swap_delta", "swap_ci", "fisher")


def dimension_table(report: Report) -> str:
    """Fixed-width table, one row per latent dimension, of the columns the report has."""
    table = tables.dimension_table(report, keys=_KEYS)
    return text_table([table.headers, *table.rows], align_right=True)


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
