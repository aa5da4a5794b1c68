"""The :class:`Report`: every figure of one analysis, in the shape of report.json.

Diagnostics return small frozen dataclasses; each exposes :meth:`section`
giving a :class:`ReportSection` (summary fields, per-dimension columns,
per-input distributions). ``analyze`` merges the sections into a Report.
Writers (JSON, Markdown, HTML, plots) read a Report and nothing else, and a
Report can be rebuilt from report.json, so documents re-render without the model.

The schema is documented field by field in docs/report-schema.md. Schema
version 2 renamed the status ``active`` to ``used`` (and added ``ignored`` /
``undetermined`` by interval, ``signal``, graded identifiability); version 1
reports are still read, their ``active`` statuses read as ``used``
(:func:`upgrade_payload`).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

import numpy as np

from collapse_diag.config.limits import (
    MAX_REPORT_BYTES,
    check_json_text,
    check_latent_dim,
    check_nesting,
)
from collapse_diag.exceptions import DataError
from collapse_diag.io.files import display_path
from collapse_diag.report.schema import DIMENSION_KEY as D
from collapse_diag.report.schema import PROVENANCE_KEY as P
from collapse_diag.report.schema import RENAMED_STATUSES, TOP_LEVEL
from collapse_diag.report.schema import SUMMARY_KEY as S
from collapse_diag.report.schema import TOP_LEVEL_KEY as T

__all__ = ["SCHEMA_VERSION", "READABLE_VERSIONS", "Report", "ReportSection", "to_jsonable",
           "upgrade_payload", "write_text_atomic"]

SCHEMA_VERSION = 2
#: Schema versions :meth:`Report.from_dict` reads.
READABLE_VERSIONS = (1, 2)


def upgrade_payload(payload: dict[str, Any]) -> dict[str, Any]:
    """A version 1 report.json dict in version 2 form (a copy; version 2 is returned as is).

    Version 1 called ``used`` ``active``: every ``dimensions[d].status`` and
    ``summary.status_counts`` key ``active`` becomes ``used``, and
    ``provenance.upgraded_from_schema`` records the original version.
    """
    if payload.get(T.schema_version) != 1:
        return payload
    out = dict(payload)
    out[T.dimensions] = [
        {**row, D.status: RENAMED_STATUSES[row[D.status]]}
        if isinstance(row, dict) and row.get(D.status) in RENAMED_STATUSES
        else row for row in payload.get(T.dimensions) or []
    ]
    summary = dict(payload.get(T.summary) or {})
    counts = summary.get(S.status_counts)
    if isinstance(counts, dict):
        summary[S.status_counts] = {RENAMED_STATUSES.get(k, k): v for k, v in counts.items()}
    out[T.summary] = summary
    out[T.provenance] = {**(payload.get(T.provenance) or {}), P.upgraded_from_schema: 1}
    out[T.schema_version] = SCHEMA_VERSION
    return out


#: The JSON type of each top-level value of report.json (``None``: may be null).
_SHAPES: dict[str, tuple[type, ...]] = {
    T.n_examples: (int,), T.latent_dim: (int,), T.summary: (dict,), T.dimensions: (list,),
    T.settings: (dict,), T.checkpoint: (dict, type(None)), T.provenance: (dict,),
    T.distributions: (dict,), T.errors: (dict,), T.warnings: (list,), T.timings: (dict,),
    T.collapse_diag_version: (str,),
}


def check_shape(payload: Mapping[str, Any]) -> None:
    """Refuse a report dict whose values have the wrong JSON type (a hand-edited report.json).

    Raises:
        DataError: naming the first key of the wrong type, or the bound exceeded.
    """
    for key, types in _SHAPES.items():
        value = payload.get(key)
        if key in payload and (not isinstance(value, types) or isinstance(value, bool)):
            names = " or ".join("null" if t is type(None) else _JSON_NAMES[t] for t in types)
            raise DataError(f"report.json: '{key}' must be {names}; got "
                            f"{_JSON_NAMES.get(type(value), type(value).__name__)}. Rewrite it "
                            "with `collapse-diag analyze`.")
    rows = payload[T.dimensions]
    bad = next((i for i, row in enumerate(rows) if not isinstance(row, dict)), None)
    if bad is not None:
        raise DataError(f"report.json: dimensions[{bad}] must be an object (one row per latent "
                        "dimension). Rewrite it with `collapse-diag analyze`.")
    check_latent_dim(max(payload[T.latent_dim], len(rows)), "report.json")
    check_nesting(payload, "report.json", max_values=MAX_REPORT_BYTES)  # bytes bound values


_JSON_NAMES = {dict: "an object", list: "a list", str: "a string", int: "an integer",
               float: "a number", bool: "true/false", type(None): "null"}


class ReportSection(NamedTuple):
    """What one diagnostic adds to the report; every part is optional (read, never mutated).

    Attributes:
        summary: Model-level fields, merged into ``report.summary``.
        dimensions: Column name -> list of ``latent_dim`` values, merged into
            ``report.dimensions[d]``.
        distributions: Name -> list of per-input (or per-sample) values kept for
            plots, merged into ``report.distributions``.
    """

    summary: Mapping[str, Any] = MappingProxyType({})
    dimensions: Mapping[str, list[Any]] = MappingProxyType({})
    distributions: Mapping[str, list[Any]] = MappingProxyType({})


def to_jsonable(value: Any) -> Any:
    """Convert numpy / torch scalars and arrays, tuples and NaN to plain JSON values.

    NaN and +-Inf become ``None`` (JSON has no NaN); floats are kept at full precision.
    """
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if hasattr(value, "tolist") and hasattr(value, "dtype"):  # numpy / torch scalar or tensor
        return to_jsonable(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    return value


@dataclass
class Report:
    """All figures of one analysis run (the content of report.json).

    Attributes:
        n_examples: Number of analysed inputs N.
        latent_dim: Size D of z.
        summary: Model-level figures (see docs/report-schema.md).
        dimensions: One dict per latent dimension, ``index`` first.
        settings: Every setting used (thresholds, seed, sample counts).
        checkpoint: ``{"path", "sha256"}`` of the analysed file, or ``None`` in library use.
        provenance: How the report was produced: versions, model class, data hash, time.
        distributions: Per-input values kept for plots (e.g. ``swap_delta``).
        errors: Diagnostic name -> one-line message for each diagnostic that failed.
        warnings: Report invariants the figures break (collapse_diag/report/invariants.py),
            one line each; shown at the top of the Markdown / HTML documents.
        timings: Diagnostic name -> seconds (the only non-deterministic figures
            besides ``provenance.created``).
        schema_version: Version of this schema.
        collapse_diag_version: Version of collapse-diag that produced the report.
    """

    n_examples: int
    latent_dim: int
    summary: dict[str, Any]
    dimensions: list[dict[str, Any]]
    settings: dict[str, Any] = field(default_factory=dict)
    checkpoint: dict[str, Any] | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    distributions: dict[str, list[Any]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION
    collapse_diag_version: str = ""

    _ORDER = tuple(TOP_LEVEL)

    def __post_init__(self) -> None:
        if not self.collapse_diag_version:
            from collapse_diag._version import __version__

            self.collapse_diag_version = __version__

    @property
    def verdict(self) -> str | None:
        """The overall verdict (``healthy``/``partial``/``collapsed``), if computed."""
        return self.summary.get(S.verdict)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON dict in the documented key order (NaN -> null)."""
        raw = asdict(self)
        return to_jsonable({key: raw[key] for key in self._ORDER})

    def to_json(self, indent: int | None = 2) -> str:
        """report.json text: deterministic for the same inputs, apart from timings/time."""
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False) + "\n"

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> Report:
        """Rebuild a Report from the dict form (e.g. a parsed report.json).

        Raises:
            DataError: the dict is not a collapse-diag report of a known schema version, or
                a value has the wrong shape (a list where an object belongs, rows that are
                not objects, nesting deeper than MAX_NESTING, more than MAX_LATENT_DIM rows).
        """
        if not isinstance(payload, dict) or T.schema_version not in payload:
            raise DataError("this is not a collapse-diag report.json (no 'schema_version').")
        if payload[T.schema_version] not in READABLE_VERSIONS:
            raise DataError(
                f"report.json has schema_version {payload[T.schema_version]!r}; this version "
                f"of collapse-diag reads versions {list(READABLE_VERSIONS)}."
            )
        missing = [k for k in (T.n_examples, T.latent_dim, T.summary, T.dimensions)
                   if k not in payload]
        if missing:
            raise DataError(f"report.json lacks the required key(s) {missing}.")
        check_shape(payload)
        payload = upgrade_payload(payload)
        known = set(cls._ORDER)
        return cls(**{k: v for k, v in payload.items() if k in known})

    @classmethod
    def from_json(cls, path: str | Path) -> Report:
        """Read a report.json file.

        Raises:
            DataError: missing, unreadable, not a regular file, over MAX_REPORT_BYTES,
                or not a report.
        """
        from collapse_diag.io.files import read_text_limited

        path = Path(path)
        if not os.path.lexists(path):
            raise DataError(
                f"{display_path(path)!r} does not exist: run `collapse-diag analyze` first."
            )
        text = read_text_limited(path, "report", MAX_REPORT_BYTES, DataError)
        check_json_text(text, f"report {display_path(path)!r}")
        try:
            payload = json.loads(text)
        except ValueError as err:
            raise DataError(f"cannot read report {display_path(path)!r}: {err}") from err
        return cls.from_dict(payload)

    def write_json(self, path: str | Path) -> Path:
        """Write report.json atomically (temporary file, then rename)."""
        return write_text_atomic(path, self.to_json())


def write_text_atomic(path: str | Path, text: str | bytes) -> Path:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename.

    A reader never sees a half-written file, and an existing file is replaced
    only once the new one is complete.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode("utf-8") if isinstance(text, str) else text
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the usual file mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
