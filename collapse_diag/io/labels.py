"""Known factors from a file (``--labels FILE``) and which labels an analysis uses.

Formats of a labels file, one integer class index per analysed input, in the
order of the inputs:

* ``.pt``: a dict name -> integer Tensor ``[n]`` (read with ``weights_only=True``);
* ``.npz``: one integer array ``(n,)`` per name;
* ``.npy``: one array ``(n,)`` (the factor is named after the file), or a
  structured array whose fields are the factors;
* ``.csv`` / ``.tsv``: a header row of names, then one row per input
  (comma- / tab-separated values);
* ``.jsonl``: one JSON object per input, its keys the factors.

``FILE:name1,name2`` keeps only the named factors (e.g. ``train.jsonl:label``
from a file that also holds the text). Class values may be integers or strings:
a factor whose values are all strings is encoded as class indices in sorted
order, and the encoding is recorded with the labels' provenance; a factor
mixing integers and other values is refused (a typo, most likely). Every factor
then goes through :func:`collapse_diag.io.data.validate_labels` (1-D, integers,
one value per input).

Which labels ``analyze`` uses (:func:`resolve_labels`): labels given
explicitly (a dict or a file) win; otherwise a checkpoint's stored labels are
used with its stored inputs, and with inputs given instead (``--data``) only
when the numbers of inputs match. The choice is recorded, in words, in
``provenance.labels`` of the report.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from collapse_diag.exceptions import DataError
from collapse_diag.io.data import check_tensor, validate_labels
from collapse_diag.io.files import (
    MAX_CONFIG_BYTES,
    check_zip_sizes,
    display_path,
    read_text_limited,
    require_regular_file,
    split_field_selector,
)
from collapse_diag.io.torch_files import read_torch_file

__all__ = ["LABEL_SUFFIXES", "load_labels", "read_labels", "resolve_labels"]

#: Extensions a labels file may have.
LABEL_SUFFIXES = (".pt", ".npz", ".npy", ".csv", ".tsv", ".jsonl")
_SHOWN_CLASSES = 4  # classes named in an encoding note


def _read_table(path: Path, delimiter: str) -> dict[str, list[str]]:
    shown = display_path(path)
    text = read_text_limited(path, "labels file", MAX_CONFIG_BYTES * 4, DataError)
    rows = [r for r in csv.reader(io.StringIO(text), delimiter=delimiter) if any(c.strip()
                                                                                   for c in r)]
    if len(rows) < 2:
        raise DataError(f"labels file {shown!r} needs a header row of factor names and one row "
                        "per input.")
    names = [c.strip() for c in rows[0]]
    columns: list[list[str]] = [[] for _ in names]
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(names):
            raise DataError(f"labels file {shown!r}, line {line}: {len(row)} values for "
                            f"{len(names)} names {names}.")
        for column, cell in zip(columns, row):
            column.append(cell.strip())
    return dict(zip(names, columns))


def _read_jsonl(path: Path) -> dict[str, list[Any]]:
    shown = display_path(path)
    text = read_text_limited(path, "labels file", MAX_CONFIG_BYTES * 4, DataError)
    columns: dict[str, list[Any]] = {}
    lines = [(i, line) for i, line in enumerate(text.splitlines(), 1) if line.strip()]
    for number, line in lines:
        try:
            record = json.loads(line)
        except (ValueError, RecursionError) as err:
            raise DataError(f"labels file {shown!r}, line {number}: not JSON ({err}).") from err
        if not isinstance(record, dict) or (columns and set(record) != set(columns)):
            raise DataError(f"labels file {shown!r}, line {number}: every line must be a JSON "
                            f"object with the same keys{f' {sorted(columns)}' if columns else ''}.")
        for key, value in record.items():
            columns.setdefault(str(key), []).append(value)
    return columns


def _encode(name: str, values: Any, where: str) -> tuple[Any, str | None]:
    """Integer classes as they are; all-string classes as indices in sorted order, with a note.

    Raises:
        DataError: integers mixed with other values, or values that are neither.
    """
    if isinstance(values, torch.Tensor):
        check_tensor(values, f"{where}: factor {name!r}")
    items = values.tolist() if hasattr(values, "tolist") else values
    if not isinstance(items, list) or not items:
        return values, None
    if all(isinstance(v, str) for v in items):
        as_int = [_int(v) for v in items]
        if all(v is not None for v in as_int):
            return _int64(as_int, name, where), None
        if any(v is not None for v in as_int):
            bad = next(i for i, v in enumerate(as_int) if v is None)
            raise DataError(f"{where}: factor {name!r} mixes integers and text (input {bad}: "
                            f"{items[bad]!r}); encode each factor's values as class indices "
                            "0, 1, 2, ..., or give every class as text.")
        classes = sorted(set(items))
        index = {c: i for i, c in enumerate(classes)}
        shown = ", ".join(f"{i} = {c!r}" for i, c in enumerate(classes[:_SHOWN_CLASSES]))
        more = f", ... ({len(classes)} classes)" if len(classes) > _SHOWN_CLASSES else ""
        return (np.asarray([index[v] for v in items], dtype=np.int64),
                f"{name}: text classes encoded {shown}{more}")
    if all(isinstance(v, bool) for v in items):
        return values, None  # refused as bool by validate_labels
    if all(isinstance(v, int) for v in items):
        return _int64(items, name, where), None
    return values, None  # validate_labels names the dtype


def _int64(items: list[int], name: str, where: str) -> np.ndarray:
    """Integer classes as int64; a value outside its range is refused (DataError)."""
    info = np.iinfo(np.int64)
    bad = next((i for i, v in enumerate(items) if not info.min <= v <= info.max), None)
    if bad is not None:
        raise DataError(f"{where}: factor {name!r} has the value {items[bad]} (input {bad}), "
                        "too large for a 64-bit integer; encode each factor's values as class "
                        "indices 0, 1, 2, ... (or as text).")
    return np.asarray(items, dtype=np.int64)


def _int(text: str) -> int | None:
    try:
        return int(text.strip())
    except ValueError:
        return None


def load_labels(path: str | os.PathLike, n: int) -> dict[str, np.ndarray]:
    """Read known factors from a labels file (formats: module docstring).

    Args:
        path: The labels file, optionally ``FILE:name1,name2``.
        n: Number of inputs the labels belong to.

    Returns:
        Name -> integer array ``(n,)``.

    Raises:
        DataError: missing/unreadable file, unknown extension or field, or labels that
            are not classes with one value per input.
    """
    return read_labels(path, n)[0]


def read_labels(path: str | os.PathLike, n: int) -> tuple[dict[str, np.ndarray], list[str]]:
    """:func:`load_labels`, and one note per factor whose text classes were encoded."""
    path, fields = split_field_selector(path)
    path = require_regular_file(path, "labels file", DataError, " (the --labels option)")
    shown = display_path(path)
    suffix = path.suffix.lower()
    if suffix not in LABEL_SUFFIXES:
        raise DataError(f"labels file {shown!r} has extension {suffix!r}: use "
                        f"{', '.join(LABEL_SUFFIXES)}.")
    if suffix in (".csv", ".tsv"):
        raw: Any = _read_table(path, "," if suffix == ".csv" else "\t")
    elif suffix == ".jsonl":
        raw = _read_jsonl(path)
    else:
        check_zip_sizes(path, "labels file", DataError)
        try:
            if suffix == ".pt":
                raw = read_torch_file(path, "labels file", False, DataError)
            elif suffix == ".npy":
                array = np.load(path, allow_pickle=False)
                raw = ({f: array[f] for f in array.dtype.names} if array.dtype.names
                       else {path.stem: array})
            else:
                with np.load(path, allow_pickle=False) as archive:
                    raw = {k: archive[k] for k in archive.files}
        except DataError:
            raise
        except Exception as err:  # noqa: BLE001 - any reader failure is one message
            raise DataError(f"cannot read labels file {shown!r}: {type(err).__name__}: "
                            f"{str(err).splitlines()[0] if str(err) else ''}") from err
    if not isinstance(raw, Mapping) or not raw:
        raise DataError(f"labels file {shown!r} must hold a non-empty dict of name -> integer "
                        f"values; got {type(raw).__name__}.")
    if fields is not None:
        missing = [f for f in fields if f not in raw]
        if missing or not fields:
            raise DataError(f"labels file {shown!r} has no factor {missing or fields}: it "
                            f"holds {sorted(map(str, raw))}.")
        raw = {f: raw[f] for f in fields}
    encoded, notes = {}, []
    for name, values in raw.items():
        encoded[name], note = _encode(str(name), values, f"labels file {shown!r}")
        if note:
            notes.append(note)
    try:
        return validate_labels(encoded, n), notes
    except DataError as err:
        raise DataError(f"labels file {shown!r}: {err}") from err


def resolve_labels(given: Mapping[str, Any] | str | os.PathLike | None,
                   stored: Mapping[str, Any] | None, n: int,
                   data_given: bool) -> tuple[Mapping[str, Any] | None, str]:
    """The labels an analysis of ``n`` inputs uses, and a sentence saying which.

    Args:
        given: Labels passed explicitly: a dict, or a labels file path.
        stored: The checkpoint's stored labels, if any.
        n: Number of inputs analysed (before ``max_examples``).
        data_given: Inputs were given instead of the checkpoint's stored ones.

    Returns:
        ``(labels or None, note)``.
    """
    if isinstance(given, (str, os.PathLike)):
        labels, notes = read_labels(given, n)
        return labels, f"from the labels file {display_path(given)!r}" + "".join(
            f"; {note}" for note in notes)
    if given is not None:
        return given, "passed to analyze"
    if not stored:
        return None, "none"
    size = len(next(iter(stored.values())))
    if not data_given:
        return stored, "stored in the checkpoint"
    if size == n:
        return stored, (f"stored in the checkpoint, kept with the inputs given instead (--data): "
                        f"both hold {n} inputs")
    return None, (f"none: the checkpoint's labels are for {size} inputs, the inputs given "
                  f"(--data) are {n}; pass --labels FILE")
