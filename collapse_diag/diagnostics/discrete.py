"""The diagnostic of discrete latents: codebook usage (VQ) or categorical KL/MI, swaps, verdict.

For a model of the ``codes`` or ``categorical`` kind (collapse_diag/model/latent_kinds.py)
this one diagnostic replaces the Gaussian ones, which do not run:

* ``codes``: codebook usage, perplexity, dead codes and the exact MI = H(codes)
  (collapse_diag/diagnostics/codebook.py);
* ``categorical``: closed-form KL per variable, exact MI, usage perplexity
  (collapse_diag/diagnostics/categorical.py), the swaps on one seeded draw
  ``c ~ q(c|x)`` per input, fed to the decoder one-hot;
* both: the whole-map and per-position swap tests, the statuses and the verdict
  (collapse_diag/diagnostics/discrete_swap.py). A VQ model whose usage perplexity is
  below :data:`~collapse_diag.diagnostics.codebook.CODEBOOK_COLLAPSE_SHARE` of K gets the
  verdict ``codebook collapse`` (unless it is ``collapsed``: no position read at all).

It runs whenever ``kl`` is selected (``--diagnostics``, the cheap preset), standing in
for kl and the verdict. Its decoder calls run in the model's own precision
(``--dtype`` covers the Gaussian sensitivity and identifiability diagnostics only).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from collapse_diag.diagnostics.categorical import CategoricalFigures, categorical_figures
from collapse_diag.diagnostics.codebook import (
    CODEBOOK_COLLAPSE_SHARE,
    CodebookFigures,
    codebook_figures,
)
from collapse_diag.diagnostics.discrete_swap import (
    DiscreteSwap,
    discrete_statuses,
    discrete_swap,
    discrete_verdict,
)
from collapse_diag.diagnostics.spec import (
    DiagnosticSpec,
    DimensionColumn,
    PlotRef,
    RunContext,
    SummaryRow,
)
from collapse_diag.model.latent_kinds import CATEGORICAL, CODES, one_hot
from collapse_diag.report.headlines import label
from collapse_diag.report.report import ReportSection
from collapse_diag.report.schema import DIMENSION_KEY as DK
from collapse_diag.report.schema import STATUSES
from collapse_diag.report.schema import SUMMARY_KEY as SK

__all__ = ["DiscreteResult", "SPEC", "discrete_reason"]


@dataclass(frozen=True)
class DiscreteResult:
    """Figures, statuses and verdict of a discrete latent."""

    kind: str
    classes: int
    codebook: CodebookFigures | None
    categorical: CategoricalFigures | None
    swap: DiscreteSwap
    statuses: tuple[str, ...]
    verdict: str
    reason: str

    def section(self) -> ReportSection:
        """Summary (codebook or categorical figures, swaps, verdict) and one row per position."""
        swap, book, cat = self.swap, self.codebook, self.categorical
        summary = {
            SK.discrete_swap_delta: float(swap.delta.mean()),
            SK.discrete_swap_p_value: swap.p_value,
            SK.discrete_reconstruction: swap.reconstruction,
            SK.discrete_swap_inputs: swap.swap_inputs,
            SK.status_counts: {name: self.statuses.count(name) for name in STATUSES},
            SK.verdict: self.verdict,
            SK.verdict_reason: self.reason,
        }
        dims = {
            DK.status: list(self.statuses),
            DK.discrete_swap_delta: swap.position_delta.tolist(),
            DK.discrete_swap_p_holm: swap.position_p_holm.tolist(),
        }
        if book is not None:
            summary.update({
                SK.codebook_counts: book.counts.tolist(),
                SK.codebook_entropy: book.entropy,
                SK.codebook_perplexity: book.perplexity,
                SK.codebook_used: book.used,
                SK.codebook_dead: book.dead,
                SK.dead_code_usage_bound: book.dead_usage_bound,
                SK.dead_code_inputs_needed: book.inputs_for_dead,
                SK.codebook_collapse: book.collapse,
                SK.discrete_mi: book.map_entropy,
                SK.discrete_mi_ceiling: book.map_ceiling,
            })
            dims.update({DK.discrete_mi: book.position_entropy.tolist(),
                         DK.usage_perplexity: np.exp(book.position_entropy).tolist(),
                         DK.codes_used: book.position_used.tolist()})
        if cat is not None:
            summary.update({SK.discrete_kl: float(cat.kl.sum()),
                            SK.discrete_mi: cat.joint_mi,
                            SK.discrete_mi_ceiling: cat.mi_ceiling})
            dims.update({DK.discrete_kl: cat.kl.tolist(), DK.discrete_mi: cat.mi.tolist(),
                         DK.usage_perplexity: cat.perplexity.tolist()})
        return ReportSection(summary=summary, dimensions=dims)


def discrete_reason(kind: str, statuses: tuple[str, ...], verdict: str,
                    book: CodebookFigures | None, classes: int) -> str:
    """The verdict's one sentence, in codebook terms for VQ codes."""
    positions = "code positions" if kind == CODES else "categorical variables"
    used = statuses.count("used")
    unused = sum(statuses.count(s) for s in ("collapsed", "ignored", "uninformative"))
    usage = ("" if book is None else
             f" The codebook's usage perplexity is {book.perplexity:.3g} of K = {classes} "
             f"({book.used} codes used, {book.dead} never used on these inputs).")
    if verdict == "codebook collapse":
        return (f"Codebook collapse: a few codes carry the data: the usage perplexity "
                f"{book.perplexity:.3g} is below {CODEBOOK_COLLAPSE_SHARE:.0%} of the "
                f"{classes} codes ({book.used} used, {book.dead} dead), though {used} of "
                f"{len(statuses)} {positions} are read by the decoder.")
    if verdict == "collapsed":
        return (f"No {positions[:-1]} carries information the decoder reads: {unused} of "
                f"{len(statuses)} are constant (or equal their prior) or ignored.{usage}")
    if verdict == "healthy":
        return f"The decoder reads every one of the {len(statuses)} {positions}.{usage}"
    return (f"{used} of {len(statuses)} {positions} are read by the decoder, {unused} carry "
            f"nothing or are ignored, {len(statuses) - used - unused} undetermined.{usage}")


