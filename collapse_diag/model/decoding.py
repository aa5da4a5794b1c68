"""Helpers shared by the decoder diagnostics: batched decoding, sizes of calls, small reductions.

The decoder diagnostics (sensitivity, dim_swap, window_swap, identifiability,
sequence_fisher, likelihood) stack the z codes they need into few decoder
calls; these helpers size the calls, run them, and walk over this process's
shard of the inputs (:func:`~collapse_diag.runtime.distributed.shard`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from collapse_diag.exceptions import DiagnosticError
from collapse_diag.io.data import Batch, take, to_device
from collapse_diag.model.protocol import (
    LOG_LIKELIHOOD,
    ModelInfo,
    call_log_likelihood,
    check_finite,
)
from collapse_diag.runtime.progress import progress

__all__ = [
    "MAX_ROWS_PER_CALL",
    "codes_to_device",
    "decode",
    "derangement",
    "draw_major_codes",
    "inputs_per_call",
    "mean_or_none",
    "nanmean",
    "per_token",
    "shard_batches",
]

#: A decoder call stacks ``variants`` z codes per input; the number of inputs per
#: call is reduced so that a call has at most this many rows (or ``batch_size``
#: rows when that is larger). See :func:`inputs_per_call`. Measured on the demo's
#: LSTM decoder (300 sentences): 4,096 rows peaked at 512 MiB resident (a text
#: decoder holds rows x length x vocabulary logits), 1,024 at 409 MiB, and the
#: 32-dim LSTM analysed 2,000 inputs 5-10% faster (interleaved runs); the MLP's
#: time did not change beyond its scatter.
MAX_ROWS_PER_CALL = 1024


def inputs_per_call(batch_size: int, variants: int, max_rows: int = MAX_ROWS_PER_CALL) -> int:
    """Inputs per decoder call when each input is decoded with ``variants`` codes.

    ``batch_size`` inputs per call (``batch_size * variants`` rows), unless that
    exceeds ``max(max_rows, batch_size)`` rows, in which case fewer inputs (at least 1).
    """
    return max(1, min(batch_size, max(max_rows, batch_size) // variants))


def derangement(n: int, generator: torch.Generator) -> np.ndarray:
    """Seeded random derangement of ``range(n)``: ``pi[i] != i`` for every i.

    A uniformly random n-cycle: ``pi[perm[j]] = perm[(j + 1) % n]`` for a random
    permutation ``perm`` (equivalent to Sattolo's algorithm).

    Raises:
        DiagnosticError: ``n < 2`` (no input has another input to swap with).
    """
    if n < 2:
        raise DiagnosticError(
            f"the swap test needs at least 2 inputs to exchange codes between; got {n}. "
            "Analyse more inputs."
        )
    perm = torch.randperm(n, generator=generator).numpy()
    pi = np.empty(n, dtype=np.int64)
    pi[perm] = np.roll(perm, -1)
    return pi


def codes_to_device(z: np.ndarray, info: ModelInfo, device: str) -> torch.Tensor:
    """Codes (a float64 array) as a Tensor of the model's dtype on ``device``.

    On CUDA the cast runs on the host and the copy is from pinned memory, non-blocking.
    """
    zt = torch.from_numpy(np.ascontiguousarray(z)).to(info.dtype)
    return to_device(zt, device)


def decode(model: Any, x: Batch, z: np.ndarray, info: ModelInfo, device: str) -> np.ndarray:
    """``log p(x|z)`` for rows ``x`` (on ``device``) and codes ``z`` (float64 array), as float64.

    One device-to-host copy per call, the result itself; its finiteness is checked
    on the host copy (no second sync on a GPU).
    """
    out = call_log_likelihood(model, x, codes_to_device(z, info, device), finite=False)
    host = out.detach().to("cpu", torch.float64)
    check_finite(host, LOG_LIKELIHOOD, DiagnosticError)
    return host.numpy()


def shard_batches(data: Batch, start: int, stop: int, step: int, label: str | None = None,
                  show_progress: bool = False) -> Iterator[tuple[slice, Batch]]:
    """Batches of at most ``step`` inputs covering inputs ``start .. stop - 1``.

    Yields ``(rows, batch)``: ``rows`` is the slice of global input indices,
    ``batch`` those inputs (on the CPU). With a ``label``, behind a progress bar of
    the ``ceil((stop - start) / step)`` batches (on stderr, when ``show_progress``).
    """
    def batches() -> Iterator[tuple[slice, Batch]]:
        for lo in range(start, stop, step):
            rows = slice(lo, min(lo + step, stop))
            yield rows, take(data, rows)

    if label is None:
        return batches()
    return progress(batches(), label, -(-(stop - start) // step), show_progress)


def draw_major_codes(mean: np.ndarray, logvar: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """Codes ``mean + sigma * noise`` for noise ``(b, k, D)``, ordered draw-major ``(k * b, D)``.

    Row ``j * b + i`` is draw j of input i, matching ``repeat(x, k)``.
    """
    z = mean[:, None] + np.exp(0.5 * logvar)[:, None] * noise
    return z.transpose(1, 0, 2).reshape(-1, mean.shape[1])


def per_token(values: np.ndarray, tokens: np.ndarray | None) -> np.ndarray | None:
    """``values / tokens`` along the input axis (axis 0), or ``None`` without token counts."""
    if tokens is None:
        return None
    shape = (-1,) + (1,) * (np.ndim(values) - 1)
    return values / np.asarray(tokens, dtype=np.float64).reshape(shape)


def mean_or_none(values: np.ndarray | None, axis: int | None = None) -> Any:
    """Mean of ``values`` (over ``axis``), ``None`` when ``values`` is ``None``, NaN when empty."""
    if values is None:
        return None
    if values.shape[0] == 0:
        return math.nan if axis is None else np.full(values.shape[1], math.nan)
    return values.mean(axis=axis) if axis is not None else float(values.mean())


def nanmean(values: np.ndarray) -> np.ndarray:
    """Column means over the finite entries; NaN for a column with none (or no rows)."""
    finite = np.isfinite(values)
    count = finite.sum(axis=0)
    total = np.where(finite, values, 0.0).sum(axis=0)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)
