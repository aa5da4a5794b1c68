"""Likelihood flatness: how much does log p(x|z) move when z is drawn from the prior?

For each input, K = ``prior_samples`` draws z_k ~ p(z)
(the model's prior per input, N(0, I) by default)::

    s(x) = std_k log p(x | z_k)      (sample std, ddof = 1; nats, and per token)

``likelihood_flatness`` is the mean of s(x) over inputs; an input is *flat*
when s(x) is below ``flatness_threshold`` nats (default 0.3, per observation:
the likelihood ratio between z values, not its per-token share, is what moves
the posterior). The mean over k gives E_{z~p(z)} log p(x|z)
(``prior_reconstruction``), and ``prior_gap = reconstruction - prior_reconstruction``.

The noise of input i is keyed on i (:mod:`collapse_diag.runtime.rng`, stream ``"prior"``), so
the figures depend neither on the batch size nor on the number of processes.
Part of the identifiability diagnostic (:mod:`~collapse_diag.diagnostics.identifiability`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from collapse_diag.config.settings import Settings
from collapse_diag.io.data import Batch, repeat, to_device
from collapse_diag.model.decoding import (
    decode,
    draw_major_codes,
    inputs_per_call,
    mean_or_none,
    per_token,
    shard_batches,
)
from collapse_diag.model.encodings import Encodings
from collapse_diag.model.protocol import ModelInfo
from collapse_diag.runtime import distributed
from collapse_diag.runtime.rng import KeyedNormals

__all__ = ["flatness_figures", "prior_flatness"]


def prior_flatness(model: Any, data: Batch, encodings: Encodings, info: ModelInfo,
                   settings: Settings, generator: torch.Generator,
                   show_progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Per input mean and std (ddof 1) of log p(x|z_k) over K = ``prior_samples`` prior draws.

    Rows ``repeat(x, K)`` with codes z_k ~ p(z); the noise of input i is keyed on i
    (stream ``"prior"``, :class:`~collapse_diag.runtime.rng.KeyedNormals`). This process
    decodes its shard; the two ``(N,)`` arrays are gathered onto every process.
    """
    n, dim, k, device = encodings.n_examples, encodings.latent_dim, settings.prior_samples, \
        settings.device
    prior_mu, prior_logvar = encodings.prior()
    normals = KeyedNormals(generator, "prior", n, (k, dim))
    step = inputs_per_call(settings.batch_size, k)

    def compute(start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        mean, std = np.empty(stop - start), np.empty(stop - start)
        with torch.no_grad():
            for rows, batch in shard_batches(data, start, stop, step, "prior draws",
                                             show_progress):
                b, at = rows.stop - rows.start, slice(rows.start - start, rows.stop - start)
                codes = draw_major_codes(prior_mu[rows], prior_logvar[rows],
                                         normals.rows(rows.start, rows.stop))
                ll = decode(model, repeat(to_device(batch, device), k), codes, info, device)
                ll = ll.reshape(k, b)
                # Shifting by the first draw keeps the std exactly 0 when log p(x|z) is constant.
                mean[at], std[at] = ll.mean(axis=0), (ll - ll[0]).std(axis=0, ddof=1)
        return mean, std

    return distributed.map_shard(n, compute)


def flatness_figures(prior_ll: np.ndarray, std: np.ndarray, tokens: np.ndarray | None,
                     threshold: float, reconstruction: float | None) -> dict[str, Any]:
    """The flatness fields of an ``IdentifiabilityResult``, by name.

    Args:
        prior_ll: Per input mean over k of log p(x|z_k), ``(N,)``.
        std: Per input std_k log p(x|z_k) (ddof 1), ``(N,)``.
        tokens: num_tokens per input, or ``None``.
        threshold: ``flatness_threshold`` (nats): an input is flat when ``std`` is below it.
        reconstruction: E_q log p(x|z) from the sensitivity diagnostic, for ``prior_gap``.
    """
    std_tok = per_token(std, tokens)
    flat = std < threshold
    prior_reconstruction = float(prior_ll.mean())
    return dict(
        prior_log_likelihood=prior_ll,
        prior_reconstruction=prior_reconstruction,
        prior_reconstruction_per_token=mean_or_none(per_token(prior_ll, tokens)),
        prior_gap=(None if reconstruction is None or not math.isfinite(reconstruction)
                   else float(reconstruction) - prior_reconstruction),
        likelihood_std=std,
        likelihood_std_per_token=std_tok,
        likelihood_flatness=float(std.mean()),
        likelihood_flatness_per_token=mean_or_none(std_tok),
        flat=flat,
        flat_fraction=float(flat.mean()),
    )
