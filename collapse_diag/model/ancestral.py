"""Ancestral sampling of a posterior conditioned on the sampled past: q(z_t | x, z_<t).

A VRNN (Chung et al. 2015), SRNN (Fraccaro et al. 2016) or Z-Forcing (Goyal et al.
2017) posterior reads the codes drawn at earlier steps. The protocol's optional
``posterior(x, z) -> (mu, logvar)`` ``[batch, T, D]`` gives step t from ``z[:, :t]``
(teacher-forced), so the tool draws a sequence step by step, T calls per batch::

    z = 0
    for t in 0 .. T-1:
        mu, logvar = posterior(x, z)          # step t reads z[:, :t] only
        z[:, t] = mu[:, t] + exp(logvar[:, t] / 2) * eps[:, t]

and keeps ``mu[:, t], logvar[:, t]`` of call t: the posterior's parameters at every
step, at the drawn past. (A model whose step t reads ``z[:, t:]`` breaks the contract:
its figures would be those of a different model.)
"""

from __future__ import annotations

from typing import Any

import torch

from collapse_diag.io.data import Batch
from collapse_diag.model.protocol import call_posterior

__all__ = ["ancestral_posterior"]


def ancestral_posterior(model: Any, x: Batch, noise: torch.Tensor, dtype: torch.dtype
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Draw ``z ~ q(z|x)`` step by step; return ``(z, mu, logvar)``, each ``[batch, T, D]``.

    Args:
        model: A sequential model with ``posterior(x, z)``, on the device of ``x``.
        x: Inputs (on the model's device).
        noise: Standard normals ``[batch, T, D]`` (float64, on the model's device).
        dtype: The model's floating dtype (z is fed back in it).

    Returns:
        The drawn codes (float64) and the posterior's mu and logvar (float64) at every
        step, given the drawn past.
    """
    z = torch.zeros_like(noise)
    mu, logvar = torch.empty_like(noise), torch.empty_like(noise)
    for t in range(noise.shape[1]):
        m, lv = call_posterior(model, x, z.to(dtype), values=False)
        mu[:, t], logvar[:, t] = m[:, t].double(), lv[:, t].double()
        z[:, t] = mu[:, t] + torch.exp(0.5 * logvar[:, t]) * noise[:, t]
    return z, mu, logvar
