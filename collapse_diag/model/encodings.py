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

from collapse_diag.io.data import Batch, num_examples, to_device
from collapse_diag.model.ancestral import ancestral_posterior
from collapse_diag.model.decoding import shard_batches
from collapse_diag.model.protocol import (
    ENCODE,
    PRIOR,
    ModelInfo,
    call_encode,
    call_latent_mask,
    call_num_tokens,
    call_prior,
    check_not_point_mass,
    check_pair_values,
    check_token_values,
)
from collapse_diag.runtime import distributed

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


def _np64(joined: torch.Tensor | None, tail: tuple[int, ...]) -> np.ndarray:
    """The per-batch outputs joined on their device, in one copy to the host in float64.

    ``None`` (an empty shard): an empty ``(0, *tail)`` array.
    """
    if joined is None:
        return np.empty((0, *tail))
    return joined.to("cpu", torch.float64).numpy()


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

    Sequential latents with a posterior conditioned on the past, ``posterior(x, z)``: mu
    and logvar are that posterior's at one ancestral draw per input
    (:func:`~collapse_diag.model.ancestral.ancestral_posterior`, the same noise), and a
    conditional prior is read at that draw.

    Sequential latents with a conditional prior ``prior(x, z)``: the prior is
    evaluated at one posterior draw ``z ~ q(z|x)`` per input (noise from
    ``generator``, CPU float64, drawn for all inputs at once so that it does
    not depend on the batch size), so ``KL(q(z_t|x) || p(z_t | z_<t, x))`` is the
    usual one-sample estimate of the VRNN rate term.

    Args:
        model: A model following the protocol, already on ``device`` and in eval mode.
        data: Inputs (Tensor or dict of Tensors) on the CPU.
        info: Result of :func:`~collapse_diag.model.protocol.check_model`.
        batch_size: Examples per encoder call.
        device: Where the model runs.
        show_progress: Show a progress bar on stderr.
        generator: Seeded CPU generator for the posterior draw a conditional prior reads
            (sequential latents with ``prior(x, z)`` only; default seed 0).

    Under ``torchrun`` each process encodes its shard of the inputs
    (:func:`~collapse_diag.runtime.distributed.shard`) and the encodings are gathered, so
    every process holds those of all inputs.

    Returns:
        The :class:`Encodings` of all inputs, in input order.
    """
    n = num_examples(data)
    noise = None
    if info.sequential and (info.has_prior or info.has_posterior):  # one draw for all inputs
        generator = generator if generator is not None else torch.Generator().manual_seed(0)
        noise = torch.randn((n, info.steps, info.latent_dim), generator=generator,
                            dtype=torch.float64)

    def compute(start: int, stop: int) -> tuple[np.ndarray, ...]:
        return _encode_rows(model, data, info, batch_size, device, show_progress, noise,
                            start, stop)

    parts = list(distributed.map_shard(n, compute))  # this process's shard, then gathered
    mu, logvar = parts.pop(0), parts.pop(0)
    prior_mu, prior_logvar = (parts.pop(0), parts.pop(0)) if info.has_prior else (None, None)
    tokens = parts.pop(0) if info.has_num_tokens else None
    mask = (parts.pop(0) if info.has_mask
            else np.ones((n, info.steps), dtype=bool) if info.sequential else None)
    return Encodings(mu=mu, logvar=logvar, prior_mu=prior_mu, prior_logvar=prior_logvar,
                     num_tokens=tokens, mask=mask)


def _encode_rows(model: Any, data: Batch, info: ModelInfo, batch_size: int,
                 device: torch.device | str, show_progress: bool, noise: torch.Tensor | None,
                 start: int, stop: int) -> tuple[np.ndarray, ...]:
    """Encoder outputs of inputs ``start .. stop - 1``, each ``stop - start`` rows (maybe 0).

    In this order: mu, logvar, [prior mu, prior logvar], [num_tokens], [mask].
    """
    lat = (info.steps, info.latent_dim) if info.sequential else (info.latent_dim,)
    mus, logvars, pmus, plogvars, tokens, masks = [], [], [], [], [], []
    batches = shard_batches(data, start, stop, batch_size, "encoder pass", show_progress)
    # Outputs stay on the device until the end, their values checked once there: no host
    # synchronisation per batch (but with a conditional prior, whose codes come from mu and
    # logvar at once, and for the masks of sequential models).
    per_batch = (info.has_prior or info.has_posterior) and info.sequential
    with torch.no_grad():
        for rows, batch in batches:
            batch = to_device(batch, device)
            mu, logvar = call_encode(model, batch, info, values=per_batch)
            z = None
            if info.has_posterior:  # q(z_t | x, z_<t): drawn step by step (model/ancestral.py)
                z, mu, logvar = ancestral_posterior(model, batch, noise[rows].to(mu.device),
                                                    mu.dtype)
                check_pair_values(mu, logvar, "posterior(x, z)")
            mus.append(mu.detach())
            logvars.append(logvar.detach())
            if info.has_mask:
                masks.append(call_latent_mask(model, batch, info.steps).detach())
            if info.has_prior and info.sequential:
                if z is None:
                    eps = noise[rows].to(mu.device)
                    z = mu.double() + torch.exp(0.5 * logvar.double()) * eps
                pmu, plogvar = call_prior(model, batch, info.latent_dim, z.to(info.dtype))
                pmus.append(pmu.detach())
                plogvars.append(plogvar.detach())
            elif info.has_prior:
                pmu, plogvar = call_prior(model, batch, info.latent_dim, values=False)
                pmus.append(pmu.detach())
                plogvars.append(plogvar.detach())
            if info.has_num_tokens:
                tokens.append(call_num_tokens(model, batch, values=False).detach())
    mus, logvars, pmus, plogvars, tokens = (torch.cat(p) if p else None
                                            for p in (mus, logvars, pmus, plogvars, tokens))
    if mus is not None:
        check_pair_values(mus, logvars, ENCODE)
        check_not_point_mass(logvars)
        if pmus is not None and not per_batch:
            check_pair_values(pmus, plogvars, PRIOR)
        if tokens is not None:
            check_token_values(tokens)
    out = [_np64(mus, lat), _np64(logvars, lat)]
    if info.has_prior:
        out += [_np64(pmus, lat), _np64(plogvars, lat)]
    if info.has_num_tokens:
        out.append(_np64(tokens, ()))
    if info.has_mask:
        out.append(torch.cat(masks).cpu().numpy() if masks
                   else np.zeros((0, info.steps), dtype=bool))
    return tuple(out)
