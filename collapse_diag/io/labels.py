"""Known factors from a file (``--labels FILE``) and which labels an analysis uses.

Formats of a labels file, one integer class index per analysed input, in the
order of the inputs:

* ``.pt``: a dict name -> integer Tensor ``[n]`` (read with ``weights_only=True``);
* ``.npz``: one integer array ``(n,)`` per name;
* ``.csv`` / ``.tsv``: a header row of names, then one row per input
  (comma- / tab-separated integers).

Every factor goes through :func:`collapse_diag.io.data.validate_labels` (1-D,
integers, one value per input).

Which labels ``analyze`` uses (:func:`resolve_labels`): labels given
explicitly (a dict or a file) win; otherwise a checkpoint's stored labels are
used with its stored inputs, and with inputs given instead (``--data``) only
when the numbers of inputs match. The choice is recorded, in words, in
``provenance.labels`` of the report.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from collapse_diag.exceptions import DataError
from collapse_diag.io.data import validate_labels
from collapse_diag.io.files import (
    MAX_CONFIG_BYTES,
    check_zip_sizes,
    display_path,
    read_text_limited,
    require_regular_file,
)
from collapse_diag.io.torch_files import read_torch_file

__all__ = ["LABEL_SUFFIXES", "load_labels", "resolve_labels"]

#: Extensions a labels file may have.
LABEL_SUFFIXES = (".pt", ".npz", ".csv", ".tsv")


def _read_table(path: Path, delimiter: str) -> dict[str, np.ndarray]:
    shown = display_path(path)
    text = read_text_limited(path, "labels file", MAX_CONFIG_BYTES * 4, DataError)
    rows = [r for r in csv.reader(io.StringIO(text), delimiter=delimiter) if any(c.strip()
                                                                                   for c in r)]
    if len(rows) < 2:
        raise DataError(f"labels file {shown!r} needs a header row of factor names and one row "
                        "per input.")
    names = [c.strip() for c in rows[0]]
    columns: list[list[int]] = [[] for _ in names]
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(names):
            raise DataError(f"labels file {shown!r}, line {line}: {len(row)} values for "
                            f"{len(names)} names {names}.")
        for column, cell in zip(columns, row):
            try:
                column.append(int(cell.strip()))
            except ValueError:
                raise DataError(
                    f"labels file {shown!r}, line {line}: {cell.strip()!r} is not an integer; "
                    "encode each factor's values as class indices 0, 1, 2, ..."
                ) from None
    return {name: np.asarray(column, dtype=np.int64) for name, column in zip(names, columns)}


def load_labels(path: str | os.PathLike, n: int) -> dict[str, np.ndarray]:
    """Read known factors from a ``.pt`` / ``.npz`` / ``.csv`` / ``.tsv`` file.

    Args:
        path: The labels file.
        n: Number of inputs the labels belong to.

    Returns:
        Name -> integer array ``(n,)``.

    Raises:
        DataError: missing/unreadable file, unknown extension, or labels that are not
            1-D integers with one value per input.
    """
    path = require_regular_file(path, "labels file", DataError, " (the --labels option)")
    shown = display_path(path)
    suffix = path.suffix.lower()
    if suffix not in LABEL_SUFFIXES:
        raise DataError(f"labels file {shown!r} has extension {suffix!r}: use "
                        f"{', '.join(LABEL_SUFFIXES)}.")
    if suffix in (".csv", ".tsv"):
        raw: Any = _read_table(path, "," if suffix == ".csv" else "\t")
    else:
        check_zip_sizes(path, "labels file", DataError)
        try:
            if suffix == ".pt":
                raw = read_torch_file(path, "labels file", False, DataError)
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
    try:
        return validate_labels(raw, n)
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
        return load_labels(given, n), f"from the labels file {display_path(given)!r}"
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
