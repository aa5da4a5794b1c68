"""Evaluation inputs: loading them and slicing them along the example axis.

A batch ``x`` is whatever the model takes: a Tensor, or a dict of Tensors that
share their first dimension. The toolkit only ever indexes, repeats and
concatenates ``x`` along dimension 0; these helpers are the only place that
knows about the two shapes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from collapse_diag.exceptions import DataError, ProtocolError

__all__ = [
    "Batch",
    "validate_data",
    "num_examples",
    "take",
    "repeat",
    "concat",
    "to_device",
    "iter_batches",
    "load_data",
    "subsample_indices",
]

Batch = torch.Tensor | dict[str, torch.Tensor]


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
        x = torch.from_numpy(x)
    if isinstance(x, torch.Tensor):
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
                value = torch.from_numpy(value)
            if not isinstance(value, torch.Tensor) or value.dim() == 0:
                raise DataError(
                    f"{source}[{key!r}] is a {type(value).__name__}, not a Tensor with an "
                    "example dimension: every value of a data dict must be a Tensor."
                )
            out[str(key)] = value
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


def concat(parts: Sequence[Batch]) -> Batch:
    """Concatenate batches along dimension 0 (inverse of splitting with :func:`take`)."""
    if isinstance(parts[0], torch.Tensor):
        return torch.cat(list(parts), dim=0)
    return {k: torch.cat([p[k] for p in parts], dim=0) for k in parts[0]}


def to_device(x: Batch, device: torch.device | str) -> Batch:
    """Move every Tensor of ``x`` to ``device``."""
    if isinstance(x, torch.Tensor):
        return x.to(device)
    return {k: v.to(device) for k, v in x.items()}


def iter_batches(x: Batch, batch_size: int) -> Iterator[tuple[slice, Batch]]:
    """Yield ``(rows, batch)`` pairs covering ``x`` in order, ``batch_size`` examples at a time.

    ``rows`` is the slice of example indices the batch holds, so results can be
    written back into arrays of shape ``(n_examples, ...)``.
    """
    n = num_examples(x)
    for start in range(0, n, batch_size):
        rows = slice(start, min(start + batch_size, n))
        yield rows, take(x, rows)


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
        * ``.txt``: one example per line, turned into a batch by ``model.tokenize(lines)``.

    Args:
        path: File to read.
        model: The model, needed for ``.txt`` files (its ``tokenize`` method).

    Returns:
        The validated inputs.

    Raises:
        DataError: the file is missing, unreadable, empty or of an unknown type.
        ProtocolError: a ``.txt`` file was given and the model has no ``tokenize``.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file {str(path)!r} does not exist: check the --data path.")
    suffix = path.suffix.lower()
    source = f"data file {str(path)!r}"
    try:
        if suffix == ".pt":
            x = torch.load(path, map_location="cpu", weights_only=True)
        elif suffix == ".npy":
            x = np.load(path, allow_pickle=False)
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                arrays = {k: archive[k] for k in archive.files}
            x = next(iter(arrays.values())) if len(arrays) == 1 else arrays
        elif suffix == ".txt":
            lines = [ln.rstrip("\n") for ln in path.read_text(encoding="utf-8").splitlines()]
            lines = [ln for ln in lines if ln.strip()]
            if not lines:
                raise DataError(f"{source} has no non-empty lines: put one example per line.")
            tokenize = getattr(model, "tokenize", None)
            if not callable(tokenize):
                raise ProtocolError(
                    f"{source} is text, but the model has no tokenize(lines) method: add one "
                    "(see docs/model-protocol.md) or pass the inputs as a .pt/.npy file."
                )
            x = tokenize(lines)
        else:
            raise DataError(
                f"{source} has unknown extension {suffix!r}: use .pt, .npy, .npz or .txt."
            )
    except (DataError, ProtocolError):
        raise
    except Exception as err:  # noqa: BLE001 - any reader failure is one clear message
        raise DataError(f"cannot read {source}: {type(err).__name__}: {err}") from err
    return validate_data(x, source)
