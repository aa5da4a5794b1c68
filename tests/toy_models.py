"""Models whose answers are known in closed form, for the tests.

``ToyVAE``: a linear Gaussian VAE with independent coordinates,
``x_d = w_d z_d + s * eps_d`` with ``z ~ N(0, I)``, and its *exact* posterior as
encoder: ``var_d = s^2 / (s^2 + w_d^2)``, ``mu_d(x) = w_d x_d / (s^2 + w_d^2)``.
Closed forms (per dimension, in nats), with r_d = w_d^2 / s^2:

* mean KL_d = MI_d = 0.5 * log(1 + r_d); marginal KL = 0 (q(z) = p(z));
* Var_x[mu_d(x)] = w_d^2 / (s^2 + w_d^2); E[sigma_d^2] = s^2 / (s^2 + w_d^2).

A dimension with w_d = 0 is switched off: posterior = prior, KL = MI = 0.
This file is also copied into a temporary folder as a user's ``models.py``.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class ToyVAE(nn.Module):
    """Linear Gaussian VAE with an exact diagonal posterior."""

    def __init__(self, weights=(2.0, 1.0, 0.0), noise: float = 0.5):
        super().__init__()
        self.register_buffer("w", torch.tensor(weights, dtype=torch.float32))
        self.noise = noise
        self.scale = nn.Parameter(torch.ones(len(weights)))  # a weight to save and load

    def encode(self, x):
        s2 = self.noise**2
        denom = s2 + self.w**2
        mu = self.scale * self.w * x / denom
        logvar = torch.log(s2 / denom).expand_as(x)
        return mu, logvar

    def log_likelihood(self, x, z):
        resid = x - self.w * z
        s2 = self.noise**2
        return (-0.5 * resid**2 / s2 - 0.5 * math.log(2 * math.pi * s2)).sum(dim=1)

    def sample(self, n: int, seed: int = 0) -> torch.Tensor:
        """Draw n inputs x from the model (seeded)."""
        g = torch.Generator().manual_seed(seed)
        z = torch.randn(n, len(self.w), generator=g)
        return self.w * z + self.noise * torch.randn(n, len(self.w), generator=g)


def build_toy(weights=(2.0, 1.0, 0.0), noise: float = 0.5) -> ToyVAE:
    """Factory used as ``models:build_toy``."""
    return ToyVAE(weights=tuple(weights), noise=noise)


def closed_form(weights, noise):
    """Per-dimension closed-form KL (= MI), Var[mu] and E[sigma^2]."""
    out = []
    for w in weights:
        r = w**2 / noise**2
        out.append({
            "kl": 0.5 * math.log1p(r),
            "mu_variance": w**2 / (noise**2 + w**2),
            "posterior_variance": noise**2 / (noise**2 + w**2),
        })
    return out


class MaliciousPickle:
    """Unpickling this runs a shell command (touches ``marker``): what a checkpoint can carry."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))
