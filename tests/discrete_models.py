"""Models of every latent kind for the tests (also copied into a user folder as ``kinds.py``).

* ``PointMassVAE``: a "VAE" whose posterior is a point mass (logvar pinned at -30, or
  -inf): the Gaussian protocol must refuse it.
* ``MixedKinds``: defines both ``encode`` and ``encode_codes``.
* ``TinyVQVAE``: a vector-quantised autoencoder on 2-d points, L positions, codebook of K,
  trainable in seconds (``train_vq``), with or without dead-code reset.
* ``ExactCategorical``: a mixture model whose categorical posterior is exact (Bayes' rule).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from toy_models import ToyVAE


class PointMassVAE(ToyVAE):
    """The encoder's mean with logvar at the lower bound -30 (a deterministic code)."""

    def __init__(self, logvar: float = -30.0):
        super().__init__()
        self.pinned = logvar

    def encode(self, x):
        mu, logvar = super().encode(x)
        return mu, torch.full_like(logvar, self.pinned)


class MixedKinds(ToyVAE):
    """A Gaussian encoder and a code map at once."""

    codebook_size = 4

    def encode_codes(self, x):
        return torch.zeros(len(x), 2, dtype=torch.long)


def mixture_data(n: int = 256, centres: int = 8, seed: int = 0) -> torch.Tensor:
    """2-d points around ``centres`` centres on a circle (radius 3, std 0.3)."""
    g = torch.Generator().manual_seed(seed)
    label = torch.randint(0, centres, (n,), generator=g)
    angle = 2 * math.pi * label.double() / centres
    mean = 3 * torch.stack([angle.cos(), angle.sin()], 1)
    return (mean + 0.3 * torch.randn(n, 2, generator=g, dtype=torch.float64)).float()


class TinyVQVAE(nn.Module):
    """x [B, 2] -> L latent vectors (linear) -> nearest of K codes -> decoder -> N(x, 0.3^2)."""

    def __init__(self, positions: int = 2, codes: int = 16, width: int = 2, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.positions, self.width = positions, width
        self.enc = nn.Sequential(nn.Linear(2, 32), nn.Tanh(), nn.Linear(32, positions * width))
        self.dec = nn.Sequential(nn.Linear(positions * width, 32), nn.Tanh(), nn.Linear(32, 2))
        self.codebook = nn.Parameter(torch.randn(codes, width))

    @property
    def codebook_size(self) -> int:
        return int(self.codebook.shape[0])

    def _features(self, x):
        return self.enc(x).reshape(len(x), self.positions, self.width)

    def encode_codes(self, x):
        e = self._features(x)
        return torch.cdist(e, self.codebook.expand(len(x), -1, -1)).argmin(-1)

    def decode_mean(self, codes):
        return self.dec(self.codebook[codes].reshape(len(codes), -1))

    def log_likelihood(self, x, codes):
        resid = x - self.decode_mean(codes)
        return (-0.5 * resid**2 / 0.09 - 0.5 * math.log(2 * math.pi * 0.09)).sum(1)


def train_vq(model: TinyVQVAE, x: torch.Tensor, steps: int = 300, beta: float = 0.25,
             reset: bool = False, seed: int = 0) -> TinyVQVAE:
    """VQ-VAE training (van den Oord et al. 2017): straight-through, codebook + commitment loss.

    ``reset``: every 25 steps each code unused in the batch is moved onto a random
    encoder output (the dead-code reset of Dhariwal et al. 2020 / Zeghidour et al. 2021).
    """
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(steps):
        e = model._features(x)
        index = torch.cdist(e, model.codebook.expand(len(x), -1, -1)).argmin(-1)
        q = model.codebook[index]
        straight = e + (q - e).detach()
        recon = model.dec(straight.reshape(len(x), -1))
        loss = (((recon - x) ** 2).sum(1).mean() + ((q - e.detach()) ** 2).sum(-1).mean()
                + beta * ((e - q.detach()) ** 2).sum(-1).mean())
        opt.zero_grad()
        loss.backward()
        opt.step()
        if reset and step % 25 == 24:
            with torch.no_grad():
                used = torch.bincount(index.reshape(-1), minlength=model.codebook_size) > 0
                dead = (~used).nonzero()[:, 0]
                flat = e.detach().reshape(-1, model.width)
                pick = torch.randint(0, len(flat), (len(dead),), generator=g)
                model.codebook[dead] = flat[pick]
    return model.eval()


class ExactCategorical(nn.Module):
    """D independent mixtures of K 1-d Gaussians: the posterior over each component is exact.

    x [B, D]; c_d ~ p (prior logits ``prior``, shared), x_d | c_d ~ N(m_k, s^2) with
    centres ``m``. ``posterior_logits`` is Bayes' rule, so KL and MI have exact values.
    ``log_likelihood(x, z)`` reads one-hot ``z`` [B, D, K]: sum_d log N(x_d; z_d . m, s^2).
    """

    def __init__(self, centres=(-3.0, 0.0, 3.0), dims: int = 2, scale: float = 1.0,
                 prior=None, ignored: tuple[int, ...] = ()):
        super().__init__()
        self.register_buffer("m", torch.tensor(centres, dtype=torch.float64))
        k = len(centres)
        p = torch.full((k,), 1.0 / k, dtype=torch.float64) if prior is None else \
            torch.tensor(prior, dtype=torch.float64)
        self.register_buffer("log_prior", p.log())
        self.dims, self.scale, self.ignored = dims, scale, ignored
        self.weight = nn.Parameter(torch.ones((), dtype=torch.float64))

    def _log_normal(self, x, mean):
        s2 = self.scale**2
        return -0.5 * (x - mean) ** 2 / s2 - 0.5 * math.log(2 * math.pi * s2)

    def posterior_logits(self, x):
        joint = self.log_prior + self._log_normal(x[:, :, None], self.m)
        return joint - joint.logsumexp(-1, keepdim=True)

    def prior_logits(self, x):
        return self.log_prior.expand(len(x), self.dims, -1)

    def log_likelihood(self, x, z):
        mean = (z.to(self.m.dtype) * self.m).sum(-1) * self.weight
        for d in self.ignored:
            mean = mean.index_fill(1, torch.tensor([d]), 0.0)
        return self._log_normal(x, mean).sum(1)

    def sample(self, n: int, seed: int = 0) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        c = torch.multinomial(self.log_prior.exp(), n * self.dims, replacement=True,
                              generator=g).reshape(n, self.dims)
        return self.m[c] + self.scale * torch.randn(n, self.dims, generator=g,
                                                    dtype=torch.float64)


class IdentityCodes(nn.Module):
    """x is its own code map (int [B, L] in [0, K)); the decoder scores matches per position.

    ``log_likelihood(x, c) = -sum_l w_l [x_l != c_l] - log 2``: position l is read iff w_l > 0.
    """

    def __init__(self, weights=(1.0, 0.0), codes: int = 8):
        super().__init__()
        self.register_buffer("w", torch.tensor(weights, dtype=torch.float32))
        self.codebook_size = codes

    def encode_codes(self, x):
        return x.long()

    def log_likelihood(self, x, codes):
        return -((x != codes).float() * self.w).sum(1) - math.log(2.0)


class ConstantCodes(IdentityCodes):
    """Every input gets code 0 at every position: the codes carry nothing."""

    def encode_codes(self, x):
        return torch.zeros_like(x, dtype=torch.long)
