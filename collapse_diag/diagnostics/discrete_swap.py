"""Decoder sensitivity and statuses for discrete latents: swap whole code maps and single positions.

The swap test of collapse_diag/diagnostics/sensitivity.py, for codes that are
indices (vector-quantised) or one-hot vectors (categorical): with a seeded
derangement pi of the inputs,

* whole code map: ``delta_i = log p(x_i | c_i) - log p(x_i | c_pi(i))`` over every input;
* one position l (a codebook position, or a categorical variable): ``delta_il = log
  p(x_i | c_i) - log p(x_i | c_i with position l from c_pi(i))`` over a seeded subset
  of at most :data:`MAX_SWAP_INPUTS` inputs and, when there are more than
  :data:`MAX_SWAP_POSITIONS` positions, a seeded sample of that many positions (the
  others get no decision: ``undetermined``).

Each test is a one-sided Wilcoxon signed-rank test (H1: the own code is preferred),
the per-position p-values Holm-corrected over the positions tested
(:func:`~collapse_diag.diagnostics.verdict.holm`). A position is

* ``collapsed``: it carries no information about x (its posterior is the prior:
  KL < ``kl_eps`` for a categorical variable; one code for every input at a VQ position),
* ``used``: the corrected p-value is below ``alpha`` and the mean delta > 0,
* ``ignored``: some swapped pair had different codes there and no delta moved beyond
  rounding (relative 1e-4): the decoder's value does not change with that position,
* ``undetermined`` otherwise,

Under ``torchrun`` both swaps are sharded like the Gaussian one
(:func:`~collapse_diag.runtime.distributed.map_shard`): every process draws the same
derangement, subset and positions, decodes its blocks of the inputs (of the subset), and
the per-input figures are gathered, so the statistics are those of one process.

The verdict follows the Gaussian rule (docs/statuses.md): ``collapsed`` when no
position is used and every one is collapsed or ignored, ``healthy`` when every one is
used, ``partial`` with both used and unused ones, else ``undetermined``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from collapse_diag.diagnostics.estimators.statistics import signed_rank_greater, wilcoxon_greater
from collapse_diag.diagnostics.verdict import holm
from collapse_diag.exceptions import DiagnosticError
from collapse_diag.io.data import Batch, repeat, take, to_device
from collapse_diag.model.decoding import derangement, inputs_per_call, shard_batches
from collapse_diag.model.protocol import LOG_LIKELIHOOD, call_log_likelihood, check_finite
from collapse_diag.report.schema import STATUSES
from collapse_diag.runtime import distributed

__all__ = ["MAX_SWAP_INPUTS", "MAX_SWAP_POSITIONS", "DiscreteSwap", "discrete_statuses",
           "discrete_swap", "discrete_verdict"]

#: Inputs whose single positions are swapped (a seeded subset when there are more).
MAX_SWAP_INPUTS = 256
#: Positions swapped one at a time (a seeded sample when there are more).
MAX_SWAP_POSITIONS = 64
#: Relative change of log p(x|c) below which a swap changed nothing (as protocol.py's checks).
_RTOL = 1e-4


@dataclass(frozen=True)
class DiscreteSwap:
    """Swap figures of a discrete latent.

    Attributes:
        delta: Per-input whole-map delta ``(N,)``, nats.
        p_value: Its one-sided Wilcoxon p-value.
        reconstruction: Mean log p(x|c) at the own codes, nats.
        position_delta: Mean delta per position ``(L,)`` (NaN where not tested).
        position_p: Uncorrected p-value per position (NaN where not tested).
        position_p_holm: Holm-corrected over the tested positions (NaN where not tested).
        position_unchanged: Swapped codes differed for some pair and no value moved.
        swap_inputs: Inputs of the per-position swap.
    """

    delta: np.ndarray
    p_value: float
    reconstruction: float
    position_delta: np.ndarray
    position_p: np.ndarray
    position_p_holm: np.ndarray
    position_unchanged: np.ndarray
    swap_inputs: int


def _decode(model: Any, x: Batch, codes: torch.Tensor) -> np.ndarray:
    out = call_log_likelihood(model, x, codes, finite=False).detach().to("cpu", torch.float64)
    check_finite(out, LOG_LIKELIHOOD, DiagnosticError)
    return out.numpy()


def discrete_swap(model: Any, data: Batch, codes: torch.Tensor,
                  to_model: Callable[[torch.Tensor], torch.Tensor], batch_size: int,
                  device: str, generator: torch.Generator, show_progress: bool = False
                  ) -> DiscreteSwap:
    """Whole-map and per-position swaps (module docstring), batched: variants stacked per call.

    Args:
        model: The model, in eval mode on ``device``.
        data: The inputs (CPU), N rows.
        codes: The codes the decoder receives, ``[N, L, ...]`` (position axis 1), CPU.
        to_model: Codes ``[b, L, ...]`` -> what ``log_likelihood`` takes (reshape, one-hot).
        batch_size: Inputs per call before stacking.
        device: Where the model runs.
        generator: Seeded generator: the derangement, the input subset, the positions.
        show_progress: Progress bars on stderr.
    """
    n, positions = int(codes.shape[0]), int(codes.shape[1])
    pi = torch.from_numpy(derangement(n, generator))
    subset = torch.randperm(n, generator=generator)[:MAX_SWAP_INPUTS].sort().values
    tested = (torch.arange(positions) if positions <= MAX_SWAP_POSITIONS
              else torch.randperm(positions, generator=generator)[:MAX_SWAP_POSITIONS]
              .sort().values)
    step = inputs_per_call(batch_size, 2)

    def whole_shard(start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        own, swapped = np.empty(stop - start), np.empty(stop - start)
        for rows, batch in shard_batches(data, start, stop, step, "swap test", show_progress):
            b, local = rows.stop - rows.start, slice(rows.start - start, rows.stop - start)
            c = torch.cat([codes[rows], codes[pi[rows]]])
            ll = _decode(model, repeat(to_device(batch, device), 2),
                         to_device(to_model(c), device))
            own[local], swapped[local] = ll[:b], ll[b:]
        return own, swapped

    p = len(tested)
    sub_data = take(data, subset)
    sub_codes, partner = codes[subset], codes[pi[subset]]
    sub_step = inputs_per_call(batch_size, p)

    def position_shard(start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        deltas = np.empty((stop - start, p))
        differs = np.zeros((stop - start, p), dtype=bool)
        for rows, batch in shard_batches(sub_data, start, stop, sub_step, "position swap",
                                         show_progress):
            b, local = rows.stop - rows.start, slice(rows.start - start, rows.stop - start)
            variants = sub_codes[rows].unsqueeze(1).repeat(1, p, *([1] * (codes.dim() - 1)))
            pos = torch.arange(p)
            variants[:, pos, tested] = partner[rows][:, tested]
            same = (variants[:, pos, tested] == sub_codes[rows][:, tested])
            differs[local] = ~same.reshape(b, p, -1).all(-1).numpy()
            flat = variants.transpose(0, 1).reshape(p * b, *codes.shape[1:])  # as repeat()
            ll = _decode(model, repeat(to_device(batch, device), p),
                         to_device(to_model(flat), device)).reshape(p, b).T
            deltas[local] = own[subset[rows].numpy()][:, None] - ll
        return deltas, differs

    with torch.no_grad():
        own, swapped = distributed.map_shard(n, whole_shard)
        deltas, differs = distributed.map_shard(len(subset), position_shard)
    return _figures(own, swapped, deltas, own[subset.numpy()], differs, tested.numpy(),
                    positions)


def _figures(own: np.ndarray, swapped: np.ndarray, deltas: np.ndarray, base: np.ndarray,
             differs: np.ndarray, tested: np.ndarray, positions: int) -> DiscreteSwap:
    """The figures of the swaps; a per-position change within rounding counts as none.

    ``deltas`` ``(M, P)`` of the M subset inputs whose own log-likelihoods are ``base``.
    """
    delta = own - swapped
    deltas = np.where(np.abs(deltas) <= _RTOL * (1.0 + np.abs(base))[:, None], 0.0, deltas)
    position_delta = np.full(positions, np.nan)
    position_p = np.full(positions, np.nan)
    position_holm = np.full(positions, np.nan)
    unchanged = np.zeros(positions, dtype=bool)
    if len(tested):
        position_delta[tested] = deltas.mean(axis=0)
        p = signed_rank_greater(deltas)
        position_p[tested] = p
        position_holm[tested] = holm(p)
        unchanged[tested] = (deltas == 0).all(axis=0) & differs.any(axis=0)
    return DiscreteSwap(delta=delta, p_value=wilcoxon_greater(delta),
                        reconstruction=float(own.mean()), position_delta=position_delta,
                        position_p=position_p, position_p_holm=position_holm,
                        position_unchanged=unchanged, swap_inputs=len(base))


def discrete_statuses(collapsed: np.ndarray, swap: DiscreteSwap | None, alpha: float
                      ) -> tuple[str, ...]:
    """One status per position (module docstring); without swap figures: ``undetermined``."""
    collapsed = np.asarray(collapsed, dtype=bool)
    if swap is None:
        return tuple("collapsed" if c else "undetermined" for c in collapsed)
    used = (np.nan_to_num(swap.position_p_holm, nan=1.0) < alpha) & (
        np.nan_to_num(swap.position_delta) > 0)
    status = np.where(collapsed, "collapsed", np.where(used, "used", np.where(
        swap.position_unchanged, "ignored", "undetermined")))
    return tuple(str(s) for s in status)


def discrete_verdict(statuses: tuple[str, ...]) -> str:
    """The Gaussian verdict rule over the positions' statuses (module docstring)."""
    counts = {name: statuses.count(name) for name in STATUSES}
    unused = counts["collapsed"] + counts["ignored"] + counts["uninformative"]
    if counts["used"] == len(statuses):
        return "healthy"
    if counts["used"] == 0 and unused == len(statuses):
        return "collapsed"
    return "partial" if counts["used"] and unused else "undetermined"
