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


def _np64(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float64).numpy()


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
    with torch.no_grad():
        for _, batch in batches:
            batch = to_device(batch, device)
            mu, logvar = call_encode(model, batch)
            mus.append(_np64(mu))
            logvars.append(_np64(logvar))
            if info.has_prior:
                pmu, plogvar = call_prior(model, batch, info.latent_dim)
                pmus.append(_np64(pmu))
                plogvars.append(_np64(plogvar))
            if info.has_num_tokens:
                tokens.append(_np64(call_num_tokens(model, batch)))
    return Encodings(
        mu=np.concatenate(mus),
        logvar=np.concatenate(logvars),
        prior_mu=np.concatenate(pmus) if pmus else None,
        prior_logvar=np.concatenate(plogvars) if plogvars else None,
        num_tokens=np.concatenate(tokens) if tokens else None,
    )
