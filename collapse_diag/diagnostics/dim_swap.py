"""The adaptive per-dimension swap: rounds of fresh inputs until each dimension is decided.

For input i and dimension d, with z_i ~ q(z|x_i) and the derangement pi of the
whole-vector swap::

    delta_id = log p(x_i | z_i) - log p(x_i | z_i with coordinate d from z_pi(i))

Inputs are taken in a seeded random order. Round r decodes the inputs
``n_{r-1} .. n_r`` of that order
(:func:`~collapse_diag.diagnostics.estimators.swap_decision.round_schedule`):
round 1 every dimension, later rounds only the dimensions that are informative
and still undetermined, so each input costs ``1 + (dimensions decoded)`` rows.
After each round every sampled dimension gets a Student-t interval at the
Bonferroni error ``alpha / (R D)``, intersected with its earlier intervals, and
a decision (``used`` / ``ignored`` / ``undetermined``,
:mod:`~collapse_diag.diagnostics.estimators.swap_decision`). The rounds stop when every
informative dimension is decided or the budget is spent. The decisions depend
only on the deltas, which depend only on the seed (never on the batch size).
Under ``torchrun`` each round's new inputs are sharded across the processes and
the deltas gathered, so every process takes the same decisions (lock-step).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import torch

from collapse_diag.config.settings import Settings
from collapse_diag.diagnostics.estimators.swap_decision import (
    decide,
    inputs_to_decide,
    interval_error,
    round_schedule,
    t_interval,
)
from collapse_diag.io.data import Batch, repeat, take, to_device
from collapse_diag.model.decoding import decode, inputs_per_call
from collapse_diag.model.protocol import ModelInfo
from collapse_diag.runtime import distributed
from collapse_diag.runtime.progress import progress

__all__ = ["DimSwapResult", "adaptive_dim_swap"]


@dataclass(frozen=True)
class DimSwapResult:
    """Per-dimension swap deltas, intervals and decisions.

    Attributes:
        examples: Indices of the inputs decoded, in the order used, ``(M,)``.
        delta: Deltas ``(M, D)``; NaN where a dimension was no longer sampled.
        count: Inputs per dimension (finite deltas), ``(D,)``.
        mean: Mean delta per dimension, ``(D,)`` (NaN when not run).
        sd: Sample std per dimension, ``(D,)``.
        low: Lower bound of the simultaneous interval, ``(D,)``.
        high: Upper bound, ``(D,)``.
        threshold: Negligible-effect threshold per dimension, ``(D,)``.
        decision: ``used`` / ``ignored`` / ``undetermined`` per dimension.
        inputs_needed: Per dimension, inputs likely to decide it if undetermined, else None.
        rounds: Rounds run.
        planned_rounds: Rounds the budget allows (R of the Bonferroni error).
        error: Two-sided error of each interval, ``alpha / (R D)``.
        budget: Most inputs the rounds may use.
        calls: Decoder calls made.
        rows: Decoder rows.
    """

    examples: np.ndarray
    delta: np.ndarray
    count: np.ndarray
    mean: np.ndarray
    sd: np.ndarray
    low: np.ndarray
    high: np.ndarray
    threshold: np.ndarray
    decision: tuple[str, ...]
    inputs_needed: list[int | None]
    rounds: int
    planned_rounds: int
    error: float
    budget: int
    calls: int
    rows: int


def _decode_dims(model: Any, data: Batch, z: np.ndarray, pi: np.ndarray, idx: np.ndarray,
                 dims: np.ndarray, info: ModelInfo, settings: Settings) -> np.ndarray:
    """Deltas ``(len(idx), len(dims))``; variant 0 is the own code, 1 + j swaps ``dims[j]``."""
    b, k = len(idx), len(dims)
    codes = np.repeat(z[idx][None], k + 1, axis=0)  # (k + 1, b, [T,] D)
    # the last axis is the dimension: sequential codes swap dimension d at every step
    codes[1 + np.arange(k), ..., dims] = np.moveaxis(z[pi[idx]][..., dims], -1, 0)
    x = repeat(to_device(take(data, torch.from_numpy(idx)), settings.device), k + 1)
    ll = decode(model, x, codes.reshape((-1,) + z.shape[1:]), info, settings.device)
    ll = ll.reshape(k + 1, b)
    return (ll[0][None] - ll[1:]).T


def _round_shard(model: Any, data: Batch, z: np.ndarray, pi: np.ndarray, use: np.ndarray,
                 dims: np.ndarray, info: ModelInfo, settings: Settings, step: int,
                 bar: tuple[str, bool], start: int, stop: int) -> tuple[np.ndarray]:
    """Deltas ``(stop - start, len(dims))`` of the inputs ``use[start:stop]``, ``step`` per call."""
    out = np.empty((stop - start, len(dims)))
    for lo in progress(range(start, stop, step), bar[0], -(-(stop - start) // step), bar[1]):
        idx = use[lo:min(lo + step, stop)]
        out[lo - start:lo - start + len(idx)] = _decode_dims(model, data, z, pi, idx, dims,
                                                             info, settings)
    return (out,)


def adaptive_dim_swap(
    model: Any,
    data: Batch,
    z: np.ndarray,
    pi: np.ndarray,
    order: np.ndarray,
    info: ModelInfo,
    settings: Settings,
    informative: np.ndarray,
    threshold: np.ndarray,
    show_progress: bool = False,
) -> DimSwapResult:
    """Run the rounds (module docstring) and decide every dimension.

    Args:
        model: Protocol model on ``settings.device``.
        data: The N analysed inputs on the CPU.
        z: Posterior draws ``(N, D)``, or ``(N, T, D)`` for sequential latents (dimension d
            is then swapped at every step), float64.
        pi: The derangement ``(N,)``.
        order: A seeded permutation of ``range(N)``: the order inputs are used in.
        info: Result of ``check_model``.
        settings: Uses ``per_dim_swap_examples``, ``per_dim_swap_max_examples``,
            ``alpha``, ``batch_size``, ``device``.
        informative: Dimensions that need a decision (the others are only
            measured in round 1), ``(D,)`` bool.
        threshold: Negligible-effect threshold per dimension, ``(D,)``.
        show_progress: Progress bars on stderr.
    """
    n, dim = z.shape[0], z.shape[-1]
    budget = n if settings.per_dim_swap_max_examples is None else min(
        n, settings.per_dim_swap_max_examples)
    schedule = round_schedule(settings.per_dim_swap_examples, budget)
    error = interval_error(settings.alpha, len(schedule), dim)
    delta = np.full((schedule[-1] if schedule else 0, dim), np.nan)
    low, high = np.full(dim, -math.inf), np.full(dim, math.inf)
    mean, sd = np.full(dim, np.nan), np.full(dim, np.nan)
    decision = np.full(dim, "undetermined", dtype=object)
    done = calls = rows = rounds = 0
    with torch.no_grad():
        for size in schedule:
            pending = np.flatnonzero(np.asarray(informative, bool) & (decision == "undetermined"))
            dims = np.arange(dim) if rounds == 0 else pending
            if rounds > 0 and pending.size == 0:
                break
            step = inputs_per_call(settings.batch_size, len(dims) + 1)
            bar = (f"per-dimension swap, round {rounds + 1}", show_progress)
            shard = partial(_round_shard, model, data, z, pi, order[done:size], dims, info,
                            settings, step, bar)
            (delta[done:size, dims],) = distributed.map_shard(size - done, shard)
            calls += distributed.total(-(-len(distributed.shard(size - done)) // step))
            rows += (len(dims) + 1) * (size - done)
            done, rounds = size, rounds + 1
            for d in dims:
                column = delta[:done, d]
                mean[d], sd[d], lo, hi = t_interval(column[np.isfinite(column)], error)
                lo, hi = max(low[d], lo), min(high[d], hi)
                if lo > hi:  # the intervals of two rounds disagree: keep the latest
                    lo, hi = t_interval(column[np.isfinite(column)], error)[2:]
                low[d], high[d] = lo, hi
            decision = decide(low, high, threshold).astype(object)
    needed = inputs_to_decide(mean, sd, threshold, error)
    count = np.isfinite(delta).sum(axis=0)
    needed = [None if decision[d] != "undetermined" else needed[d] for d in range(dim)]
    return DimSwapResult(
        examples=order[:done].copy(), delta=delta[:done], count=count, mean=mean, sd=sd,
        low=low, high=high, threshold=np.asarray(threshold, dtype=np.float64),
        decision=tuple(str(v) for v in decision) if schedule else ("undetermined",) * dim,
        inputs_needed=needed, rounds=rounds, planned_rounds=len(schedule), error=error,
        budget=budget, calls=calls, rows=rows,
    )
