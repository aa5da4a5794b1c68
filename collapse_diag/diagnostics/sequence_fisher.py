"""Likelihood flatness and Fisher information for sequential latents ``z [B, T, D]``.

The identifiability diagnostic runs unchanged on the flattened code of size
``T * D`` (coordinate ``t * D + d`` is z_{t,d}; :class:`FlatModel` reshapes it
back for the decoder; invalid steps are N(0, 1) like in
:meth:`~collapse_diag.model.encodings.Encodings.flat`). Summary figures (eigenvalues,
rank, directions) are those of the ``T D x T D`` Fisher matrix. Per latent
dimension d the Fisher information of its whole trajectory is reported::

    fisher_d = sum_t F_{(t,d),(t,d)}          (trace of the d block)

with the interval ``[max_t low_{t,d}, sum_t high_{t,d}]`` built from the
per-coordinate bootstrap intervals (the lower end bounds the sum because every
term is >= 0; not a simultaneous interval) and graded by the same rule.

**Prior draws with a conditional prior** ``prior(x, z)`` are ancestral
(:func:`ancestral_prior_sample`): step t is drawn from the prior's step-t output
given the steps already drawn, ``z_t = mu_t(x, z_<t) + sigma_t(x, z_<t) eps_t``,
which costs T calls of ``prior`` per batch. Without ``prior`` the prior is
N(0, I) at every step and the draws are plain normals.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from collapse_diag.config.settings import Settings
from collapse_diag.diagnostics.estimators.fisher_grades import grade
from collapse_diag.diagnostics.flatness import flatness_figures
from collapse_diag.diagnostics.vector_identifiability import (
    IdentifiabilityResult,
    vector_identifiability,
)
from collapse_diag.io.data import Batch, num_examples, repeat, to_device
from collapse_diag.model.decoding import (
    decode,
    inputs_per_call,
    shard_batches,
)
from collapse_diag.model.encodings import Encodings
from collapse_diag.model.protocol import ModelInfo, call_prior
from collapse_diag.runtime import distributed
from collapse_diag.runtime.rng import KeyedNormals

__all__ = ["FlatModel", "ancestral_prior_sample", "sequence_identifiability"]


class FlatModel:
    """A sequential-latent model seen as a vector-latent one: z ``[B, T * D]`` -> ``[B, T, D]``."""

    def __init__(self, model: Any, steps: int, dims: int) -> None:
        self.model, self.steps, self.dims = model, steps, dims

    def log_likelihood(self, x: Batch, z: torch.Tensor) -> torch.Tensor:
        """``model.log_likelihood(x, z.reshape(B, T, D))``."""
        return self.model.log_likelihood(x, z.reshape(z.shape[0], self.steps, self.dims))


def ancestral_prior_sample(model: Any, x: Batch, info: ModelInfo, noise: torch.Tensor
                           ) -> torch.Tensor:
    """Ancestral draws from the conditional prior, one per row of ``x``.

    ``z`` starts at zeros; for t = 0..T-1, ``prior(x, z)`` is called and step t is set
    to ``mu[:, t] + exp(logvar[:, t] / 2) * noise[:, t]``. Step t of the prior reads
    only ``z[:, :t]`` (the protocol), which are already drawn, so the result is an
    exact draw from p(z_1..z_T | x) = prod_t p(z_t | z_<t, x).

    Args:
        model: The model (with ``prior(x, z)``).
        x: Inputs on the model's device, B rows.
        info: Result of ``check_model`` (sequential).
        noise: Standard normals ``[B, T, D]`` on the model's device.

    Returns:
        ``[B, T, D]`` in the model's dtype.
    """
    z = torch.zeros_like(noise, dtype=info.dtype)
    for t in range(info.steps):
        mu, logvar = call_prior(model, x, info.latent_dim, z)
        z = z.clone()
        z[:, t] = (mu[:, t] + torch.exp(0.5 * logvar[:, t]) * noise[:, t]).to(info.dtype)
    return z


def _ancestral_flatness(model: Any, data: Batch, info: ModelInfo, settings: Settings,
                        generator: torch.Generator) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Per input mean and std (ddof 1) of log p(x|z_k) over K ancestral prior draws.

    The noise of input i is keyed on i (stream ``"ancestral"``); this process
    decodes its shard and the two ``(N,)`` arrays are gathered onto every process.
    """
    n, k, device = num_examples(data), settings.prior_samples, settings.device
    normals = KeyedNormals(generator, "ancestral", n, (k, info.steps, info.latent_dim))
    step = inputs_per_call(settings.batch_size, k)

    def compute(start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        mean, std = np.empty(stop - start), np.empty(stop - start)
        with torch.no_grad():
            for rows, batch in shard_batches(data, start, stop, step):
                b, at = rows.stop - rows.start, slice(rows.start - start, rows.stop - start)
                x = repeat(to_device(batch, device), k)  # draw-major rows, like the vector case
                eps = torch.from_numpy(normals.rows(rows.start, rows.stop).transpose(
                    1, 0, 2, 3).reshape(k * b, info.steps, info.latent_dim)).to(device)
                z = ancestral_prior_sample(model, x, info, eps)
                ll = decode(model, x, z.detach().to("cpu", torch.float64).numpy(), info,
                            device).reshape(k, b)
                mean[at], std[at] = ll.mean(axis=0), (ll - ll[0]).std(axis=0, ddof=1)
        return mean, std

    mean, std = distributed.map_shard(n, compute)
    calls = distributed.total(-(-len(distributed.shard(n)) // step))
    return mean, std, calls, n * k


def sequence_identifiability(model: Any, data: Batch, encodings: Encodings, info: ModelInfo,
                             settings: Settings, generator: torch.Generator,
                             show_progress: bool = False,
                             reconstruction: float | None = None) -> IdentifiabilityResult:
    """:func:`~collapse_diag.diagnostics.identifiability.identifiability_diagnostic` on sequences.

    See the module docstring for the flattening, the per-dimension reduction and the
    ancestral prior draws. Random draws: those of the vector diagnostic on the
    flattened code, then (conditional prior only) the ancestral noise ``(N, K, T, D)``,
    keyed on each input's index (stream ``"ancestral"``). With a conditional prior the
    Fisher gradients are scaled by the prior's standard deviation at the posterior draw
    of the encoder pass (the vector rule, with that draw's prior), and the flat run's own
    prior draws are discarded.
    """
    t, d = info.steps, info.latent_dim
    flat = encodings.flat()
    flat_info = dataclasses.replace(info, latent_dim=t * d, steps=None, has_mask=False)
    result = vector_identifiability(FlatModel(model, t, d), data, flat, flat_info,
                                        settings, generator, show_progress, reconstruction)
    changes: dict[str, Any] = {}
    if info.has_prior:  # the flat run drew from the prior at the posterior draw: redo, ancestral
        prior_ll, std, calls, rows = _ancestral_flatness(model, data, info, settings, generator)
        changes.update(
            **flatness_figures(prior_ll, std, encodings.num_tokens, settings.flatness_threshold,
                               reconstruction),
            decoder_calls=result.decoder_calls + calls, decoder_rows=result.decoder_rows + rows)
    fisher = result.fisher.reshape(t, d).sum(axis=0)
    ci = result.fisher_ci.reshape(t, d, 2)
    fisher_ci = np.stack([ci[:, :, 0].max(axis=0), ci[:, :, 1].sum(axis=0)], axis=1)
    return dataclasses.replace(
        result, fisher=fisher, fisher_ci=fisher_ci,
        dimension_grades=tuple(grade(fisher_ci[:, 0], fisher_ci[:, 1],
                                     settings.fisher_rank_atol)),
        **changes)