def _run(context: RunContext) -> DiscreteResult:
    enc, info, cfg = context.encodings, context.info, context.settings
    classes = int(info.classes)
    generator = context.generator("discrete")
    book = cat = None
    if info.kind == CODES:
        book = codebook_figures(enc.codes, classes, cfg.alpha)
        codes = torch.from_numpy(enc.codes)
        shape = info.code_shape

        def to_model(c: torch.Tensor) -> torch.Tensor:
            return c.reshape(len(c), *shape)

        collapsed = book.position_entropy <= 0
    else:
        cat = categorical_figures(enc.logits, enc.prior_logits)
        probs = torch.from_numpy(np.exp(enc.logits)).reshape(-1, classes)
        codes = torch.multinomial(probs, 1, generator=generator).reshape(enc.logits.shape[:2])

        def to_model(c: torch.Tensor) -> torch.Tensor:
            return one_hot(c, classes, info.dtype)

        collapsed = cat.kl < cfg.kl_eps
    swap = discrete_swap(context.model, context.data, codes, to_model, cfg.batch_size,
                         cfg.device, generator, context.show_progress)
    statuses = discrete_statuses(collapsed, swap, cfg.alpha)
    verdict = discrete_verdict(statuses)
    if book is not None and book.collapse and verdict != "collapsed":
        verdict = "codebook collapse"
    return DiscreteResult(info.kind, classes, book, cat, swap, statuses, verdict,
                          discrete_reason(info.kind, statuses, verdict, book, classes))


SPEC = DiagnosticSpec(
    name="discrete",
    run=_run,
    kinds=(CODES, CATEGORICAL),
    runs_with=("kl",),  # stands in for kl and the verdict: a selection naming kl runs it
    min_inputs=2,
    summary_rows=(
        SummaryRow(SK.codebook_perplexity, "codebook usage perplexity exp(H)", "num",
                   terminal=label(SK.codebook_perplexity)),
        SummaryRow(SK.codebook_used, "codes used", "num", terminal=label(SK.codebook_used)),
        SummaryRow(SK.codebook_dead, "dead codes (never used on these inputs)", "num"),
        SummaryRow(SK.dead_code_inputs_needed, "inputs needed to call a 1/K code dead", "num"),
        SummaryRow(SK.discrete_kl, "mean KL(q(c|x) || p(c))", "nats",
                   terminal=label(SK.discrete_kl)),
        SummaryRow(SK.discrete_mi, "I(x; c), exact", "nats", terminal=label(SK.discrete_mi)),
        SummaryRow(SK.discrete_mi_ceiling, "MI ceiling", "nats"),
        SummaryRow(SK.discrete_swap_delta, "swap delta (whole code map)", "nats",
                   terminal=label(SK.discrete_swap_delta)),
        SummaryRow(SK.discrete_swap_p_value, "swap p-value", "p_value"),
        SummaryRow(SK.discrete_reconstruction, "log p(x|c) at the own codes", "nats"),
    ),
    columns=(
        DimensionColumn(DK.discrete_kl, "KL (nats)", "num", terminal=True, group="encoder"),
        DimensionColumn(DK.discrete_mi, "MI (nats)", "num", terminal=True, group="encoder"),
        DimensionColumn(DK.usage_perplexity, "usage perplexity", "num", terminal=True,
                        group="encoder"),
        DimensionColumn(DK.codes_used, "codes used", "num", group="encoder"),
        DimensionColumn(DK.discrete_swap_delta, "swap delta", "num", terminal=True,
                        group="decoder"),
        DimensionColumn(DK.discrete_swap_p_holm, "swap p (Holm)", "p_value", group="decoder"),
    ),
    plots=(
        PlotRef("codebook_usage", "Codebook usage",
                "How often each codebook entry is used over every position of the analysed "
                "inputs, most used first; entries never used (dead codes) are not drawn.",
                "collapse_diag.render.plots_codebook:plot_codebook_usage", kinds=(CODES,)),
        PlotRef("position_usage", "Usage perplexity per position",
                "exp(H) of the code (or class) distribution at each position / variable, "
                "coloured by status: 1 means one code for every input (nothing carried).",
                "collapse_diag.render.plots_codebook:plot_position_usage"),
    ),
    explanation=("collapse_diag.render.explain_discrete:discrete_text",),
)
