"""Several processes (``torchrun``): shard the inputs, gather the per-input results.

Under ``torchrun --nproc_per_node=K`` every process loads the model and all the
inputs, and runs the same analysis. The expensive passes (the encoder pass and
every decoder diagnostic) are sharded: process r handles a contiguous range of
whole blocks of :data:`~collapse_diag.runtime.rng.RANDOM_BLOCK` inputs (:func:`shard`),
and the small per-input results (N x D figures) are gathered onto every process
(:func:`map_shard`). The reductions (bootstraps, tests, MI, the verdict) then run
identically on every process, so control flow such as the per-dimension swap's
adaptive rounds stays in lock-step and no broadcast is needed; only rank 0
writes and prints. The MI estimator shares out its heavy model-free parts the
same way (its full-vector terms by input, its grid's node evaluations by point).
Randomness is keyed on global input indices (:mod:`collapse_diag.runtime.rng`), so the
report does not depend on K.

Backends: ``gloo`` on the CPU, ``nccl`` on CUDA (process r then runs on
``cuda:LOCAL_RANK``). Without ``torchrun`` (no ``WORLD_SIZE`` > 1 in the
environment and no process group) the world has size 1 and every function here
is the identity.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from collapse_diag.exceptions import DiagnosticError
from collapse_diag.runtime.rng import RANDOM_BLOCK

__all__ = ["World", "world", "is_main", "setup", "finish", "local", "shard", "gather_rows",
           "map_shard", "barrier", "total"]

_OWNED = {"group": False}  # whether setup() created the process group (finish() ends it)
_MESSAGE_BYTES = 4000  # longest error message passed between processes


@dataclass(frozen=True)
class World:
    """This process's place in the job: ``rank`` in ``range(size)``."""

    rank: int
    size: int


_LOCAL = {"depth": 0}  # > 0 inside local(): this process runs alone


def _dist() -> object | None:
    """``torch.distributed`` when it is available and initialised (outside :func:`local`)."""
    dist = torch.distributed
    if _LOCAL["depth"]:
        return None
    return dist if dist.is_available() and dist.is_initialized() else None


@contextlib.contextmanager
def local() -> Iterator[None]:
    """Inside, this process analyses alone: world size 1, no collectives, no process group.

    For an analysis that only some processes of a job run, e.g. the training monitor
    on rank 0 of a DDP job, where sharding would wait forever for the other ranks.
    """
    _LOCAL["depth"] += 1
    try:
        yield
    finally:
        _LOCAL["depth"] -= 1


def world() -> World:
    """Rank and size of the process group; ``World(0, 1)`` when none is initialised."""
    dist = _dist()
    return World(dist.get_rank(), dist.get_world_size()) if dist else World(0, 1)


def is_main() -> bool:
    """This process writes and prints: rank 0 (always true without ``torchrun``)."""
    return world().rank == 0


def _launched() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup(device: torch.device) -> torch.device:
    """Join the ``torchrun`` job when launched by it, and the device this process uses.

    Reads torchrun's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
    ``MASTER_ADDR``/``MASTER_PORT``). Backend ``nccl`` when ``device`` is CUDA
    (``cuda`` without an index then means ``cuda:LOCAL_RANK``), else ``gloo``. A process group
    the caller initialised already is used as it is. Not launched: ``device``.

    Args:
        device: The device asked for (``Settings.device``).
    """
    if _LOCAL["depth"] or (not _launched() and _dist() is None):
        return device
    if device.type == "cuda":
        if device.index is None:  # "cuda": one GPU per process; "cuda:i" is kept as asked
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if _dist() is None:
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
        _OWNED["group"] = True
    return device


def barrier() -> None:
    """Wait for every process (no-op for size 1)."""
    if _dist() is not None and world().size > 1:
        torch.distributed.barrier()


def finish() -> None:
    """End the process group if :func:`setup` created it (after a barrier)."""
    if _OWNED["group"] and _dist() is not None:
        barrier()
        torch.distributed.destroy_process_group()
        _OWNED["group"] = False


