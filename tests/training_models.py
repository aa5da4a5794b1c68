"""A tiny trainable VAE for the monitor and Lightning-callback tests.

``TinyVAE``: linear Gaussian encoder with dropout on its input (so train and
eval mode differ), a ``frozen`` batch-norm submodule the user keeps in eval
mode (so restoring the training mode must restore each submodule's own flag),
and a linear Gaussian decoder. ``switch_off(d)`` zeroes dimension d's encoder
and decoder weights and its posterior log-variance: q(z_d|x) = N(0, 1) = p(z_d)
for every x, so its KL is exactly 0 from then on (a collapse by construction).
"""

from __future__ import annotations

import math

import torch
from torch import nn


class TinyVAE(nn.Module):
    def __init__(self, dim: int = 3) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.drop = nn.Dropout(0.5)
        self.frozen = nn.BatchNorm1d(dim)
        self.frozen.eval()
        self.enc = nn.Parameter(torch.eye(dim) + 0.1 * torch.randn(dim, dim, generator=gen))
        self.lv = nn.Parameter(torch.full((dim,), -1.0))
        self.dec = nn.Parameter(torch.eye(dim))

    def encode(self, x):
        h = self.drop(self.frozen(x))
        return h @ self.enc.T, self.lv.expand(x.shape[0], -1)

    def log_likelihood(self, x, z):
        r = x - z @ self.dec.T
        return (-0.5 * r**2 / 0.25 - 0.5 * math.log(2 * math.pi * 0.25)).sum(dim=1)

    def loss(self, x, gen=None):
        mu, logvar = self.encode(x)
        z = mu + torch.randn(mu.shape, generator=gen) * (0.5 * logvar).exp()
        kl = 0.5 * (mu**2 + logvar.exp() - 1 - logvar).sum(dim=1)
        return (kl - self.log_likelihood(x, z)).mean()

    @torch.no_grad()
    def switch_off(self, d: int) -> None:
        self.enc[d].zero_()
        self.lv[d] = 0.0
        self.dec[:, d] = 0.0


def tiny_data(n: int = 256, dim: int = 3, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, dim, generator=gen) + 0.3 * torch.randn(n, dim, generator=gen)
