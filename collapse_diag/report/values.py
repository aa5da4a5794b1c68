"""Null-safe access to the figures of a :class:`~collapse_diag.report.report.Report`.

Any figure of a report may be missing (a diagnostic failed or was disabled),
null, or non-finite. These accessors turn that into ``None`` / NaN once, for
the plots, the tables and the explanation alike.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from collapse_diag.config.settings import Settings
from collapse_diag.report.report import Report
from collapse_diag.report.schema import DIMENSION_KEY as DK
from collapse_diag.report.schema import STATUSES
from collapse_diag.report.schema import SUMMARY_KEY as SK

__all__ = [
    "STATUS_ORDER",
    "dim_column",
    "dim_labels",
    "dim_statuses",
    "finite",
    "finite_values",
    "setting",
    "status_counts",
]

#: Display order of the per-dimension statuses (``unknown``: no status computed).
STATUS_ORDER = (*STATUSES, "unknown")
_DEFAULTS = Settings().to_dict()


def finite(value: Any) -> float | None:
    """``value`` as a finite float, or ``None`` (null, NaN, Inf, bool or not a number)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None


def setting(report: Report, name: str) -> Any:
    """A setting of the run, falling back to its documented default when absent."""
    value = (report.settings or {}).get(name)
    return _DEFAULTS.get(name) if value is None else value


def finite_values(values: Any) -> np.ndarray:
    """The finite numbers of a JSON list (nulls, NaN and Inf dropped) as float64."""
    out = np.array([finite(v) for v in values or []], dtype=float)
    return out[np.isfinite(out)]


def dim_column(report: Report, key: str) -> np.ndarray:
    """Per-dimension values of ``key`` as float64, shape ``(latent_dim,)``; NaN where missing."""
    return np.array([finite(d.get(key)) if isinstance(d, dict) else None
                     for d in report.dimensions], dtype=float)


def dim_labels(report: Report) -> list[str]:
    """Names ``z0``, ``z1``, ... of the dimensions, in report order."""
    return [f"z{d.get(DK.index, i) if isinstance(d, dict) else i}"
            for i, d in enumerate(report.dimensions)]


def dim_statuses(report: Report) -> list[str]:
    """Status of each dimension; ``"unknown"`` where none was computed."""
    return [d.get(DK.status) if isinstance(d, dict) and d.get(DK.status) in STATUS_ORDER
            else "unknown" for d in report.dimensions]


def status_counts(report: Report) -> dict[str, int]:
    """Dimensions per status, from ``summary.status_counts`` or else counted; ``{}`` if none."""
    counts = report.summary.get(SK.status_counts)
    if isinstance(counts, dict) and counts:
        return {k: int(v) for k, v in counts.items() if finite(v) is not None}
    statuses = [s for s in dim_statuses(report) if s != "unknown"]
    return {s: statuses.count(s) for s in STATUS_ORDER if s in statuses}
