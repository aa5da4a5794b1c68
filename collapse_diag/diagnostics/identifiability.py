"""Identifiability of z: is log p(x|z) flat in z, and in how many directions is it not?

Posterior collapse is latent-variable non-identifiability (Wang, Blei &
Cunningham 2021): at the fitted parameters, p(x|z) does not change with z. Two
measurements, both from batched decoder passes:

* **Likelihood flatness.** For each input, K = ``prior_samples`` draws z_k ~ p(z)
  (the model's prior per input, N(0, I) by default)::

      s(x) = std_k log p(x | z_k)      (sample std, ddof = 1; nats, and per token)

  ``likelihood_flatness`` is the mean of s(x) over inputs; an input is *flat*
  when s(x) is below ``flatness_threshold`` nats (default 0.3, per observation:
  the likelihood ratio between z values, not its per-token share, is what moves
  the posterior). The mean over k gives E_{z~p(z)} log p(x|z)
  (``prior_reconstruction``), and ``prior_gap = reconstruction - prior_reconstruction``.

* **Local identifiability** (Rothenberg 1971, "Identification in parametric
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

* **Graded identifiability.** By the Laplace approximation, along an eigenvector
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

Every z is drawn on the CPU in float64, keyed on the input's index
(:mod:`collapse_diag.rng`), so the numbers do not depend on the batch size, the
device or the number of processes.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from collapse_diag import distributed
from collapse_diag.data import Batch, num_examples, repeat, to_device
from collapse_diag.diagnostics._decoder import (
    decode,
    inputs_per_call,
    mean_or_none,
    per_token,
    shard_batches,
)
from collapse_diag.diagnostics.fisher_grades import (
    GRADES,
    contraction,
    fisher_bootstrap,
    fisher_cutoff,
    grade,
)
from collapse_diag.encodings import Encodings
from collapse_diag.exceptions import DiagnosticError
from collapse_diag.progress import progress
from collapse_diag.protocol import ModelInfo, call_log_likelihood
from collapse_diag.report import ReportSection
from collapse_diag.rng import KeyedNormals
from collapse_diag.schema import DIMENSION_KEY as D
from collapse_diag.schema import DISTRIBUTION_KEY
from collapse_diag.schema import SUMMARY_KEY as S
from collapse_diag.settings import Settings

__all__ = ["GRADES", "IdentifiabilityResult", "identifiability_diagnostic", "fisher_rank",
           "fisher_bootstrap", "grade"]



def fisher_rank(eigenvalues: np.ndarray, rtol: float, atol: float) -> tuple[int, float]:
    """Effective rank of a PSD matrix: eigenvalues ``>= max(rtol * largest, atol)`` and ``> 0``.

    Returns:
        ``(rank, cutoff)``.
    """
    largest = float(np.max(eigenvalues)) if len(eigenvalues) else 0.0
    cutoff = fisher_cutoff(largest, rtol, atol)
    return int(np.sum((eigenvalues >= cutoff) & (eigenvalues > 0))), cutoff


def _codes(mean: np.ndarray, logvar: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """Codes ``mean + sigma * noise`` for noise ``(b, k, D)``, ordered draw-major ``(k * b, D)``.

    Row ``j * b + i`` is draw j of input i, matching ``repeat(x, k)``.
    """
    z = mean[:, None] + np.exp(0.5 * logvar)[:, None] * noise
    return z.transpose(1, 0, 2).reshape(-1, mean.shape[1])


def _grad_context(device: str) -> Any:
    """Disable cuDNN on CUDA only: it refuses the RNN backward pass in eval mode."""
    if torch.device(device).type != "cuda":
        return contextlib.nullcontext()
    return torch.backends.cudnn.flags(enabled=False)  # restores every flag on exit


@dataclass(frozen=True)
class IdentifiabilityResult:
    """Likelihood flatness under prior draws and the Fisher information of z.

    Attributes:
        prior_log_likelihood: Per input, mean over k of log p(x|z_k), z_k ~ p(z), ``(N,)``.
        prior_reconstruction: E_x E_{z~p(z)} log p(x|z) (nats).
        prior_reconstruction_per_token: The same per token, or ``None``.
        prior_gap: ``reconstruction - prior_reconstruction`` when ``reconstruction``
            was given, else ``None``.
        likelihood_std: Per input std_k log p(x|z_k) (ddof = 1), nats, ``(N,)``.
        likelihood_std_per_token: The same divided by num_tokens, or ``None``.
        likelihood_flatness: Mean of ``likelihood_std`` (nats).
        likelihood_flatness_per_token: Mean of ``likelihood_std_per_token``, or ``None``.
        flat: Per input, ``likelihood_std < flatness_threshold``.
        flat_fraction: Mean of ``flat``.
        fisher: Diagonal of the latent Fisher matrix, ``(D,)``.
        fisher_matrix: E[g g^T], ``(D, D)``.
        fisher_eigenvalues: Its eigenvalues, descending, ``(D,)``.
        identifiable_dims: Eigenvalues at or above ``rank_cutoff`` (and > 0).
        rank_cutoff: ``max(fisher_rank_rtol * largest eigenvalue, fisher_rank_atol)``.
        eigenvalue_ci: Bootstrap interval of each eigenvalue, ``(D, 2)``.
        fisher_ci: Bootstrap interval of each diagonal entry, ``(D, 2)``.
        direction_grades: :func:`grade` of each eigen-direction.
        dimension_grades: :func:`grade` of each dimension (from ``fisher_ci``).
        decoder_calls: Forward calls made (the Fisher ones also run a backward pass).
        decoder_rows: Rows decoded.
    """

    prior_log_likelihood: np.ndarray
    prior_reconstruction: float
    prior_reconstruction_per_token: float | None
    prior_gap: float | None
    likelihood_std: np.ndarray
    likelihood_std_per_token: np.ndarray | None
    likelihood_flatness: float
    likelihood_flatness_per_token: float | None
    flat: np.ndarray
    flat_fraction: float
    fisher: np.ndarray
    fisher_matrix: np.ndarray
    fisher_eigenvalues: np.ndarray
    identifiable_dims: int
    rank_cutoff: float
    eigenvalue_ci: np.ndarray
    fisher_ci: np.ndarray
    direction_grades: tuple[str, ...]
    dimension_grades: tuple[str, ...]
    decoder_calls: int
    decoder_rows: int

    def section(self) -> ReportSection:
        """The report fields: summary, per-dimension ``fisher``, per-input ``likelihood_std``."""
        return ReportSection(
            summary={
                S.prior_reconstruction: self.prior_reconstruction,
                S.prior_reconstruction_per_token: self.prior_reconstruction_per_token,
                S.prior_gap: self.prior_gap,
                S.likelihood_flatness: self.likelihood_flatness,
                S.likelihood_flatness_per_token: self.likelihood_flatness_per_token,
                S.flat_fraction: self.flat_fraction,
                S.fisher_eigenvalues: self.fisher_eigenvalues.tolist(),
                S.identifiable_dims: self.identifiable_dims,
                S.fisher_rank_cutoff: self.rank_cutoff,
                S.fisher_eigenvalues_ci: self.eigenvalue_ci.tolist(),
                S.fisher_contraction: contraction(self.fisher_eigenvalues).tolist(),
                S.fisher_contraction_ci: contraction(self.eigenvalue_ci).tolist(),
                S.fisher_directions: list(self.direction_grades),
                S.identifiability_counts: {g: self.direction_grades.count(g) for g in GRADES},
            },
            dimensions={
                D.fisher: self.fisher.tolist(),
                D.fisher_ci: self.fisher_ci.tolist(),
                D.contraction: contraction(self.fisher).tolist(),
                D.contraction_ci: contraction(self.fisher_ci).tolist(),
                D.identifiability: list(self.dimension_grades),
            },
            distributions={DISTRIBUTION_KEY.likelihood_std: self.likelihood_std.tolist()},
        )


def prior_flatness(model: Any, data: Batch, encodings: Encodings, info: ModelInfo,
                   settings: Settings, generator: torch.Generator,
                   show_progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Per input mean and std (ddof 1) of log p(x|z_k) over K = ``prior_samples`` prior draws.

    Rows ``repeat(x, K)`` with codes z_k ~ p(z); the noise of input i is keyed on i
    (stream ``"prior"``, :class:`~collapse_diag.rng.KeyedNormals`). This process
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
            for rows, batch in progress(shard_batches(data, start, stop, step), "prior draws",
                                        -(-(stop - start) // step), show_progress):
                b, at = rows.stop - rows.start, slice(rows.start - start, rows.stop - start)
                codes = _codes(prior_mu[rows], prior_logvar[rows],
                               normals.rows(rows.start, rows.stop))
                ll = decode(model, repeat(to_device(batch, device), k), codes, info, device)
                ll = ll.reshape(k, b)
                # Shifting by the first draw keeps the std exactly 0 when log p(x|z) is constant.
                mean[at], std[at] = ll.mean(axis=0), (ll - ll[0]).std(axis=0, ddof=1)
        return mean, std

    return distributed.map_shard(n, compute)


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
        with torch.enable_grad(), _grad_context(device):
            for rows, batch in progress(shard_batches(data, start, stop, step),
                                        "Fisher information", -(-(stop - start) // step),
                                        show_progress):
                codes = _codes(encodings.mu[rows], encodings.logvar[rows],
                               normals.rows(rows.start, rows.stop))
                z = torch.tensor(codes, dtype=info.dtype, device=device, requires_grad=True)
                ll = call_log_likelihood(model, repeat(to_device(batch, device), s), z)
                grad = None
                if ll.requires_grad:
                    (grad,) = torch.autograd.grad(ll.sum(), z, allow_unused=True)
                if grad is None:  # log p(x|z) does not depend on z at all
                    g = np.zeros(codes.shape)
                else:
                    g = grad.detach().to("cpu", torch.float64).numpy()
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


def identifiability_diagnostic(
    model: Any,
    data: Batch,
    encodings: Encodings,
    info: ModelInfo,
    settings: Settings,
    generator: torch.Generator,
    show_progress: bool = False,
    reconstruction: float | None = None,
) -> IdentifiabilityResult:
    """Likelihood flatness under prior draws and the latent Fisher information.

    Random draws (CPU, float64): prior noise ``(N, K, D)`` and posterior noise
    ``(N, S, D)``, keyed on each input's index (streams ``"prior"`` and ``"fisher"``
    of :class:`~collapse_diag.rng.KeyedNormals`; they leave ``generator``'s state
    alone), then the bootstrap indices from ``generator``. Under ``torchrun`` each
    process decodes its shard of the inputs (:mod:`collapse_diag.distributed`).

    Decoder cost: ``N K`` rows in calls of ``inputs_per_call(batch_size, K)``
    inputs, plus ``N S`` rows with a backward pass in calls of
    ``inputs_per_call(batch_size, S)`` inputs (K = ``prior_samples``,
    S = ``fisher_samples``).

    Args:
        model: Protocol model on ``settings.device``, in eval mode.
        data: The N analysed inputs on the CPU, in the order of ``encodings``.
        encodings: Encoder outputs (and prior, and token counts) of ``data``.
        info: Result of ``check_model``.
        settings: Uses ``batch_size``, ``device``, ``prior_samples``,
            ``flatness_threshold``, ``fisher_samples``, ``fisher_rank_rtol``,
            ``fisher_rank_atol``, ``fisher_bootstrap``, ``confidence``.
        generator: The diagnostic's seeded CPU generator.
        show_progress: Progress bars on stderr.
        reconstruction: E_q log p(x|z) from the sensitivity diagnostic, for ``prior_gap``.

    Returns:
        An :class:`IdentifiabilityResult`.

    Raises:
        DiagnosticError: data and encodings disagree, or the decoder returned
            NaN/Inf, a wrong shape or a non-finite gradient.
    """
    if encodings.sequential:  # flattened z, ancestral prior draws: sequence_fisher.py
        from collapse_diag.diagnostics.sequence_fisher import sequence_identifiability

        return sequence_identifiability(model, data, encodings, info, settings, generator,
                                        show_progress, reconstruction)
    n, dim = encodings.n_examples, encodings.latent_dim
    if num_examples(data) != n:
        raise DiagnosticError(f"data holds {num_examples(data)} inputs but encodings {n}.")
    k, s = settings.prior_samples, settings.fisher_samples
    prior_ll, std = prior_flatness(model, data, encodings, info, settings, generator,
                                   show_progress)
    grads = fisher_gradients(model, data, encodings, info, settings, generator, show_progress)
    calls = sum(distributed.total(-(-len(distributed.shard(n)) // step)) for step in
                (inputs_per_call(settings.batch_size, k), inputs_per_call(settings.batch_size, s)))
    rows_done = n * (k + s)

    flat_grads = grads.reshape(n * s, dim)
    fisher_matrix = flat_grads.T @ flat_grads / (n * s)
    eigenvalues = np.linalg.eigvalsh(fisher_matrix)[::-1].copy()
    rank, cutoff = fisher_rank(eigenvalues, settings.fisher_rank_rtol, settings.fisher_rank_atol)
    eig_ci, diag_ci = fisher_bootstrap(grads, settings.fisher_bootstrap, settings.confidence,
                                       generator)
    atol = settings.fisher_rank_atol
    tokens = encodings.num_tokens
    std_tok = per_token(std, tokens)
    flat = std < settings.flatness_threshold
    prior_reconstruction = float(prior_ll.mean())
    return IdentifiabilityResult(
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
        fisher=np.diag(fisher_matrix).copy(),
        fisher_matrix=fisher_matrix,
        fisher_eigenvalues=eigenvalues,
        identifiable_dims=rank,
        rank_cutoff=cutoff,
        eigenvalue_ci=eig_ci,
        fisher_ci=diag_ci,
        direction_grades=tuple(grade(eig_ci[:, 0], eig_ci[:, 1], atol)),
        dimension_grades=tuple(grade(diag_ci[:, 0], diag_ci[:, 1], atol)),
        decoder_calls=calls,
        decoder_rows=rows_done,
    )