def shard(n: int, rank: int | None = None, size: int | None = None,
          block: int = RANDOM_BLOCK) -> range:
    """The positions ``0 .. n - 1`` process ``rank`` owns: a contiguous run of whole blocks.

    The ``ceil(n / block)`` blocks are split into ``size`` contiguous runs,
    rank r taking blocks ``floor(r B / size) .. floor((r + 1) B / size) - 1``
    (the last block may be short). Ranks without a block get an empty range.

    Args:
        n: Number of positions.
        rank: Defaults to this process's rank.
        size: Defaults to the world size.
        block: Positions per block.
    """
    here = world()
    rank = here.rank if rank is None else rank
    size = here.size if size is None else size
    blocks = -(-n // block)
    first, last = rank * blocks // size, (rank + 1) * blocks // size
    return range(min(n, first * block), min(n, last * block))


def _collective_device() -> torch.device:
    backend = torch.distributed.get_backend()
    return torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else \
        torch.device("cpu")


def _all_gather(tensor: torch.Tensor) -> list[torch.Tensor]:
    device = _collective_device()
    parts = [torch.empty_like(tensor, device=device) for _ in range(world().size)]
    torch.distributed.all_gather(parts, tensor.to(device))
    return [p.cpu() for p in parts]


def gather_rows(values: np.ndarray, rows: range, n: int) -> np.ndarray:
    """The full ``(n, ...)`` array on every process from each process's ``rows``.

    Args:
        values: This process's rows, shape ``(len(rows), ...)``; the trailing shape
            and dtype must be the same on every process.
        rows: The positions ``values`` holds (contiguous; the ranges of all
            processes partition ``range(n)``).
        n: Total positions.

    Returns:
        ``values`` itself for size 1; else the rows of all processes, in position order.
    """
    values = np.asarray(values)
    if world().size == 1:
        return values
    spans = _all_gather(torch.tensor([rows.start, rows.stop], dtype=torch.int64))
    longest = max(int(s[1] - s[0]) for s in spans)
    padded = np.zeros((longest, *values.shape[1:]), dtype=np.float64)
    padded[:len(values)] = values
    out = np.empty((n, *values.shape[1:]), dtype=values.dtype)
    for span, part in zip(spans, _all_gather(torch.from_numpy(padded))):
        start, stop = int(span[0]), int(span[1])
        out[start:stop] = part.numpy()[:stop - start].astype(values.dtype)
    return out


def total(count: int) -> int:
    """Sum of an integer over all processes (e.g. decoder calls); ``count`` for size 1."""
    if world().size == 1:
        return int(count)
    return int(sum(int(p) for p in _all_gather(torch.tensor([int(count)], dtype=torch.int64))))


def _agree(error: BaseException | None) -> None:
    """Raise on every process when any process failed (the lowest failing rank's error)."""
    if world().size == 1:
        if error is not None:
            raise error
        return
    text = "" if error is None else f"{type(error).__name__}: {error}"
    raw = text.encode()[:_MESSAGE_BYTES]
    message = torch.zeros(_MESSAGE_BYTES + 1, dtype=torch.uint8)
    message[0] = 1 if error is not None else 0
    message[1:1 + len(raw)] = torch.tensor(list(raw), dtype=torch.uint8)
    for rank, part in enumerate(_all_gather(message)):
        if int(part[0]) == 0:
            continue
        if rank == world().rank:
            raise error
        text = bytes(part[1:].tolist()).rstrip(b"\0").decode(errors="replace")
        raise DiagnosticError(f"{text} (in process {rank} of the torchrun job)")


def map_shard(n: int, compute: Callable[[int, int], tuple[np.ndarray, ...]],
              block: int = RANDOM_BLOCK) -> tuple[np.ndarray, ...]:
    """Run ``compute(start, stop)`` on this process's :func:`shard` and gather its arrays.

    Every process must call this at the same point. When ``compute`` raises on
    any process, every process raises (the lowest failing rank's error), so no
    process is left waiting in a collective.

    Args:
        n: Total positions.
        compute: ``(start, stop) -> arrays`` each of shape ``(stop - start, ...)``
            (also for an empty range).
        block: Shard granularity (:func:`shard`).

    Returns:
        The arrays of all ``n`` positions, on every process.
    """
    rows = shard(n, block=block)
    parts: tuple[np.ndarray, ...] = ()
    error = None
    try:
        parts = tuple(compute(rows.start, rows.stop))
    except (Exception, SystemExit) as err:  # noqa: BLE001 - re-raised on every process
        error = err
    _agree(error)
    return tuple(gather_rows(p, rows, n) for p in parts)
