"""Models that break the protocol or misbehave, one way each, for the hardening and fuzz tests.

Copied into the test's working folder as ``hostile.py`` next to ``models.py``
(tests/toy_models.py), so checkpoints can name ``hostile:<Class>``. Every class
is an ``nn.Module`` built from :class:`ToyVAE` with its default config, so a
checkpoint of ``ToyVAE().state_dict()`` loads into any of them.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch
from models import ToyVAE  # the copy of toy_models.py in the same folder


class DetachZ(ToyVAE):
    """Detaches z: values change with z, no gradient reaches it."""

    def log_likelihood(self, x, z):
        return super().log_likelihood(x, z.detach())


class ItemZ(ToyVAE):
    """Rebuilds z from Python floats (``.item()``) row by row."""

    def log_likelihood(self, x, z):
        rebuilt = torch.tensor([[v.item() for v in row] for row in z], dtype=z.dtype)
        return super().log_likelihood(x, rebuilt)


class NumpyZ(ToyVAE):
    """Round-trips z through numpy."""

    def log_likelihood(self, x, z):
        return super().log_likelihood(x, torch.from_numpy(np.array(z.detach().numpy())))


class MixRows(ToyVAE):
    """Adds a statistic of the whole batch of codes to every row."""

    def log_likelihood(self, x, z):
        return super().log_likelihood(x, z) + z.mean()


class Noisy(ToyVAE):
    """Adds fresh noise to every call (dropout left on, sampling inside)."""

    def log_likelihood(self, x, z):
        return super().log_likelihood(x, z) + torch.rand(len(z))


class MixRowsLater(ToyVAE):
    """Mixes rows only for inputs marked late (x[:, 2] > 4): the first inputs look fine."""

    def log_likelihood(self, x, z):
        late = (x[:, 2] > 4).any()
        return super().log_likelihood(x, z) + (z.mean() if late else 0.0)


class NoisyLater(ToyVAE):
    """Non-deterministic only for inputs marked late (x[:, 2] > 4)."""

    def log_likelihood(self, x, z):
        late = (x[:, 2] > 4).any()
        return super().log_likelihood(x, z) + (torch.rand(len(z)) if late else 0.0)


class EncoderBatchStats(ToyVAE):
    """Centres each batch of inputs before encoding (BatchNorm in training mode, in effect)."""

    def encode(self, x):
        return super().encode(x - x.mean(dim=0, keepdim=True))


class WritesIntoX(ToyVAE):
    """Scales its input in place in log_likelihood."""

    def log_likelihood(self, x, z):
        x.mul_(1.5)
        return super().log_likelihood(x, z)


class IgnoresZ(ToyVAE):
    """A fully collapsed decoder: legitimate, must pass the checks."""

    def log_likelihood(self, x, z):
        return super().log_likelihood(x, torch.zeros_like(z))


class TinyLogvar(ToyVAE):
    """Encoder log-variance -1000 (variance underflows to 0)."""

    def encode(self, x):
        mu, logvar = super().encode(x)
        return mu, torch.full_like(logvar, -1000.0)


class HugeLogvar(ToyVAE):
    """Encoder log-variance +1000."""

    def encode(self, x):
        mu, logvar = super().encode(x)
        return mu, torch.full_like(logvar, 1000.0)


class EncodeFailsLater(ToyVAE):
    """Passes the 4-input check, raises on the first full batch."""

    def encode(self, x):
        if len(x) > 4:
            raise RuntimeError("CUDA out of memory (simulated)")
        return super().encode(x)


class ExitsInFactory(ToyVAE):
    """Calls sys.exit(0) while being built."""

    def __init__(self, **config):
        sys.exit(0)


class Abort(BaseException):
    """A user's own BaseException subclass (not an Exception)."""


class BaseExceptionInFactory(ToyVAE):
    """Raises a BaseException that is not an Exception while being built."""

    def __init__(self, **config):
        raise Abort("stop everything")


class GeneratorExitInEncode(ToyVAE):
    """Raises GeneratorExit in encode on a full batch."""

    def encode(self, x):
        if len(x) > 4:
            raise GeneratorExit
        return super().encode(x)


class RaisesInFactory(ToyVAE):
    """Raises while being built."""

    def __init__(self, **config):
        raise RuntimeError("factory exploded")


class ExitsInEncode(ToyVAE):
    """Calls sys.exit(0) in encode on a full batch."""

    def encode(self, x):
        if len(x) > 4:
            sys.exit(0)
        return super().encode(x)


class ExitsInDecoder(ToyVAE):
    """Calls sys.exit(0) in log_likelihood once the diagnostics run (big batches)."""

    def log_likelihood(self, x, z):
        if len(z) > 16:
            sys.exit(0)
        return super().log_likelihood(x, z)


class Float64(ToyVAE):
    """Weights in float64 (data saved in float32 must be cast)."""

    def __init__(self, **config):
        super().__init__(**config)
        self.double()


class Slow(ToyVAE):
    """A slow decoder that says when the diagnostics started (for the SIGINT test)."""

    def log_likelihood(self, x, z):
        if len(z) > 4:
            Path("STARTED").touch()
            time.sleep(0.2)
        return super().log_likelihood(x, z)


class ReturnsOne(ToyVAE):
    """encode returns mu only."""

    def encode(self, x):
        return super().encode(x)[0]


class WrongShapeLL(ToyVAE):
    """log_likelihood keeps the observation axis."""

    def log_likelihood(self, x, z):
        return (x - self.w * z) ** 2


class NaNMu(ToyVAE):
    """encode returns NaN means."""

    def encode(self, x):
        mu, logvar = super().encode(x)
        return mu * float("nan"), logvar


class IntMu(ToyVAE):
    """encode returns integer means."""

    def encode(self, x):
        mu, logvar = super().encode(x)
        return mu.long(), logvar


class NoMethods(torch.nn.Module):
    """Has neither encode nor log_likelihood."""
