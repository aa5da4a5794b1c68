"""A sequential-latent model whose truth is known by construction (issue 12).

``SequenceVAE`` is a linear-Gaussian state-space-free model with one latent
vector z_t in R^D per time step, z_{t,d} ~ N(0, 1) i.i.d. under the prior, and
observations ``x_{t,d} = w_d z_{t,d} + s eps`` for the first ``used_steps``
steps and ``x_{t,d} = s eps`` (independent of z) after them. Inputs are dicts
``{"x": [B, T, D] float, "length": [B] long}``; steps ``t >= length`` are
padding (``latent_mask``) and count in neither the likelihood nor the KL.

The encoder is the *exact* posterior, so every figure has a closed form. With
``r_d = w_d^2 / s^2``, per dimension d and step t < ``used_steps``:

* E_x KL_{t,d} = I(x; z_{t,d}) = 0.5 log(1 + r_d);
* Var_x[mu_{t,d}] = w_d^2 / (s^2 + w_d^2), sigma^2_{t,d} = s^2 / (s^2 + w_d^2);

and at t >= ``used_steps`` the posterior is the prior: KL = 0, Var mu = 0,
sigma^2 = 1, and the decoder ignores z_t. A dimension with ``w_d = 0`` is
collapsed at every step; ``weights`` all zero is the fully collapsed model.

``prior_ar`` > 0 adds the conditional prior ``prior(x, z)``:
``p(z_t | z_<t) = N(a z_{t-1}, 1 - a^2)`` (``N(0, 1)`` at t = 0), an AR(1)
prior with unit marginals; the encoder is unchanged (then no longer exact).
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["ARPriorSequenceVAE", "CHECKPOINTS", "SequenceVAE", "build_sequence_vae",
           "closed_form_kl", "sample_inputs", "write_checkpoints"]


class SequenceVAE(nn.Module):
    """Per-step linear-Gaussian VAE; z_t read by the decoder only for t < ``used_steps``.

    Args:
        weights: w_d per latent dimension (D = ``len(weights)``).
        steps: T.
        used_steps: Steps whose z_t the data (and decoder) depend on.
        noise: Observation noise s.
        prior_ar: a of the AR(1) prior of :class:`ARPriorSequenceVAE` (unused here).
    """

    def __init__(self, weights=(2.0, 0.0), steps: int = 16, used_steps: int = 8,
                 noise: float = 0.5, prior_ar: float = 0.0):
        super().__init__()
        self.register_buffer("w", torch.tensor(weights, dtype=torch.float32))
        self.steps, self.used_steps, self.noise = int(steps), int(used_steps), float(noise)
        self.prior_ar = float(prior_ar)
        self.scale = nn.Parameter(torch.ones(len(weights)))  # a weight to save and load
        self.register_buffer("used", (torch.arange(self.steps) < self.used_steps).float())

    def latent_mask(self, x):
        """Valid steps ``[B, T]``: t < length."""
        return torch.arange(self.steps, device=x["length"].device)[None] < x["length"][:, None]

    def encode(self, x):
        """Exact posterior ``[B, T, D]`` (prior N(0, 1) at unused steps)."""
        s2 = self.noise ** 2
        w = self.scale * self.w * self.used[:, None]  # (T, D)
        denom = s2 + w ** 2
        mu = w * x["x"] / denom
        logvar = torch.log(s2 / denom).expand_as(mu)
        return mu, logvar

    def log_likelihood(self, x, z):
        """Log p(x|z) summed over valid steps and dimensions, ``[B]``."""
        mean = self.w * z * self.used[:, None]
        s2 = self.noise ** 2
        ll = -0.5 * (x["x"] - mean) ** 2 / s2 - 0.5 * math.log(2 * math.pi * s2)
        return (ll.sum(dim=2) * self.latent_mask(x)).sum(dim=1)

    def generate(self, z):
        """The decoder's mean E[x_t | z_t] = w z_t (0 after ``used_steps``), ``[B, T, D]``."""
        return self.w * z * self.used[:, None]



class ARPriorSequenceVAE(SequenceVAE):
    """:class:`SequenceVAE` with the AR(1) conditional prior ``prior(x, z)`` (``prior_ar`` = a)."""

    def prior(self, x, z):
        """``N(a z_{t-1}, 1 - a^2)``, ``N(0, 1)`` at t = 0: step t reads only ``z[:, :t]``."""
        a = self.prior_ar
        mu = torch.cat([torch.zeros_like(z[:, :1]), a * z[:, :-1]], dim=1)
        logvar = torch.full_like(z, math.log(1 - a * a))
        logvar[:, 0] = 0.0
        return mu, logvar


def build_sequence_vae(weights=(2.0, 0.0), steps: int = 16, used_steps: int = 8,
                       noise: float = 0.5, prior_ar: float = 0.0) -> SequenceVAE:
    """The model; :class:`ARPriorSequenceVAE` when ``prior_ar > 0``."""
    cls = ARPriorSequenceVAE if prior_ar > 0 else SequenceVAE
    return cls(tuple(weights), steps, used_steps, noise, prior_ar)


def sample_inputs(model: SequenceVAE, n: int, seed: int = 0, min_length: int | None = None
                  ) -> dict[str, torch.Tensor]:
    """Draw n inputs from the model (seeded); lengths uniform in [min_length, T] (default T)."""
    g = torch.Generator().manual_seed(seed)
    t, d = model.steps, len(model.w)
    z = torch.randn(n, t, d, generator=g)
    x = model.w * z * model.used[:, None] + model.noise * torch.randn(n, t, d, generator=g)
    low = t if min_length is None else int(min_length)
    length = torch.randint(low, t + 1, (n,), generator=g)
    x = x * (torch.arange(t)[None] < length[:, None])[:, :, None]
    return {"x": x, "length": length}


def closed_form_kl(model: SequenceVAE) -> torch.Tensor:
    """E_x KL_{t,d} = 0.5 log(1 + w_d^2 / s^2) at used steps, 0 after: shape ``(D, T)``."""
    r = (model.w.double() / model.noise) ** 2
    return 0.5 * torch.log1p(r)[:, None] * model.used.double()[None]


#: The shipped checkpoints (collapse_diag/examples/checkpoints/): name -> factory config.
CHECKPOINTS = {
    "sequence_first_half.pt": {"weights": [2.0, 0.0], "steps": 16, "used_steps": 8},
    "sequence_collapsed.pt": {"weights": [0.0, 0.0], "steps": 16, "used_steps": 8},
}


def write_checkpoints(folder, n: int = 400, seed: int = 0) -> list:
    """Write :data:`CHECKPOINTS` to ``folder``, each with ``n`` inputs of lengths 12..16.

    No training: the weights are the model's by construction (the encoder is the exact
    posterior). ``python -m collapse_diag.examples.sequence_vae FOLDER`` runs this.
    """
    from pathlib import Path

    from collapse_diag.io.checkpoint import save_checkpoint

    paths = []
    for name, config in CHECKPOINTS.items():
        model = build_sequence_vae(**config)
        paths.append(save_checkpoint(Path(folder) / name, model,
                                     "collapse_diag.examples.sequence_vae:SequenceVAE", config,
                                     data=sample_inputs(model, n, seed=seed, min_length=12)))
    return paths


if __name__ == "__main__":  # pragma: no cover - writes the shipped checkpoints
    import sys

    print(write_checkpoints(sys.argv[1] if len(sys.argv) > 1 else
                            "collapse_diag/examples/checkpoints"))
