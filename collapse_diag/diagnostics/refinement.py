"""Inference collapse or model collapse: the refinement diagnostic and the cause per dimension.

Runs :func:`~collapse_diag.diagnostics.posterior_refinement.refine_posteriors` (the
decoder's own posterior q*(z|x) per input, by maximising the fixed decoder's ELBO;
objective, optimiser and convergence rule there) on a seeded subsample, then
reports:

* ``amortization_gap`` = mean_x ELBO(q*; x) - ELBO(q_phi; x) (Cremer, Li & Duvenaud
  2018), with its Student-t interval over inputs at ``confidence``;
* ``approximation_gap`` = mean_x L_K(x) - ELBO(q*; x) where the likelihood diagnostic
  ran (its IW bound L_K on the same inputs: the refined inputs are a seeded subsample
  of its inputs when it has at least ``refine_examples``; else null);
* per dimension ``kl_refined`` = mean_x KL(q*(z_d|x) || p(z_d)) with its interval
  (simultaneous over D at 1 - ``alpha``), beside the encoder's KL on the same inputs;
* a cause per dimension and ``collapse_cause`` (rule: diagnostics/cause.py,
  docs/statuses.md).

References:
    Cremer, Li & Duvenaud (2018), "Inference Suboptimality in Variational Autoencoders", ICML.
    He, Spokoyny, Neubig & Berg-Kirkpatrick (2019), "Lagging Inference Networks and
    Posterior Collapse in Variational Autoencoders", ICLR.
    Wang, Blei & Cunningham (2021), "Posterior Collapse and Latent Variable
    Non-identifiability", NeurIPS.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from collapse_diag.diagnostics.cause import CauseResult, decide_causes
from collapse_diag.diagnostics.estimators.swap_decision import t_interval
from collapse_diag.diagnostics.posterior_refinement import RefinedPosteriors, refine_posteriors
from collapse_diag.diagnostics.spec import DiagnosticSpec, DimensionColumn, RunContext, SummaryRow
from collapse_diag.exceptions import CollapseDiagError
from collapse_diag.io.data import subsample_indices
from collapse_diag.report.report import ReportSection
from collapse_diag.report.schema import DIMENSION_KEY as DK
from collapse_diag.report.schema import SUMMARY_KEY as SK

__all__ = ["SPEC", "RefinementResult", "refinement_result"]


@dataclass(frozen=True)
class RefinementResult:
    """The refinement's figures and the causes (nats).

    Attributes:
        refined: What :func:`refine_posteriors` found (per input).
        gap: ``(mean, low, high)`` of the amortization gap.
        approximation: ``(mean, low, high)`` of the approximation gap, or ``None``.
        causes: The cause per dimension and for the model, or ``None`` without a verdict.
        kl_refined: Per dimension mean KL(q*(z_d|x) || p(z_d)), ``(D,)``.
        kl_refined_ci: Its interval, ``(D, 2)``.
        kl_encoder: The encoder's per-dimension KL on the same inputs, ``(D,)``.
    """

    refined: RefinedPosteriors
    gap: tuple[float, float, float]
    approximation: tuple[float, float, float] | None
    causes: CauseResult | None
    kl_refined: np.ndarray
    kl_refined_ci: np.ndarray
    kl_encoder: np.ndarray

    def section(self) -> ReportSection:
        """Summary: gaps, counts, ``collapse_cause``; per dimension ``kl_refined``, ``cause``."""
        approx = self.approximation
        summary: dict[str, Any] = {
            SK.amortization_gap: self.gap[0],
            SK.amortization_gap_ci: [self.gap[1], self.gap[2]],
            SK.approximation_gap: None if approx is None else approx[0],
            SK.approximation_gap_ci: None if approx is None else [approx[1], approx[2]],
            SK.refinement_examples: int(len(self.refined.examples)),
            SK.refinement_converged: int(self.refined.converged.sum()),
            SK.refinement_steps: int(self.refined.steps_run),
        }
        dims: dict[str, list[Any]] = {
            DK.kl_refined: self.kl_refined.tolist(),
            DK.kl_refined_ci: self.kl_refined_ci.tolist(),
            DK.kl_encoder_refined_inputs: self.kl_encoder.tolist(),
        }
        if self.causes is not None:
            summary[SK.collapse_cause] = self.causes.collapse_cause
            summary[SK.cause_counts] = dict(self.causes.counts)
            dims[DK.cause] = list(self.causes.cause)
            if self.causes.excess_low is not None:
                dims[DK.kl_excess_low] = self.causes.excess_low.tolist()
        return ReportSection(summary=summary, dimensions=dims)


def _per_dimension(values: np.ndarray, steps: int | None, dims: int) -> np.ndarray:
    """``(M, D)`` per input and dimension; flattened sequential codes ``(M, T*D)`` summed over T."""
    return values if steps is None else values.reshape(len(values), steps, dims).sum(axis=1)


def refinement_result(refined: RefinedPosteriors, steps: int | None, dims: int,
                      settings: Any, status: tuple[str, ...] | None = None,
                      fisher_used: np.ndarray | None = None, kl_eps: float = 0.01,
                      bound: np.ndarray | None = None) -> RefinementResult:
    """The report's figures (and, given the statuses, the causes) from a refinement.

    Args:
        refined: The refinement of M inputs.
        steps: T for sequential latents (codes flattened to T * D), else ``None``.
        dims: D.
        settings: Uses ``confidence``, ``alpha``, ``objective_kl_ratio``.
        status: The verdict's status per dimension (``None``: no causes).
        fisher_used: The verdict's Fisher evidence per dimension, or ``None``.
        kl_eps: The collapse cut-off (the kl diagnostic's ``eps``).
        bound: The likelihood diagnostic's IW bound on the same M inputs, or ``None``.
    """
    kl_ref = _per_dimension(refined.kl_refined, steps, dims)
    kl_enc = _per_dimension(refined.kl_encoder, steps, dims)
    error = settings.alpha / max(dims, 1)
    intervals = [t_interval(kl_ref[:, d], error) for d in range(dims)]
    approx = None
    if bound is not None:
        mean, _, low, high = t_interval(np.asarray(bound) - refined.elbo_refined,
                                        1.0 - settings.confidence)
        approx = (mean, low, high)
    causes = None if status is None else decide_causes(
        status, kl_ref, kl_enc, fisher_used, kl_eps, settings.objective_kl_ratio,
        settings.alpha)
    return RefinementResult(
        refined=refined,
        gap=refined.amortization_gap(settings.confidence),
        approximation=approx,
        causes=causes,
        kl_refined=np.array([i[0] for i in intervals]),
        kl_refined_ci=np.array([[i[2], i[3]] for i in intervals]).reshape(dims, 2),
        kl_encoder=kl_enc.mean(axis=0),
    )


def _run(context: RunContext) -> RefinementResult:
    settings, info = context.settings, context.info
    generator = context.generator("refinement")
    likelihood, verdict, kl = (context.result(n) for n in ("likelihood", "verdict", "kl"))
    examples = bound = None
    wanted = settings.refine_examples
    if likelihood is not None and (wanted is not None and len(likelihood.examples) >= wanted):
        pick = subsample_indices(len(likelihood.examples), wanted, generator).numpy()
        examples, bound = likelihood.examples[pick], likelihood.bound[pick]
    refined = refine_posteriors(context.model, context.data, context.encodings, info, settings,
                                generator, examples=examples, show_progress=context.show_progress)
    if kl is None:
        raise CollapseDiagError("the refinement needs the kl diagnostic, which failed.")
    return refinement_result(
        refined, info.steps if context.encodings.sequential else None, info.latent_dim,
        settings, status=None if verdict is None else verdict.status,
        fisher_used=None if verdict is None or context.result("identifiability") is None
        else verdict.fisher_used, kl_eps=kl.eps, bound=bound)


SPEC = DiagnosticSpec(
    name="refinement",
    run=_run,
    requires=("kl", "identifiability", "verdict", "likelihood"),
    settings=("refine_examples", "refine_samples", "refine_steps", "refine_lr",
              "objective_kl_ratio"),
    min_inputs=2,
    summary_rows=(
        SummaryRow(SK.collapse_cause, "cause of collapse", "text"),
        SummaryRow(SK.amortization_gap, "amortization gap ELBO(q*) - ELBO(q)", "nats_ci",
                   related=(SK.amortization_gap_ci,)),
        SummaryRow(SK.approximation_gap, "approximation gap log p(x) - ELBO(q*)", "nats_ci",
                   related=(SK.approximation_gap_ci,)),
    ),
    columns=(
        DimensionColumn(DK.kl_refined, "KL of q* (nats)", "num", overview=True, group="why"),
        DimensionColumn(DK.cause, "cause", "text", terminal=True, group="why"),
    ),
    explanation=("collapse_diag.render.cause_text:cause_text",
                 "collapse_diag.render.cause_text:remedies_text"),
)
