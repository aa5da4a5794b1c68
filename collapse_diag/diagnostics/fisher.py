"""The latent Fisher information: in how many directions of z is log p(x|z) not flat?

Local identifiability (Rothenberg 1971, "Identification in parametric
models", Econometrica: a parameter is locally identifiable where the Fisher
information is non-singular). With g = d/dz log p(x|z) from autograd through
the decoder, z ~ q(z|x) (``fisher_samples`` draws per input)::

    F = E_x E_{z~q(z|x)} [g g^T]          (latent_dim x latent_dim, nats^2 per unit z^2)

With a learned or conditional prior, g is first multiplied by the prior's
standard deviation (z measured in prior standard deviations), so F compares
with the prior precision 1 whatever the prior's scale; for N(0, I) nothing changes.
    fisher_d = F_dd
    identifiable_dims = #{eigenvalues lambda of F : lambda >= max(rtol * lambda_max, atol)}

with rtol = ``fisher_rank_rtol`` (default 1e-3) and atol = ``fisher_rank_atol``
(default 0.1: against the unit precision of the N(0, I) prior, the posterior
variance along an eigenvector is about 1 / (1 + lambda), so a direction below
0.1 is narrowed by under 10%: practically non-identifiable). One backward pass
per batch gives every dimension (each row's log-likelihood depends only on its
own z row in eval mode). The decoder must be differentiable in z; an unused z
(no graph) counts as a zero gradient.

Graded identifiability. By the Laplace approximation, along an eigenvector
with eigenvalue lambda one observation shrinks the prior variance 1 to
1 / (1 + lambda): the *contraction* is ``1 - 1 / (1 + lambda) = lambda / (1 + lambda)``.
A percentile bootstrap over inputs (``fisher_bootstrap`` resamples of the
per-input g g^T, level ``confidence``) gives an interval for every eigenvalue
(sorted per resample) and every diagonal entry F_dd, and a grade
(:func:`grade`) with a = ``fisher_rank_atol``::

    identifiable   low >= a                  (contraction >= a / (1 + a) with confidence)
    weak           high < a, low > 0         (weakly identifiable: small, clearly non-zero)
    flat           high < a, low ~ 0         (indistinguishable from a flat likelihood)
    inconclusive   low < a <= high

The posterior noise of input i is keyed on i (:mod:`collapse_diag.runtime.rng`, stream
``"fisher"``), so the figures depend neither on the batch size nor on the number of
processes. Part of the identifiability diagnostic
(:mod:`~collapse_diag.diagnostics.identifiability`).
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import torch

from collapse_diag.config.settings import Settings
from collapse_diag.diagnostics.estimators.fisher_grades import (
    fisher_bootstrap,
    fisher_cutoff,
    grade,
)
from collapse_diag.exceptions import DiagnosticError
from collapse_diag.io.data import Batch, repeat, to_device
from collapse_diag.model.decoding import (
    codes_to_device,
    draw_major_codes,
    inputs_per_call,
    shard_batches,
)
from collapse_diag.model.encodings import Encodings
from collapse_diag.model.protocol import (
    LOG_LIKELIHOOD,
    ModelInfo,
    call_log_likelihood,
    check_finite,
)
from collapse_diag.runtime import distributed
from collapse_diag.runtime.rng import KeyedNormals

__all__ = ["fisher_figures", "fisher_gradients", "fisher_rank", "grad_context"]


def fisher_rank(eigenvalues: np.ndarray, rtol: float, atol: float) -> tuple[int, float]:
    """Effective rank of a PSD matrix: eigenvalues ``>= max(rtol * largest, atol)`` and ``> 0``.

    Returns:
        ``(rank, cutoff)``.
    """
    largest = float(np.max(eigenvalues)) if len(eigenvalues) else 0.0
    cutoff = fisher_cutoff(largest, rtol, atol)
    return int(np.sum((eigenvalues >= cutoff) & (eigenvalues > 0))), cutoff


def grad_context(device: str) -> Any:
    """Disable cuDNN on CUDA only: it refuses the RNN backward pass in eval mode."""
    if torch.device(device).type != "cuda":
        return contextlib.nullcontext()
    return torch.backends.cudnn.flags(enabled=False)  # restores every flag on exit


def fisher_gradients(model: Any, data: Batch, encodings: Encodings, info: ModelInfo,
                     settings: Settings, generator: torch.Generator,
                     show_progress: bool = False) -> np.ndarray:
    """Score vectors g = d/dz log p(x|z) at S = ``fisher_samples`` draws z ~ q(z|x), ``(N, S, D)``.

    One backward pass per call; with a learned prior g is multiplied by the prior's
    standard deviation. The noise of input i is keyed on i (stream ``"fisher"``). This
    process decodes its shard; the array is gathered onto every process.
    """
    n, dim, s, device = encodings.n_examples, encodings.latent_dim, settings.fisher_samples, \
        settings.device
    normals = KeyedNormals(generator, "fisher", n, (s, dim))
    step = inputs_per_call(settings.batch_size, s)

    def compute(start: int, stop: int) -> tuple[np.ndarray]:
        grads = np.zeros((stop - start, s, dim))
        with torch.enable_grad(), grad_context(device):
            for rows, batch in shard_batches(data, start, stop, step, "Fisher information",
                                             show_progress):
                codes = draw_major_codes(encodings.mu[rows], encodings.logvar[rows],
                                         normals.rows(rows.start, rows.stop))
                z = codes_to_device(codes, info, device).requires_grad_(True)
                ll = call_log_likelihood(model, repeat(to_device(batch, device), s), z,
                                         finite=False)
                finite = torch.isfinite(ll).all()  # read after the gradient's copy: one sync
                grad = None
                if ll.requires_grad:
                    (grad,) = torch.autograd.grad(ll.sum(), z, allow_unused=True)
                if grad is None:  # log p(x|z) does not depend on z at all
                    g = np.zeros(codes.shape)
                else:
                    g = grad.detach().to("cpu", torch.float64).numpy()
                if not bool(finite):
                    check_finite(ll, LOG_LIKELIHOOD, DiagnosticError)
                if not np.all(np.isfinite(g)):
                    raise DiagnosticError(
                        "the gradient of log_likelihood(x, z) with respect to z contains "
                        "NaN/Inf: check the decoder's numerics (e.g. clamp, log-softmax)."
                    )
                if encodings.prior_logvar is not None:  # z in prior standard deviations
                    g = g * np.tile(np.exp(0.5 * encodings.prior_logvar[rows]), (s, 1))
                grads[rows.start - start:rows.stop - start] = \
                    g.reshape(s, -1, dim).transpose(1, 0, 2)
        return (grads,)

    return distributed.map_shard(n, compute)[0]


def fisher_figures(grads: np.ndarray, settings: Settings, generator: torch.Generator
                   ) -> dict[str, Any]:
    """The Fisher fields of an ``IdentifiabilityResult``, by name.

    Args:
        grads: Score vectors ``(N, S, D)`` (:func:`fisher_gradients`).
        settings: Uses ``fisher_rank_rtol``, ``fisher_rank_atol``, ``fisher_bootstrap``,
            ``confidence``.
        generator: The diagnostic's generator (the bootstrap indices).
    """
    n, s, dim = grads.shape
    flat_grads = grads.reshape(n * s, dim)
    fisher_matrix = flat_grads.T @ flat_grads / (n * s)
    eigenvalues = np.linalg.eigvalsh(fisher_matrix)[::-1].copy()
    rank, cutoff = fisher_rank(eigenvalues, settings.fisher_rank_rtol, settings.fisher_rank_atol)
    eig_ci, diag_ci = fisher_bootstrap(grads, settings.fisher_bootstrap, settings.confidence,
                                       generator)
    atol = settings.fisher_rank_atol
    return dict(
        fisher=np.diag(fisher_matrix).copy(),
        fisher_matrix=fisher_matrix,
        fisher_eigenvalues=eigenvalues,
        identifiable_dims=rank,
        rank_cutoff=cutoff,
        eigenvalue_ci=eig_ci,
        fisher_ci=diag_ci,
        direction_grades=tuple(grade(eig_ci[:, 0], eig_ci[:, 1], atol)),
        dimension_grades=tuple(grade(diag_ci[:, 0], diag_ci[:, 1], atol)),
    )
