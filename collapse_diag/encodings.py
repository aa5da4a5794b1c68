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
from collapse_diag.protocol import ModelInfo, call_encode, call_num_tokens, call_prior

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
    """

    mu: np.ndarray
    logvar: np.ndarray
    prior_mu: np.ndarray | None = None
    prior_logvar: np.ndarray | None = None
    num_tokens: np.ndarray | None = None

    @property
    def n_examples(self) -> int:
        """Number of analysed inputs N."""
        return int(self.mu.shape[0])

    @property
    def latent_dim(self) -> int:
        """Size D of z."""
        return int(self.mu.shape[1])

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
) -> Encodings:
    """Run the encoder (and prior, and num_tokens) once over every input, in batches.

    Args:
        model: A model following the protocol, already on ``device`` and in eval mode.
        data: Inputs (Tensor or dict of Tensors) on the CPU.
        info: Result of :func:`~collapse_diag.protocol.check_model`.
        batch_size: Examples per encoder call.
        device: Where the model runs.
        show_progress: Show a progress bar on stderr.

    Returns:
        The :class:`Encodings` of all inputs, in input order.
    """
    n = num_examples(data)
    mus, logvars, pmus, plogvars, tokens = [], [], [], [], []
    batches = progress(iter_batches(data, batch_size), "encoder pass",
                       -(-n // batch_size), show_progress)
    # Outputs stay on the device until the end: no host synchronisation per batch.
    with torch.no_grad():
        for _, batch in batches:
            batch = _to_device(batch, device)
            mu, logvar = call_encode(model, batch)
            mus.append(mu.detach())
            logvars.append(logvar.detach())
            if info.has_prior:
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
    )
