"""The identifiability figures of a vector latent ``z [B, D]``: flatness and Fisher information.

:func:`vector_identifiability` combines the two measurements (modules
:mod:`~collapse_diag.diagnostics.flatness` and :mod:`~collapse_diag.diagnostics.fisher`)
into one :class:`IdentifiabilityResult`; the diagnostic
(:mod:`~collapse_diag.diagnostics.identifiability`) calls it directly for a vector
latent and through :mod:`~collapse_diag.diagnostics.sequence_fisher` (on the
flattened code) for a sequential one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from collapse_diag.config.settings import Settings
from collapse_diag.diagnostics.estimators.fisher_grades import (
    GRADES,
    contraction,
)
from collapse_diag.diagnostics.fisher import fisher_figures, fisher_gradients
from collapse_diag.diagnostics.flatness import flatness_figures, prior_flatness
from collapse_diag.exceptions import DiagnosticError
from collapse_diag.io.data import Batch, num_examples
from collapse_diag.model.decoding import inputs_per_call
from collapse_diag.model.encodings import Encodings
from collapse_diag.model.protocol import ModelInfo
from collapse_diag.report.report import ReportSection
from collapse_diag.report.schema import DIMENSION_KEY as D
from collapse_diag.report.schema import DISTRIBUTION_KEY
from collapse_diag.report.schema import SUMMARY_KEY as S
from collapse_diag.runtime import distributed

__all__ = ["IdentifiabilityResult", "vector_identifiability"]


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


def vector_identifiability(
    model: Any,
    data: Batch,
    encodings: Encodings,
    info: ModelInfo,
    settings: Settings,
    generator: torch.Generator,
    show_progress: bool = False,
    reconstruction: float | None = None,
) -> IdentifiabilityResult:
    """Likelihood flatness under prior draws and the latent Fisher information, z ``[B, D]``.

    Random draws (CPU, float64): prior noise ``(N, K, D)`` and posterior noise
    ``(N, S, D)``, keyed on each input's index (streams ``"prior"`` and ``"fisher"``
    of :class:`~collapse_diag.runtime.rng.KeyedNormals`; they leave ``generator``'s state
    alone), then the bootstrap indices from ``generator``. Under ``torchrun`` each
    process decodes its shard of the inputs (:mod:`collapse_diag.runtime.distributed`).

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
    n = encodings.n_examples
    if num_examples(data) != n:
        raise DiagnosticError(f"data holds {num_examples(data)} inputs but encodings {n}.")
    k, s = settings.prior_samples, settings.fisher_samples
    prior_ll, std = prior_flatness(model, data, encodings, info, settings, generator,
                                   show_progress)
    grads = fisher_gradients(model, data, encodings, info, settings, generator, show_progress)
    calls = sum(distributed.total(-(-len(distributed.shard(n)) // step)) for step in
                (inputs_per_call(settings.batch_size, k), inputs_per_call(settings.batch_size, s)))
    return IdentifiabilityResult(
        **flatness_figures(prior_ll, std, encodings.num_tokens, settings.flatness_threshold,
                           reconstruction),
        **fisher_figures(grads, settings, generator),
        decoder_calls=calls,
        decoder_rows=n * (k + s),
    )
