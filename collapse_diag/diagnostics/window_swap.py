"""Swap tests for sequential latents: length-aligned pairs and swaps per time window.

**Length alignment.** A swap gives input i the code of its partner pi(i). With
sequential latents two inputs are partners only when their latent masks are
identical (for the usual prefix masks: the same valid length), so a swapped
code is never truncated or padded. :func:`aligned_derangement` draws a seeded
random derangement inside each group of equal masks; an input alone in its
group has no partner and is left out of every swap statistic (counted in
``summary.swap_unpaired_inputs``).

**Windows.** The T steps are cut into W = ``min(Settings.swap_windows, T)``
consecutive windows ``[floor(k T / W), floor((k + 1) T / W))``. For window w::

    delta_iw = log p(x_i | z_i) - log p(x_i | z_i with steps of w from z_pi(i))

A decoder that reads z only early in the sequence gives delta ~ 0 for the late
windows. Each window reports the mean delta and the one-sided Wilcoxon p-value
(H1: own code preferred) over the paired inputs, at most
``per_dim_swap_max_examples`` of them, in the seeded order of the per-dimension
swap. Each input costs ``W + 1`` decoder rows, stacked into few calls; under
``torchrun`` the inputs are sharded across the processes and the deltas gathered.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from collapse_diag.config.settings import Settings
from collapse_diag.diagnostics.estimators.statistics import wilcoxon_greater
from collapse_diag.exceptions import DiagnosticError
from collapse_diag.io.data import Batch, repeat, take, to_device
from collapse_diag.model.decoding import decode, derangement, inputs_per_call
from collapse_diag.model.protocol import ModelInfo
from collapse_diag.report.schema import SWAP_WINDOW_KEY as W
from collapse_diag.runtime import distributed

__all__ = ["aligned_derangement", "time_windows", "window_swap"]


def aligned_derangement(mask: np.ndarray, generator: torch.Generator
                        ) -> tuple[np.ndarray, np.ndarray]:
    """A seeded derangement inside each group of inputs with identical masks.

    Args:
        mask: Valid steps, bool ``(N, T)``.
        generator: Seeded CPU generator.

    Returns:
        ``(pi, paired)``: ``pi[i]`` has the same mask as i and ``pi[i] != i`` where
        ``paired[i]``; an unpaired input (alone in its group) has ``pi[i] == i``.

    Raises:
        DiagnosticError: no two inputs share a mask (nothing can be swapped).
    """
    n = mask.shape[0]
    _, group = np.unique(np.asarray(mask, bool), axis=0, return_inverse=True)
    group = group.reshape(-1)
    pi, paired = np.arange(n), np.zeros(n, bool)
    for g in np.unique(group):
        members = np.flatnonzero(group == g)
        if len(members) >= 2:
            pi[members] = members[derangement(len(members), generator)]
            paired[members] = True
    if paired.sum() < 2:
        raise DiagnosticError(
            "the swap test on sequential latents pairs inputs of equal valid length "
            "(identical latent_mask), and no two inputs share one: analyse more inputs."
        )
    return pi, paired


def time_windows(steps: int, windows: int) -> list[tuple[int, int]]:
    """``min(windows, steps)`` consecutive ``(start, stop)`` windows covering ``range(steps)``."""
    w = min(int(windows), int(steps))
    return [(k * steps // w, (k + 1) * steps // w) for k in range(w)]


def window_swap(model: Any, data: Batch, z: np.ndarray, pi: np.ndarray, order: np.ndarray,
                mask: np.ndarray, info: ModelInfo, settings: Settings) -> list[dict[str, Any]]:
    """The swap per time window (module docstring).

    Args:
        model: Protocol model on ``settings.device``.
        data: The N analysed inputs on the CPU.
        z: Posterior draws ``(N, T, D)``, float64.
        pi: The aligned derangement ``(N,)``.
        order: The paired inputs in a seeded order.
        mask: Valid steps ``(N, T)``.
        info: Result of ``check_model``.
        settings: Uses ``swap_windows``, ``per_dim_swap_max_examples``, ``batch_size``, ``device``.

    Returns:
        One dict per window: ``start``, ``stop`` (steps, stop exclusive), ``swap_delta``
        (mean, nats; NaN when no input reaches the window), ``p_value``, ``examples``.
    """
    windows = time_windows(z.shape[1], settings.swap_windows)
    cap = settings.per_dim_swap_max_examples
    use = order[: len(order) if cap is None else min(cap, len(order))]
    k = len(windows)
    step = inputs_per_call(settings.batch_size, k + 1)

    def window_shard(start: int, stop: int) -> tuple[np.ndarray]:
        """Deltas ``(stop - start, W)`` of the inputs ``use[start:stop]``."""
        delta = np.empty((stop - start, k))
        with torch.no_grad():
            for lo in range(start, stop, step):
                idx = use[lo:min(lo + step, stop)]
                codes = np.repeat(z[idx][None], k + 1, axis=0)  # (k + 1, b, T, D)
                for j, (first, last) in enumerate(windows):
                    codes[1 + j, :, first:last] = z[pi[idx], first:last]
                x = repeat(to_device(take(data, torch.from_numpy(idx)), settings.device), k + 1)
                ll = decode(model, x, codes.reshape((-1,) + z.shape[1:]), info, settings.device)
                ll = ll.reshape(k + 1, len(idx))
                delta[lo - start:lo - start + len(idx)] = (ll[0][None] - ll[1:]).T
        return (delta,)

    (delta,) = distributed.map_shard(len(use), window_shard)
    out = []
    for j, (lo, hi) in enumerate(windows):
        reached = mask[use, lo:hi].any(axis=1)  # inputs with a valid step in the window
        column = delta[reached, j]
        out.append({W.start: lo, W.stop: hi,
                    W.swap_delta: float(column.mean()) if column.size else float("nan"),
                    W.p_value: wilcoxon_greater(column), W.examples: int(column.size)})
    return out
