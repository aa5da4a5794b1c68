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
(:mod:`collapse_diag.runtime.rng`), so the numbers do not depend on the batch size, the
device or the number of processes.
"""

from __future__ import annotations

from typing import Any

import torch

from collapse_diag.config.settings import Settings
from collapse_diag.diagnostics.estimators.fisher_grades import (
    GRADES,
    fisher_bootstrap,
    grade,
)
from collapse_diag.diagnostics.fisher import fisher_rank
from collapse_diag.diagnostics.sequence_fisher import sequence_identifiability
from collapse_diag.diagnostics.spec import (
    DiagnosticSpec,
    DimensionColumn,
    PlotRef,
    RunContext,
    SummaryRow,
)
from collapse_diag.diagnostics.vector_identifiability import (
    IdentifiabilityResult,
    vector_identifiability,
)
from collapse_diag.io.data import Batch
from collapse_diag.model.encodings import Encodings
from collapse_diag.model.protocol import ModelInfo
from collapse_diag.report.schema import DIMENSION_KEY as D
from collapse_diag.report.schema import SUMMARY_KEY as S

__all__ = ["GRADES", "IdentifiabilityResult", "identifiability_diagnostic", "fisher_rank",
           "vector_identifiability", "fisher_bootstrap", "grade"]


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

    A vector latent goes to
    :func:`~collapse_diag.diagnostics.vector_identifiability.vector_identifiability`
    (arguments, random draws and decoder cost documented there); a sequential one to
    :func:`~collapse_diag.diagnostics.sequence_fisher.sequence_identifiability`
    (the same figures on the flattened code, ancestral prior draws).
    """
    run = sequence_identifiability if encodings.sequential else vector_identifiability
    return run(model, data, encodings, info, settings, generator, show_progress, reconstruction)


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
        DimensionColumn(D.fisher, "Fisher", "num", terminal=True, overview=True,
                        group="why"),
        DimensionColumn(D.contraction_ci, "contraction interval", "interval", group="why"),
        DimensionColumn(D.identifiability, "identifiability", "text", group="why"),
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
