"""One encoder pass over the inputs: everything encoder-side derives from its output.

The only thing kept for every example is its encoder output (and prior, and
size). Everything encoder-side (KL, activity, information) is a pure function
of :class:`Encodings`: no model, no I/O, testable on hand-made arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from collapse_diag.data import Batch, iter_batches, num_examples, to_device
from collapse_diag.progress import progress
from collapse_diag.protocol import (
    ModelInfo,
    call_encode,
    call_latent_mask,
    call_num_tokens,
    call_prior,
)

__all__ = ["Encodings", "encode_all"]


@dataclass(frozen=True)
class Encodings:
    """Encoder outputs for every analysed input, as float64 arrays.

    Attributes:
        mu: Posterior means, shape ``(n_examples, latent_dim)``.
        logvar: Posterior log-variances, shape ``(n_examples, latent_dim)``.
        prior_mu: Prior means per input, same shape, or ``None`` for N(0, I).
        prior_logvar: Prior log-variances per input, or ``None`` for N(0, I).
        num_tokens: Size of each observation, shape ``(n_examples,)``, or ``None``.
        mask: Sequential latents only: valid steps, bool ``(n_examples, T)``; ``None``
            for vector latents. With sequential latents mu, logvar and the prior have
            shape ``(n_examples, T, latent_dim)``.
    """

    mu: np.ndarray
    logvar: np.ndarray
    prior_mu: np.ndarray | None = None
    prior_logvar: np.ndarray | None = None
    num_tokens: np.ndarray | None = None
    mask: np.ndarray | None = None

    @property
    def sequential(self) -> bool:
        """Z has a time axis: arrays ``(N, T, D)`` and a mask ``(N, T)``."""
        return self.mu.ndim == 3

    @property
    def steps(self) -> int | None:
        """T for sequential latents, else ``None``."""
        return int(self.mu.shape[1]) if self.sequential else None

    def valid(self) -> np.ndarray:
        """Valid steps, bool ``(N, T)`` (all True without a mask). Sequential latents only."""
        if self.mask is None:
            return np.ones(self.mu.shape[:2], dtype=bool)
        return self.mask

    def flat(self) -> Encodings:
        """The sequential encodings as vector encodings of size ``T * D`` (step-major).

        Coordinate ``t * D + d`` is z_{t,d}. At invalid steps the posterior *and*
        the prior are set to N(0, 1) (mu = logvar = 0), so those coordinates add
        exactly 0 to the KL and carry no information about x beyond the length.
        """
        n, t, d = self.mu.shape
        keep = self.valid()[:, :, None]

        def zeroed(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else np.where(keep, a, 0.0).reshape(n, t * d)

        return Encodings(mu=zeroed(self.mu), logvar=zeroed(self.logvar),
                         prior_mu=zeroed(self.prior_mu), prior_logvar=zeroed(self.prior_logvar),
                         num_tokens=self.num_tokens)

    @property
    def n_examples(self) -> int:
        """Number of analysed inputs N."""
        return int(self.mu.shape[0])

    @property
    def latent_dim(self) -> int:
        """Size D of z (the last axis)."""
        return int(self.mu.shape[-1])

    def prior(self) -> tuple[np.ndarray, np.ndarray]:
        """Prior (mean, log-variance) per input, shape ``(N, D)`` each; zeros for N(0, I)."""
        if self.prior_mu is None or self.prior_logvar is None:
            zeros = np.zeros_like(self.mu)
            return zeros, zeros
        return self.prior_mu, self.prior_logvar


def _np64(parts: list[torch.Tensor]) -> np.ndarray:
    """Concatenate per-batch outputs on their device, then one copy to the host in float64."""
    return torch.cat(parts).to("cpu", torch.float64).numpy()


def _to_device(batch: Batch, device: torch.device | str) -> Batch:
    """Host-to-device copy; from pinned memory and non-blocking when the target is CUDA."""
    if torch.device(device).type != "cuda":
        return to_device(batch, device)
    if isinstance(batch, torch.Tensor):
        return batch.pin_memory().to(device, non_blocking=True)
    return {k: v.pin_memory().to(device, non_blocking=True) for k, v in batch.items()}


def encode_all(
    model: Any,
    data: Batch,
    info: ModelInfo,
    batch_size: int,
    device: torch.device | str = "cpu",
    show_progress: bool = False,
    generator: torch.Generator | None = None,
) -> Encodings:
    """Run the encoder (and prior, and num_tokens) once over every input, in batches.

    Sequential latents with a conditional prior ``prior(x, z)``: the prior is
    evaluated at one posterior draw ``z ~ q(z|x)`` per input (noise from
    ``generator``, CPU float64, drawn for all inputs at once so that it does
    not depend on the batch size), so ``KL(q(z_t|x) || p(z_t | z_<t, x))`` is the
    usual one-sample estimate of the VRNN rate term.

    Args:
        model: A model following the protocol, already on ``device`` and in eval mode.
        data: Inputs (Tensor or dict of Tensors) on the CPU.
        info: Result of :func:`~collapse_diag.protocol.check_model`.
        batch_size: Examples per encoder call.
        device: Where the model runs.
        show_progress: Show a progress bar on stderr.
        generator: Seeded CPU generator for the posterior draw a conditional prior reads
            (sequential latents with ``prior(x, z)`` only; default seed 0).

    Returns:
        The :class:`Encodings` of all inputs, in input order.
    """
    n = num_examples(data)
    mus, logvars, pmus, plogvars, tokens, masks = [], [], [], [], [], []
    noise = None
    if info.sequential and info.has_prior:  # one draw for all inputs: batch-size independent
        generator = generator if generator is not None else torch.Generator().manual_seed(0)
        noise = torch.randn((n, info.steps, info.latent_dim), generator=generator,
                            dtype=torch.float64)
    batches = progress(iter_batches(data, batch_size), "encoder pass",
                       -(-n // batch_size), show_progress)
    # Outputs stay on the device until the end: no host synchronisation per batch.
    with torch.no_grad():
        for rows, batch in batches:
            batch = _to_device(batch, device)
            mu, logvar = call_encode(model, batch, info)
            mus.append(mu.detach())
            logvars.append(logvar.detach())
            if info.has_mask:
                masks.append(call_latent_mask(model, batch, info.steps).detach())
            if info.has_prior and info.sequential:
                eps = noise[rows].to(mu.device)
                z = mu.double() + torch.exp(0.5 * logvar.double()) * eps
                pmu, plogvar = call_prior(model, batch, info.latent_dim, z.to(mu.dtype))
                pmus.append(pmu.detach())
                plogvars.append(plogvar.detach())
            elif info.has_prior:
                pmu, plogvar = call_prior(model, batch, info.latent_dim)
                pmus.append(pmu.detach())
                plogvars.append(plogvar.detach())
            if info.has_num_tokens:
                tokens.append(call_num_tokens(model, batch).detach())
    return Encodings(
        mu=_np64(mus),
        logvar=_np64(logvars),
        prior_mu=_np64(pmus) if pmus else None,
        prior_logvar=_np64(plogvars) if plogvars else None,
        num_tokens=_np64(tokens) if tokens else None,
        mask=(torch.cat(masks).cpu().numpy() if masks
              else np.ones((n, info.steps), dtype=bool) if info.sequential else None),
    )
