"""Importance weights over whole sequences with a conditional prior and/or posterior.

For sequential latents whose prior reads the past, ``prior(x, z)`` (p(z_t | z_<t, x)),
or whose posterior does, ``posterior(x, z)`` (q(z_t | x, z_<t)), each of the K draws
per input is a whole sequence: drawn ancestrally from the posterior
(collapse_diag/model/ancestral.py; from ``encode(x)``'s per-step Gaussians when there is
no ``posterior``), its prior read at the drawn codes (one teacher-forced call), and::

    log q(z|x) = sum_t sum_d log N(z_td; mu_td(x, z_<t), sigma_td^2)
    log p(z|x) = sum_t sum_d log N(z_td; m_td(x, z_<t), s_td^2)     (N(0, 1) without prior)
    log w      = log p(x|z) + log p(z|x) - log q(z|x)

over the valid steps of ``latent_mask`` (Chung et al. 2015, eq. 10; Fraccaro et al.
2016). The rate of this path is the Monte-Carlo estimate ``mean_k log q(z_k|x) - log
p(z_k|x)`` over the same draws, so the bound at K = 1 equals -ELBO exactly (both are the
one-draw estimate). Cost: per block of inputs, T posterior calls, one prior call and one
decoder call of (inputs x K) rows.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from collapse_diag.config.settings import Settings
from collapse_diag.exceptions import DiagnosticError
from collapse_diag.io.data import Batch, take, to_device
from collapse_diag.model.ancestral import ancestral_posterior
from collapse_diag.model.decoding import MAX_ROWS_PER_CALL
from collapse_diag.model.encodings import Encodings
from collapse_diag.model.protocol import (
    LOG_LIKELIHOOD,
    ModelInfo,
    call_log_likelihood,
    call_prior,
    check_finite,
)
from collapse_diag.runtime import distributed
from collapse_diag.runtime.progress import progress
from collapse_diag.runtime.rng import KeyedNormals

__all__ = ["sequence_log_weights"]


def _log_normal(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    return -0.5 * (math.log(2 * math.pi) + logvar + (z - mu) ** 2 * torch.exp(-logvar))


def sequence_log_weights(model: Any, data: Batch, encodings: Encodings, info: ModelInfo,
                         settings: Settings, sub: np.ndarray, generator: torch.Generator,
                         show_progress: bool = False
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """``(log_w, log p(x|z), log q - log p, decoder calls)``, each ``(M, K)`` but the last.

    Args:
        model: The sequential model, in eval mode on ``settings.device``.
        data: The N analysed inputs (CPU).
        encodings: Their encodings (``encode(x)``'s mu/logvar and the mask are read).
        info: ``has_prior`` / ``has_posterior`` say which conditionals to call.
        settings: ``nll_samples`` (K), ``batch_size``, ``device``.
        sub: The M subsampled input indices.
        generator: The diagnostic's generator: noise ``(M, K, T, D)`` keyed by position
            (stream ``"posterior"``), independent of the batch size.
        show_progress: Progress bar on stderr.
    """
    k, steps, dim = settings.nll_samples, int(info.steps), info.latent_dim
    m, device = len(sub), settings.device
    normals = KeyedNormals(generator, "posterior", m, (k, steps, dim))
    per_call = max(1, max(MAX_ROWS_PER_CALL, settings.batch_size) // k)
    valid = torch.from_numpy(encodings.valid())

    def compute(first: int, stop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        log_w, ll, ratio = (np.empty((stop - first, k)) for _ in range(3))
        blocks = range(first, stop, per_call)
        with torch.no_grad():
            for start in progress(blocks, "likelihood", len(blocks), show_progress):
                idx = np.arange(start, min(start + per_call, stop))
                owner = torch.from_numpy(np.repeat(sub[idx], k))
                x = to_device(take(data, owner), device)
                noise = torch.from_numpy(normals.rows(int(idx[0]), int(idx[-1]) + 1)
                                         ).reshape(-1, steps, dim).to(device)
                if info.has_posterior:
                    z, mu, logvar = ancestral_posterior(model, x, noise, info.dtype)
                else:
                    mu = torch.from_numpy(encodings.mu[owner.numpy()]).to(device)
                    logvar = torch.from_numpy(encodings.logvar[owner.numpy()]).to(device)
                    z = mu + torch.exp(0.5 * logvar) * noise
                if info.has_prior:
                    pmu, plogvar = (t.double() for t in call_prior(model, x, dim, z.to(info.dtype)))
                else:
                    pmu, plogvar = torch.zeros_like(z), torch.zeros_like(z)
                keep = valid[owner].to(device)[:, :, None]
                log_q = torch.where(keep, _log_normal(z, mu, logvar), 0.0).sum((1, 2))
                log_p = torch.where(keep, _log_normal(z, pmu, plogvar), 0.0).sum((1, 2))
                out = call_log_likelihood(model, x, z.to(info.dtype), finite=False)
                out = out.detach().to("cpu", torch.float64)
                check_finite(out, LOG_LIKELIHOOD, DiagnosticError)
                at = idx - first
                ll[at] = out.numpy().reshape(len(idx), k)
                ratio[at] = (log_q - log_p).cpu().numpy().reshape(len(idx), k)
                log_w[at] = ll[at] - ratio[at]
        return log_w, ll, ratio

    log_w, ll, ratio = distributed.map_shard(m, compute)
    calls = distributed.total(-(-len(distributed.shard(m)) // per_call))
    return log_w, ll, ratio, calls
