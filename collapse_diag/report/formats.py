"""The document formats the writers know, defined once.

Kept apart from collapse_diag/render/ (which imports matplotlib) so that the CLI
can validate ``--format`` without loading the renderers.
"""

from __future__ import annotations

__all__ = ["COMPARISON_FORMATS", "REPORT_FORMATS"]

#: ``write_report`` / ``analyze --format`` / ``render --format``, in the order written.
REPORT_FORMATS = ("json", "md", "html")

#: ``write_comparison`` / ``compare --format``, in the order written.
COMPARISON_FORMATS = ("json", "md", "html", "csv", "tex")
