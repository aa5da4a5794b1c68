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

* ``alone``: each input by itself, cut to its own length (its trailing padding
  removed): the mixed-length batch against single-input calls.

The padding value is read off the input with the fewest tokens: its last
position. It counts as padding only if ``num_tokens`` is unchanged by the
added or removed columns; otherwise the check cannot tell padding from
content and is skipped. Dict inputs, inputs with no padding, and sequential
latents (z of shape ``[batch, T, D]``) are skipped too.

Without ``num_tokens`` (issue 25), integer inputs ``[batch, length]`` are
checked when a padding value shows itself (:func:`guess_pad`): one token id
that ends at least half the inputs, that occurs in every input only as a
trailing run, and whose longest run has at least two positions. An end token
that closes equal-length inputs (runs of one) is not taken for padding.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

__all__ = ["PAD_COLUMNS", "alone", "guess_pad", "padded_variants", "trailing_runs",
           "variants_by_pad"]

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


def trailing_runs(x: torch.Tensor, pad: Any) -> torch.Tensor:
    """Length of each row's trailing run of ``pad``: ``[batch]`` (x ``[batch, length, ...]``)."""
    is_pad = (x == pad).reshape(x.shape[0], x.shape[1], -1).all(dim=-1)
    # a run is trailing: position t is in it when every position from t on is pad
    suffix = torch.flip(torch.cumprod(torch.flip(is_pad.long(), dims=[1]), dim=1), dims=[1])
    return suffix.sum(dim=1)


def guess_pad(x: Any) -> int | None:
    """The padding id of integer inputs ``[batch, length]`` without ``num_tokens``, or ``None``.

    The rule (module docstring): the most common last token, ending at least
    half the rows, found in every row only inside its trailing run, with a
    longest run of at least 2.
    """
    if (not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[1] < 3
            or x.is_floating_point() or x.is_complex() or x.dtype == torch.bool):
        return None
    last = x[:, -1]
    pad = int(torch.mode(last).values)
    runs = trailing_runs(x, pad)
    if 2 * int((last == pad).sum()) < len(last) or int(runs.max()) < 2:
        return None
    if not torch.equal((x == pad).sum(dim=1), runs):  # pad also inside some row: content
        return None
    return pad


def alone(x: torch.Tensor, pad: Any) -> list[tuple[int, torch.Tensor]]:
    """Each row by itself, cut to its own length: ``(row, Tensor [1, length_row, ...])``.

    Rows that are all padding, or that have no padding (already alone), are left out.
    """
    runs = trailing_runs(x, pad).tolist()
    width = x.shape[1]
    return [(row, x[row:row + 1, : width - run]) for row, run in enumerate(runs)
            if 0 < run < width]


def variants_by_pad(x: torch.Tensor, pad: Any) -> dict[str, torch.Tensor]:
    """``longer`` and (when every row has some) ``trimmed`` variants for a known ``pad``."""
    rows, width = x.shape[0], x.shape[1]
    extra = torch.full((rows, PAD_COLUMNS, *x.shape[2:]), pad, dtype=x.dtype, device=x.device)
    out = {"longer": torch.cat([x, extra], dim=1)}
    common = int(trailing_runs(x, pad).min())
    if 0 < common < width:
        out["trimmed"] = x[:, : width - common]
    return out
