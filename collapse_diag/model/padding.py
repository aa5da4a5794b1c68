"""Padded variants of a batch of sequences, for the padding self-check of ``check_model``.

A sequence model's batch ``x`` (a Tensor ``[batch, length, ...]``) is padded to
the width of its longest input. Each input's figures must not depend on that
width: a model trained with equal-length batches whose encoder reads the pad
tokens (an LSTM's last state), or whose loss counts them, gives different
values for the same sentence depending on what it is batched with. He et al.
(2019)'s text VAE is the classic case: with mixed-length batches a naive
adapter is off by tens of nats per sentence.

The check builds, from the (at most 4) inputs ``check_model`` uses:

* ``trimmed``: the batch without the trailing columns that are padding in
  every row (the inputs as if batched alone);
* ``longer``: the batch with :data:`PAD_COLUMNS` more padding columns (as if
  batched with a longer input).

The padding value is read off the input with the fewest tokens: its last
position. It counts as padding only if ``num_tokens`` is unchanged by the
added or removed columns; otherwise the check cannot tell padding from
content and is skipped. Dict inputs, inputs with no padding, and sequential
latents (z of shape ``[batch, T, D]``) are skipped too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

__all__ = ["PAD_COLUMNS", "padded_variants"]

#: Padding columns the ``longer`` variant adds.
PAD_COLUMNS = 8


def padded_variants(x: Any, num_tokens: Callable[[torch.Tensor], torch.Tensor]
                    ) -> dict[str, torch.Tensor]:
    """``{"trimmed": ..., "longer": ...}`` variants of ``x`` with other padding (maybe empty).

    Args:
        x: The batch, a Tensor ``[batch, length, ...]`` (anything else: no variants).
        num_tokens: The model's (checked) ``num_tokens``.

    Returns:
        The variants whose ``num_tokens`` equal those of ``x``, by name.
    """
    if not isinstance(x, torch.Tensor) or x.dim() < 2 or x.shape[1] < 2:
        return {}
    counts = num_tokens(x)
    shortest = int(torch.argmin(counts))
    pad = x[shortest, -1:]  # [1, ...]: the value at the shortest input's last position
    rows, width = x.shape[0], x.shape[1]
    pad_column = (x == pad.unsqueeze(0)).reshape(rows, width, -1).all(dim=-1).all(dim=0)
    trailing = 0
    while trailing < width - 1 and bool(pad_column[width - 1 - trailing]):
        trailing += 1
    extra = pad.unsqueeze(0).expand(rows, PAD_COLUMNS, *x.shape[2:])
    candidates = {"longer": torch.cat([x, extra], dim=1)}
    if trailing:
        candidates["trimmed"] = x[:, : width - trailing]
    variants = {}
    for name, variant in candidates.items():
        try:
            same = torch.equal(num_tokens(variant).cpu(), counts.cpu())
        except Exception:  # noqa: BLE001 - the model cannot count this variant: skip it
            same = False
        if same:
            variants[name] = variant
    return variants
