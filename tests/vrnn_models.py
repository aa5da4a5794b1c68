"""A tiny VRNN-like model: posterior and prior both read the sampled past (float64, exact).

x [B, T]; z [B, T, D]. q(z_t | x, z_<t) = N(a x_t + b z_{t-1}, 0.3); p(z_t | z_<t) =
N(c z_{t-1}, 1); x_t | z ~ N(r_t sum_d z_td, 0.5^2) with r_t = 1 for t < ``reads`` and 0
after: the decoder reads z only at the early steps.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class TinyVRNN(nn.Module):
    def __init__(self, steps: int = 6, dims: int = 2, reads: int = 3, a: float = 0.8,
                 b: float = 0.5, c: float = 0.6):
        super().__init__()
        self.steps, self.dims = steps, dims
        self.a, self.b, self.c = a, b, c
        self.register_buffer("read", (torch.arange(steps) < reads).double())
        self.scale = nn.Parameter(torch.ones((), dtype=torch.float64))

    @staticmethod
    def _previous(z):
        return torch.cat([torch.zeros_like(z[:, :1]), z[:, :-1]], dim=1)

    def posterior(self, x, z):
        mu = self.a * x[:, :, None] * self.scale + self.b * self._previous(z)
        return mu, torch.full_like(mu, math.log(0.3))

    def encode(self, x):
        return self.posterior(x, torch.zeros(len(x), self.steps, self.dims,
                                             dtype=torch.float64))

    def prior(self, x, z):
        mu = self.c * self._previous(z)
        return mu, torch.zeros_like(mu)

    def log_likelihood(self, x, z):
        mean = self.read * z.sum(-1)
        return (-0.5 * (x - mean) ** 2 / 0.25 - 0.5 * math.log(2 * math.pi * 0.25)).sum(1)

    def sample(self, n: int, seed: int = 0) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        return torch.randn(n, self.steps, generator=g, dtype=torch.float64)


class PeekingVRNN(TinyVRNN):
    """Breaks the teacher-forcing contract: step t of ``peeks`` reads z[:, t + lag].

    ``peeks="posterior"`` or ``"prior"``; ``lag=0`` reads z_t itself (the off-by-one of
    a recurrence fed z instead of its shift), ``lag=1`` the next step.
    """

    def __init__(self, peeks: str = "posterior", lag: int = 0, **kw):
        super().__init__(**kw)
        self.peeks, self.lag = peeks, lag

    def _future(self, z):
        ahead = torch.cat([z[:, self.lag:], torch.zeros_like(z[:, :self.lag])], dim=1)
        return 0.1 * ahead

    def posterior(self, x, z):
        mu, logvar = super().posterior(x, z)
        return (mu + self._future(z), logvar) if self.peeks == "posterior" else (mu, logvar)

    def prior(self, x, z):
        mu, logvar = super().prior(x, z)
        return (mu + self._future(z), logvar) if self.peeks == "prior" else (mu, logvar)
