"""Evaluation inputs: loading them and slicing them along the example axis.

A batch ``x`` is whatever the model takes: a Tensor, or a dict of Tensors that
share their first dimension. The toolkit only ever indexes and repeats
``x`` along dimension 0; these helpers are the only place that
knows about the two shapes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from collapse_diag.exceptions import DataError, ProtocolError
from collapse_diag.io.files import (
    check_zip_sizes,
    display_path,
    require_regular_file,
    split_field_selector,
)
from collapse_diag.io.torch_files import read_torch_file

__all__ = [
    "Batch",
    "check_tensor",
    "validate_data",
    "num_examples",
    "take",
    "count_distinct",
    "repeat",
    "to_device",
    "load_data",
    "subsample_indices",
    "validate_labels",
]

Batch = torch.Tensor | dict[str, torch.Tensor]


#: numpy dtype kinds that are numbers a model can take: bool, (unsigned) int, float, complex.
_NUMERIC_KINDS = "biufc"


def _from_numpy(array: np.ndarray, source: str) -> torch.Tensor:
    """A numpy array as a Tensor: numbers only, converted to native byte order."""
    if array.dtype.kind not in _NUMERIC_KINDS or array.dtype.fields is not None:
        raise DataError(
            f"{source} has numpy dtype {array.dtype.str!r} ({array.dtype.name}), which is not "
            "numbers: store bool, integer or floating-point arrays (no strings, dates, "
            "objects or structured records)."
        )
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    try:
        return torch.from_numpy(np.ascontiguousarray(array))
    except (TypeError, ValueError, RuntimeError) as err:
        raise DataError(f"{source} has numpy dtype {array.dtype.name}, which torch cannot "
                        f"hold ({err}): convert it to float32 or int64.") from err


def _check_npy_size(path: Path, source: str) -> None:
    """Refuse an .npy file whose header claims more bytes than the file holds."""
    with open(path, "rb") as handle:
        try:
            fmt = np.lib.format
            major, _ = fmt.read_magic(handle)
            read_header = fmt.read_array_header_1_0 if major == 1 else fmt.read_array_header_2_0
            shape, _, dtype = read_header(handle)
        except Exception:  # noqa: BLE001 - np.load reports a damaged header precisely
            return
        if dtype.hasobject:
            return  # np.load(allow_pickle=False) refuses it with a clear message
        claimed = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
        available = path.stat().st_size - handle.tell()
    if claimed > available:
        raise DataError(
            f"{source} is truncated: its header claims shape {tuple(shape)} of {dtype.name} "
            f"({claimed} bytes) but only {available} bytes follow."
        )


def check_tensor(t: torch.Tensor, source: str) -> torch.Tensor:
    """Refuse a Tensor without ordinary values: sparse, nested, meta, or rows sharing memory.

    A meta tensor has a shape and no values; a zero-stride view (``x.expand``) can
    claim 10^9 rows stored in a few bytes, which every copy would then allocate.

    Raises:
        DataError: naming ``source`` and the fix.
    """
    if t.layout != torch.strided or t.is_nested:
        raise DataError(f"{source} is a {str(t.layout).replace('torch.', '')}"
                        f"{' nested' if t.is_nested else ''} Tensor: pass a dense one "
                        "(x.to_dense()).")
    if t.device.type == "meta":
        raise DataError(f"{source} is a meta Tensor: it has a shape but no values. Save the "
                        "real Tensor.")
    if t.numel() and t.numel() * t.element_size() > t.untyped_storage().nbytes():
        raise DataError(f"{source} claims {t.numel()} values stored in "
                        f"{t.untyped_storage().nbytes()} bytes (a view with stride 0, such as "
                        "x.expand): its rows repeat each other. Save the distinct rows "
                        "(x.contiguous() on the ones you mean).")
    return t


def validate_data(x: Any, source: str = "the data") -> Batch:
    """Check that ``x`` is a non-empty Tensor or dict of Tensors sharing dimension 0.

    Numpy arrays are converted to Tensors.

    Args:
        x: Candidate inputs.
        source: Where they came from, for the error message.

    Returns:
        The inputs as a Tensor or a dict of Tensors.

    Raises:
        DataError: if the inputs are empty, of the wrong type, or their first
            dimensions disagree.
    """
    if isinstance(x, np.ndarray):
        x = _from_numpy(x, source)
    if isinstance(x, torch.Tensor):
        check_tensor(x, source)
        if x.dim() == 0 or x.shape[0] == 0:
            raise DataError(
                f"{source} holds no examples (shape {tuple(x.shape)}): "
                "pass at least one example along dimension 0."
            )
        return x
    if isinstance(x, Mapping):
        if not x:
            raise DataError(f"{source} is an empty dict: it must map names to Tensors.")
        out: dict[str, torch.Tensor] = {}
        for key, value in x.items():
            if isinstance(value, np.ndarray):
                value = _from_numpy(value, f"{source}[{key!r}]")
            if not isinstance(value, torch.Tensor) or value.dim() == 0:
                raise DataError(
                    f"{source}[{key!r}] is a {type(value).__name__}, not a Tensor with an "
                    "example dimension: every value of a data dict must be a Tensor."
                )
            out[str(key)] = check_tensor(value, f"{source}[{key!r}]")
        sizes = {k: v.shape[0] for k, v in out.items()}
        if len(set(sizes.values())) != 1:
            raise DataError(
                f"the Tensors of {source} disagree on the number of examples {sizes}: "
                "they must share their first dimension."
            )
        if next(iter(sizes.values())) == 0:
            raise DataError(f"{source} holds no examples: pass at least one.")
        return out
    raise DataError(
        f"{source} is a {type(x).__name__}: it must be a Tensor or a dict of Tensors."
    )


def validate_labels(labels: Mapping[str, Any], n: int) -> dict[str, np.ndarray]:
    """Check known factors: per name, a 1-D integer array with one value per input.

    Args:
        labels: Name -> array-like of class values.
        n: Number of inputs.

    Returns:
        Name -> integer numpy array ``(n,)``.

    Raises:
        DataError: a value is not 1-D, not of length ``n``, or not integers (floats
            and bools are refused: a factor's values are class indices).
    """
    if not isinstance(labels, Mapping):
        raise DataError(f"labels must be a dict of name -> integer array; got "
                        f"{type(labels).__name__}.")
    out = {}
    for name, values in labels.items():
        if isinstance(values, torch.Tensor):
            values = check_tensor(values, f"labels[{str(name)!r}]").detach().cpu().numpy()
        array = np.asarray(values)
        if array.dtype.kind not in "iu" or array.shape != (n,):
            raise DataError(
                f"labels[{str(name)!r}] must be a 1-D integer array with one value per input "
                f"({n}); got dtype {array.dtype.name}, shape {array.shape}. Encode each "
                "factor's values as class indices 0, 1, 2, ..."
            )
        out[str(name)] = array
    return out


def num_examples(x: Batch) -> int:
    """Number of examples in ``x`` (its size along dimension 0)."""
    if isinstance(x, torch.Tensor):
        return int(x.shape[0])
    return int(next(iter(x.values())).shape[0])


def take(x: Batch, index: slice | torch.Tensor | Sequence[int]) -> Batch:
    """Select examples of ``x`` along dimension 0 (a slice or integer indices)."""
    if not isinstance(index, slice) and not isinstance(index, torch.Tensor):
        index = torch.as_tensor(index, dtype=torch.long)
    if isinstance(x, torch.Tensor):
        return x[index]
    return {k: v[index] for k, v in x.items()}


def repeat(x: Batch, times: int) -> Batch:
    """Stack ``times`` copies of ``x`` along dimension 0: ``[x; x; ...; x]``.

    Used to pair one batch of inputs with several z variants in one decoder call.
    """
    if isinstance(x, torch.Tensor):
        return x.repeat(times, *([1] * (x.dim() - 1)))
    return {k: v.repeat(times, *([1] * (v.dim() - 1))) for k, v in x.items()}


def to_device(x: Batch, device: torch.device | str) -> Batch:
    """Move every Tensor of ``x`` to ``device``.

    To CUDA, a host Tensor is copied from pinned (page-locked) memory without blocking
    the host (the copy is ordered on the current stream before any use of it).
    """
    if torch.device(device).type != "cuda":
        return x.to(device) if isinstance(x, torch.Tensor) else {k: v.to(device)
                                                                  for k, v in x.items()}

    def move(t: torch.Tensor) -> torch.Tensor:
        if t.device.type != "cpu":
            return t.to(device)
        return t.pin_memory().to(device, non_blocking=True)

    return move(x) if isinstance(x, torch.Tensor) else {k: move(v) for k, v in x.items()}


def count_distinct(x: Batch) -> int:
    """How many inputs of ``x`` differ from every other (byte-equal rows count once).

    Every tensor's row is viewed as raw bytes (a dict's rows side by side) and the
    rows are compared with one vectorised ``np.unique``.
    """
    n = num_examples(x)
    if n == 0:
        return 0
    tensors = [x] if isinstance(x, torch.Tensor) else [x[k] for k in sorted(x)]
    rows = np.concatenate([np.ascontiguousarray(t.detach().cpu().reshape(n, -1).numpy())
                           .view(np.uint8).reshape(n, -1) for t in tensors], axis=1)
    if rows.shape[1] == 0:
        return 1
    return len(np.unique(np.ascontiguousarray(rows).view(np.dtype((np.void, rows.shape[1])))))


def subsample_indices(n: int, size: int | None, generator: torch.Generator) -> torch.Tensor:
    """Sorted, seeded random subset of ``range(n)`` of at most ``size`` indices.

    Args:
        n: Number of examples.
        size: Subset size; ``None`` or ``>= n`` keeps every index.
        generator: The run's seeded generator.

    Returns:
        LongTensor of shape ``(min(n, size),)``, sorted ascending.
    """
    if size is None or size >= n:
        return torch.arange(n)
    perm = torch.randperm(n, generator=generator)
    return torch.sort(perm[:size]).values


def load_data(path: str | Path, model: Any = None) -> Batch:
    """Read evaluation inputs from a file.

    Supported formats:
        * ``.pt``: a Tensor or dict of Tensors, read with ``torch.load(weights_only=True)``;
        * ``.npy``: one array; ``.npz``: a dict of arrays (one array becomes a Tensor);
        * ``.txt``: one example per line, turned into a batch by ``model.tokenize(lines)``;
        * ``.jsonl``: one JSON object per example; ``FILE.jsonl:field`` names the field
          holding the text (default ``text``), tokenized like ``.txt`` lines.

    Args:
        path: File to read (``FILE.jsonl:field`` for a JSONL file).
        model: The model, needed for ``.txt`` files (its ``tokenize`` method).

    Returns:
        The validated inputs.

    Raises:
        DataError: the file is missing, unreadable, empty or of an unknown type.
        ProtocolError: a ``.txt`` file was given and the model has no ``tokenize``.
    """
    path, fields = split_field_selector(path)
    path = require_regular_file(path, "data file", DataError, " (the --data option)")
    suffix = path.suffix.lower()
    source = f"data file {display_path(path)!r}"
    try:
        if suffix in (".pt", ".npz"):
            check_zip_sizes(path, "data file", DataError)
        if suffix == ".pt":
            x = read_torch_file(path, "data file", False, DataError)
        elif suffix == ".npy":
            _check_npy_size(path, source)
            x = np.load(path, allow_pickle=False)
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                arrays = {k: archive[k] for k in archive.files}
            x = next(iter(arrays.values())) if len(arrays) == 1 else arrays
        elif suffix in (".txt", ".jsonl"):
            lines = [ln.rstrip("\n") for ln in path.read_text(encoding="utf-8").splitlines()]
            lines = [ln for ln in lines if ln.strip()]
            if not lines:
                raise DataError(f"{source} has no non-empty lines: put one example per line.")
            if suffix == ".jsonl":
                lines = _jsonl_texts(lines, (fields or ["text"])[0], source)
            tokenize = getattr(model, "tokenize", None)
            if not callable(tokenize):
                raise ProtocolError(
                    f"{source} is text, but the model has no tokenize(lines) method: add one "
                    "(see docs/model-protocol.md) or pass the inputs as a .pt/.npy file."
                )
            try:
                x = tokenize(lines)
            except (Exception, SystemExit) as err:  # noqa: BLE001 - user code
                raise ProtocolError(
                    f"model.tokenize(lines) failed on {source} with {type(err).__name__}: "
                    f"{_first_line(err)}"
                ) from err
        else:
            raise DataError(
                f"{source} has unknown extension {suffix!r}: use .pt, .npy, .npz, .txt or "
                ".jsonl."
            )
        return validate_data(x, source)
    except (DataError, ProtocolError):
        raise
    except Exception as err:  # noqa: BLE001 - any reader failure is one clear message
        raise DataError(f"cannot read {source}: {type(err).__name__}: {_first_line(err)}") from err


def _jsonl_texts(lines: list[str], field: str, source: str) -> list[str]:
    """The ``field`` of every JSON line, each a string."""
    texts = []
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
        except (ValueError, RecursionError) as err:
            raise DataError(f"{source}, example {number}: not JSON ({err}).") from err
        if not isinstance(record, dict) or not isinstance(record.get(field), str):
            keys = sorted(record) if isinstance(record, dict) else type(record).__name__
            raise DataError(f"{source}, example {number}: no text field {field!r} (found "
                            f"{keys}); name it as FILE.jsonl:FIELD.")
        texts.append(record[field])
    return texts


def _first_line(err: BaseException) -> str:
    text = str(err)
    return text.splitlines()[0] if text else ""
