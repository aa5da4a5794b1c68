"""Identifiability of z: is log p(x|z) flat in z, and in how many directions is it not?

Posterior collapse is latent-variable non-identifiability (Wang, Blei &
Cunningham 2021): at the fitted parameters, p(x|z) does not change with z. Two
measurements, both from batched decoder passes, each in its own module:

* **Likelihood flatness** (:mod:`~collapse_diag.diagnostics.flatness`): per input, the
  std of log p(x|z_k) over K = ``prior_samples`` prior draws z_k ~ p(z);
  ``likelihood_flatness``, ``flat_fraction``, ``prior_reconstruction``, ``prior_gap``.
* **Local identifiability** (:mod:`~collapse_diag.diagnostics.fisher`, Rothenberg
  1971): the latent Fisher information F = E_x E_{z~q(z|x)} [g g^T],
  g = d/dz log p(x|z); its eigenvalues, effective rank ``identifiable_dims``,
  bootstrap intervals and grades (identifiable / weak / flat / inconclusive).

This module combines them into one :class:`IdentifiabilityResult` and its report
fields; sequential latents go through :mod:`~collapse_diag.diagnostics.sequence_fisher`.
Every z is drawn on the CPU in float64, keyed on the input's index
(:mod:`collapse_diag.rng`), so the numbers do not depend on the batch size, the
device or the number of processes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from collapse_diag import distributed
from collapse_diag.data import Batch, num_examples
from collapse_diag.diagnostics._decoder import inputs_per_call
from collapse_diag.diagnostics.fisher import fisher_figures, fisher_gradients, fisher_rank
from collapse_diag.diagnostics.fisher_grades import GRADES, contraction, fisher_bootstrap, grade
from collapse_diag.diagnostics.flatness import flatness_figures, prior_flatness
from collapse_diag.diagnostics.spec import (
    DiagnosticSpec,
    DimensionColumn,
    PlotRef,
    RunContext,
    SummaryRow,
)
from collapse_diag.encodings import Encodings
from collapse_diag.exceptions import DiagnosticError
from collapse_diag.protocol import ModelInfo
from collapse_diag.report import ReportSection
from collapse_diag.schema import DIMENSION_KEY as D
from collapse_diag.schema import DISTRIBUTION_KEY
from collapse_diag.schema import SUMMARY_KEY as S
from collapse_diag.settings import Settings

__all__ = ["GRADES", "IdentifiabilityResult", "identifiability_diagnostic", "fisher_rank",
           "fisher_bootstrap", "grade"]


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


# --- the diagnostic's spec (collapse_diag/diagnostics/spec.py) ---------------------------


def _run(context: RunContext) -> IdentifiabilityResult:
    sensitivity = context.result("sensitivity")
    return identifiability_diagnostic(
        *context.decoder_args("identifiability"), show_progress=context.show_progress,
        reconstruction=sensitivity.reconstruction if sensitivity is not None else None,
    )


SPEC = DiagnosticSpec(
    name="identifiability",
    run=_run,
    requires=("sensitivity",),
    settings=("prior_samples", "flatness_threshold", "fisher_samples", "fisher_bootstrap"),
    uses_decoder=True,
    summary_rows=(
        SummaryRow(S.prior_reconstruction, "prior reconstruction E log p(x|z), z ~ p", "nats"),
        SummaryRow(S.prior_gap, "prior gap", "nats"),
        SummaryRow(S.likelihood_flatness, "likelihood flatness", "nats"),
        SummaryRow(S.likelihood_flatness_per_token, "likelihood flatness per token", "nats"),
        SummaryRow(S.flat_fraction, "inputs with a flat likelihood", "percent"),
        SummaryRow(S.identifiable_dims, "identifiable directions (Fisher rank)", "of_dims"),
        SummaryRow(S.identifiability_counts, "Fisher directions by grade", "counts"),
    ),
    columns=(
        DimensionColumn(D.fisher, "Fisher", "num", terminal=True, overview=True),
        DimensionColumn(D.contraction_ci, "contraction interval", "interval"),
        DimensionColumn(D.identifiability, "identifiability", "text"),
    ),
    plots=(
        PlotRef("identifiability", "Identifiability",
                "Eigenvalues of the Fisher information of z (left): directions below the "
                "cut-off do not change p(x|z). Right: per input, how much log p(x|z) varies "
                "over prior draws; left of the dashed line the likelihood is flat in z.",
                "collapse_diag.render.plots_identifiability:plot_identifiability"),
    ),
    explanation=("collapse_diag.render.dimension_text:identifiability_text",),
)
