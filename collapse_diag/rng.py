"""The run's randomness: one seed, one generator per diagnostic derived from it.

Each diagnostic draws from its own :class:`torch.Generator`, seeded from the run
seed and the diagnostic's name, so that its numbers do not change when another
diagnostic is disabled or fails. Same seed, same numbers; the global RNG is never used.
"""

from __future__ import annotations

import zlib

import torch

__all__ = ["generator_for"]


def generator_for(seed: int, name: str) -> torch.Generator:
    """A CPU generator seeded from the run seed and a diagnostic name.

    Random draws are made on the CPU with this generator and then moved to the
    model's device, so results do not depend on the device.

    Args:
        seed: The run seed (``Settings.seed``).
        name: The diagnostic's name, e.g. ``"information"``.
    """
    return torch.Generator(device="cpu").manual_seed(
        (seed * 1_000_003 + zlib.crc32(name.encode())) % (2**63)
    )
