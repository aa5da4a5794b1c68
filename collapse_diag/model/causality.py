"""The teacher-forcing contract of ``posterior(x, z)`` and ``prior(x, z)``, checked.

For sequential latents the conditional posterior q(z_t | x, z_<t) and the conditional
prior p(z_t | z_<t) are both called with a whole code sequence ``z`` ``[batch, T, D]``
and must compute step t from ``z[:, :t]`` alone, the teacher-forced past
(docs/model-protocol.md, "Sequential latents"). A model whose step t reads ``z[:, t]``
or later (an off-by-one shift, a bidirectional RNN over z) is a different model: the
ancestral draw (collapse_diag/model/ancestral.py) would feed it codes it was never
meant to see, and KL per step, the IW-NLL and every status would describe that other
model. The check:

    for a few t drawn with the run's seed:
        z' = z, with z'[:, s] = z[:, s] + 1 + |e_s|  for every s >= t   (e ~ N(0, I))
        out(z') at steps 0 .. t must equal out(z) (relative tolerance 1e-4)

Every output step s <= t reads only ``z[:, :s]``, a prefix of ``z[:, :t]`` which the
perturbation leaves alone, so a model keeping the contract passes exactly (up to the
rounding of a batched call); the shift of at least 1 per coordinate cannot vanish in a
float. On a failure one call per later step finds the first step u >= s whose change
moves output step s, and the message says "step s reads z[:, u]".
"""

from __future__ import annotations

from typing import Any

import torch

from collapse_diag.exceptions import ProtocolError
from collapse_diag.io.data import Batch, num_examples
from collapse_diag.model.protocol import (
    _ROW_RTOL,  # one tolerance for every protocol check
    ModelInfo,
    call_posterior,
    call_prior,
)

__all__ = ["CAUSAL_CHECKS", "check_teacher_forcing"]

#: Steps t tested per method (fewer when T is smaller), drawn with the run's generator.
CAUSAL_CHECKS = 3


def _changed(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Steps ``[T]`` where ``b`` differs from ``a`` beyond :data:`_ROW_RTOL` (any row, dim)."""
    a, b = a.detach().double(), b.detach().double()
    return ((a - b).abs() > _ROW_RTOL * (1.0 + a.abs())).flatten(2).any(2).any(0)


def _pair(method: str, model: Any, x: Batch, z: torch.Tensor, latent_dim: int
          ) -> torch.Tensor:
    """The method's (mu, logvar) at ``z``, stacked ``[2 * batch, T, D]``."""
    if method == "posterior(x, z)":
        mu, logvar = call_posterior(model, x, z)
    else:
        mu, logvar = call_prior(model, x, latent_dim, z)
    return torch.cat([mu, logvar])


def _shifted(z: torch.Tensor, steps: slice, generator: torch.Generator) -> torch.Tensor:
    out = z.clone()
    bump = 1.0 + torch.randn(out[:, steps].shape, generator=generator, dtype=torch.float64).abs()
    out[:, steps] += bump.to(out.dtype).to(out.device)
    return out


def _first_read(method: str, model: Any, x: Batch, z: torch.Tensor, base: torch.Tensor,
                step: int, latent_dim: int, generator: torch.Generator) -> int:
    """The first step u >= ``step`` whose change alone moves output ``step``."""
    for u in range(step, z.shape[1]):
        if _changed(base, _pair(method, model, x, _shifted(z, slice(u, u + 1), generator),
                                latent_dim))[step]:
            return u
    return step  # only a joint change of several later steps moves it: name the first


def check_teacher_forcing(model: Any, x: Batch, info: ModelInfo, generator: torch.Generator,
                          device: torch.device | str = "cpu") -> None:
    """Refuse a conditional posterior or prior whose step t reads ``z[:, t:]``.

    Checks ``posterior(x, z)`` (when ``info.has_posterior``) and ``prior(x, z)`` (when
    the sequential model has a prior) at :data:`CAUSAL_CHECKS` steps t drawn from
    ``generator``: perturbing ``z[:, t:]`` must leave the outputs at steps ``<= t``
    unchanged (relative tolerance 1e-4 = ``_ROW_RTOL``). Nothing is checked for
    non-sequential models.

    Args:
        model: The model, in eval mode, on the device of ``x``.
        x: A few inputs (on the model's device).
        info: What the protocol check found.
        generator: The run's generator for this check (CPU).
        device: The model's device (the codes are drawn on the CPU and moved there).

    Raises:
        ProtocolError: one line, "``method`` reads the future: its step s reads z[:, u]".
    """
    if info.steps is None:
        return
    methods = (["posterior(x, z)"] if info.has_posterior else []) + (
        ["prior(x, z)"] if info.has_prior else [])
    if not methods:
        return
    n, steps, dims = num_examples(x), info.steps, info.latent_dim
    z = torch.randn((n, steps, dims), generator=generator, dtype=torch.float64)
    z = z.to(device=device, dtype=info.dtype)
    chosen = torch.randperm(steps, generator=generator)[:CAUSAL_CHECKS].sort().values.tolist()
    with torch.no_grad():
        for method in methods:
            base = _pair(method, model, x, z, dims)
            for t in chosen:
                moved = _changed(base, _pair(method, model, x, _shifted(z, slice(t, None),
                                                                          generator), dims))
                early = moved[: t + 1].nonzero().flatten()
                if early.numel():
                    s = int(early[0])
                    u = _first_read(method, model, x, z, base, s, dims, generator)
                    raise ProtocolError(
                        f"{method} reads the future: its step {s} changes with z[:, {u}] "
                        f"(step t must read only z[:, :t], the teacher-forced past, relative "
                        f"tolerance {_ROW_RTOL:g}); shift the codes it reads by one step "
                        "(e.g. feed cat([0, z[:, :-1]]) to its recurrence) "
                        "(see docs/model-protocol.md, 'Sequential latents')."
                    )
