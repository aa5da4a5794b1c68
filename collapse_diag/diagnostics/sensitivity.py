"""Decoder sensitivity to swapped z: does the decoder prefer each input's own code?

For every analysed input draw z_i ~ q(z|x_i) and pair it with the code of another
input through a seeded random derangement pi (a permutation without fixed points)::

    delta_i = log p(x_i | z_i) - log p(x_i | z_pi(i))                  (whole-vector swap)
    delta_id = log p(x_i | z_i) - log p(x_i | z_i with z_id := z_pi(i),d)   (per dimension)

A decoder that ignores z gives delta = 0 exactly; one that reads z prefers the
input's own code, delta > 0. The mean (nats, and per token), a percentile
bootstrap confidence interval and a one-sided Wilcoxon signed-rank p-value
(H1: the own code is preferred; scipy.stats.wilcoxon) are reported. The
per-dimension swap (:mod:`~collapse_diag.diagnostics.dim_swap`) costs
``1 + (dimensions decoded)`` rows per input and runs in rounds on fresh inputs,
``per_dim_swap_examples`` first (default 128) then doubling, until every
informative dimension is decided ``used`` / ``ignored`` by intervals
simultaneous over the D dimensions and the rounds, or the budget
``per_dim_swap_max_examples`` is spent. The own code is decoded again in the
same call so that per-dimension deltas compare rows of one call. E_q log p(x|z)
(the reconstruction term) comes free.

Every z is sampled up front on the CPU in float64 with the run's generator, so
the numbers do not depend on the batch size or the device.

Sequential latents z ``(N, T, D)``: partners share their valid length (identical
latent mask; unpaired inputs are left out), the per-dimension swap exchanges
dimension d at every step, and a swap per time window is added
(:mod:`~collapse_diag.diagnostics.window_swap`).

References:
    Wang, Blei & Cunningham (2021), "Posterior Collapse and Latent Variable
    Non-identifiability", NeurIPS. Wilcoxon (1945), "Individual comparisons by
    ranking methods". Efron & Tibshirani (1993), "An Introduction to the Bootstrap".
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from collapse_diag.config.settings import Settings
from collapse_diag.diagnostics.dim_swap import DimSwapResult, adaptive_dim_swap
from collapse_diag.diagnostics.estimators.statistics import (
    bootstrap_ci,
    signed_rank_greater,
    wilcoxon_greater,
)
from collapse_diag.diagnostics.estimators.swap_decision import (
    DECISIONS,
    estimate_intervals,
    negligible_thresholds,
)
from collapse_diag.diagnostics.informative import informative_dims, swap_reference
from collapse_diag.diagnostics.spec import (
    DiagnosticSpec,
    DimensionColumn,
    PlotRef,
    RunContext,
    SummaryRow,
)
from collapse_diag.diagnostics.window_swap import aligned_derangement, window_swap
from collapse_diag.exceptions import DiagnosticError
from collapse_diag.io.data import Batch, num_examples, repeat, take, to_device
from collapse_diag.model.decoding import (
    decode,
    derangement,
    inputs_per_call,
    mean_or_none,
    nanmean,
    per_token,
    shard_batches,
)
from collapse_diag.model.encodings import Encodings
from collapse_diag.model.protocol import ModelInfo
from collapse_diag.report.headlines import label
from collapse_diag.report.report import ReportSection
from collapse_diag.report.schema import DIMENSION_KEY as D
from collapse_diag.report.schema import DISTRIBUTION_KEY
from collapse_diag.report.schema import SUMMARY_KEY as S
from collapse_diag.runtime import distributed

__all__ = [
    "SensitivityResult",
    "sensitivity_diagnostic",
]





@dataclass(frozen=True)
class SensitivityResult:
    """Decoder sensitivity to swapped codes.

    Attributes:
        delta: Per-input whole-vector swap delta, shape ``(N,)`` (nats).
        delta_per_token: ``delta / num_tokens``, or ``None``.
        swap_delta: Mean of ``delta`` (nats).
        swap_delta_per_token: Mean of ``delta_per_token``, or ``None``.
        swap_ci: Percentile bootstrap CI ``(low, high)`` of ``swap_delta`` at ``confidence``.
        swap_p_value: One-sided Wilcoxon p-value of ``delta`` (H1: own code preferred).
        swap_significant: ``swap_p_value < alpha``.
        alpha: Significance level used.
        log_likelihood: Per-input log p(x_i|z_i), z_i ~ q(z|x_i), shape ``(N,)``.
        reconstruction: E_x E_q log p(x|z) (nats), mean of ``log_likelihood``.
        reconstruction_per_token: The same per token, or ``None``.
        permutation: The derangement pi, shape ``(N,)``.
        per_dim: The adaptive per-dimension swap: deltas ``(M, D)`` (NaN where a
            dimension was no longer sampled), intervals, thresholds, decisions.
        dim_swap_delta: Mean delta per dimension, shape ``(D,)`` (NaN when M = 0).
        dim_swap_delta_per_token: The same per token, or ``None``.
        dim_swap_estimate_ci: Interval of ``dim_swap_delta`` from all the inputs each
            dimension used, ``(D, 2)``: bootstrap-t at error ``per_dim.error``, simultaneous
            over the D dimensions at 1 - alpha and valid at the round the dimension stopped
            (:func:`~collapse_diag.diagnostics.estimators.swap_decision.estimate_intervals`);
            it contains the mean, unlike the decision interval ``per_dim.low/high``.
        dim_p_values: One-sided Wilcoxon p-value per dimension, uncorrected,
            shape ``(D,)`` (NaN when M = 0), reported next to the intervals.
        decoder_calls: Decoder calls made.
        decoder_rows: Rows (input, code) decoded.
        windows: Sequential latents only: the swap per time window
            (:func:`~collapse_diag.diagnostics.window_swap.window_swap`), else ``None``.
        unpaired: Sequential latents only: inputs without a partner of equal valid
            length, left out of every swap statistic; else ``None``.
    """

    delta: np.ndarray
    delta_per_token: np.ndarray | None
    swap_delta: float
    swap_delta_per_token: float | None
    swap_ci: tuple[float, float]
    swap_p_value: float
    swap_significant: bool
    alpha: float
    log_likelihood: np.ndarray
    reconstruction: float
    reconstruction_per_token: float | None
    permutation: np.ndarray
    per_dim: DimSwapResult
    dim_swap_delta: np.ndarray
    dim_swap_delta_per_token: np.ndarray | None
    dim_swap_estimate_ci: np.ndarray
    dim_p_values: np.ndarray
    decoder_calls: int
    decoder_rows: int
    windows: list[dict[str, Any]] | None = None
    unpaired: int | None = None

    @property
    def per_dim_swap_examples(self) -> int:
        """Inputs M the per-dimension swap decoded (the most any dimension used)."""
        return int(len(self.per_dim.examples))

    @property
    def dim_examples(self) -> np.ndarray:
        """Indices of the inputs of the per-dimension swap, in the order used, ``(M,)``."""
        return self.per_dim.examples

    @property
    def dim_delta(self) -> np.ndarray:
        """Per-dimension swap deltas ``(M, D)``; NaN where a dimension was no longer sampled."""
        return self.per_dim.delta

    def section(self) -> ReportSection:
        """The report fields: summary, per-dimension columns, per-input distribution."""
        d = len(self.dim_swap_delta)
        per_tok = self.dim_swap_delta_per_token
        pd = self.per_dim
        return ReportSection(
            summary={
                S.swap_delta: self.swap_delta,
                S.swap_delta_per_token: self.swap_delta_per_token,
                S.swap_ci: list(self.swap_ci),
                S.swap_p_value: self.swap_p_value,
                S.swap_significant: self.swap_significant,
                S.per_dim_swap_examples: self.per_dim_swap_examples,
                S.per_dim_swap_rounds: pd.rounds,
                S.per_dim_swap_budget: pd.budget,
                S.per_dim_swap_error: pd.error,
                S.decoder_use_counts: {k: pd.decision.count(k) for k in DECISIONS},
                S.reconstruction: self.reconstruction,
                S.reconstruction_per_token: self.reconstruction_per_token,
                S.swap_delta_by_window: self.windows,
                S.swap_unpaired_inputs: self.unpaired,
            },
            dimensions={
                D.swap_delta: self.dim_swap_delta.tolist(),
                D.swap_delta_per_token: per_tok.tolist() if per_tok is not None else [None] * d,
                D.swap_p_value: self.dim_p_values.tolist(),
                D.swap_ci: [[float(lo), float(hi)] for lo, hi in zip(pd.low, pd.high)],
                D.swap_estimate_ci: [[float(lo), float(hi)]
                                     for lo, hi in self.dim_swap_estimate_ci],
                D.swap_examples: pd.count.tolist(),
                D.swap_threshold: pd.threshold.tolist(),
                D.decoder_use: list(pd.decision),
                D.swap_inputs_needed: list(pd.inputs_needed),
            },
            distributions={DISTRIBUTION_KEY.swap_delta: self.delta.tolist()},
        )


def sensitivity_diagnostic(
    model: Any,
    data: Batch,
    encodings: Encodings,
    info: ModelInfo,
    settings: Settings,
    generator: torch.Generator,
    show_progress: bool = False,
    informative: np.ndarray | None = None,
    information: np.ndarray | None = None,
) -> SensitivityResult:
    """Whole-vector and per-dimension swap tests of the decoder.

    Random draws, in this order, from ``generator`` (CPU, float64): the
    posterior noise ``(N, D)``, the derangement, the order of the inputs of the
    per-dimension swap, the bootstrap indices of the whole-vector swap, then those
    of the per-dimension estimate intervals.

    Decoder cost: ``2N`` rows in calls of ``inputs_per_call(batch_size, 2)``
    inputs, plus at most ``B (D + 1)`` rows for the per-dimension swap
    (B = ``min(N, per_dim_swap_max_examples)``; ``n_1 (D + 1)`` when round 1 of
    ``n_1 = per_dim_swap_examples`` inputs decides every informative dimension).
    Under ``torchrun`` every process draws the same codes, decodes its shard of the
    inputs (of each round) and gathers the log-likelihoods
    (:func:`~collapse_diag.runtime.distributed.map_shard`); the statistics run on every process.

    Args:
        model: Protocol model on ``settings.device``, in eval mode.
        data: The N analysed inputs on the CPU, in the order of ``encodings``.
        encodings: Encoder outputs of ``data``.
        info: Result of ``check_model``.
        settings: Uses ``batch_size``, ``device``, ``per_dim_swap_examples``,
            ``per_dim_swap_max_examples``, ``negligible_swap_nats``,
            ``negligible_swap_fraction``, ``swap_bootstrap``, ``confidence``, ``alpha``.
        generator: The diagnostic's seeded CPU generator.
        show_progress: Progress bars on stderr.
        informative: Dimensions the rounds must decide, ``(D,)`` bool (default: all).
        information: I(x; z_d) per dimension (or an upper bound such as the mean
            KL_d) for the negligible-effect threshold; ``None``: the cap alone.

    Returns:
        A :class:`SensitivityResult`.

    Raises:
        DiagnosticError: fewer than 2 inputs, data and encodings disagree, or the
            decoder returned NaN/Inf or a wrong shape.
    """
    n, dim = encodings.n_examples, encodings.latent_dim
    if num_examples(data) != n:
        raise DiagnosticError(f"data holds {num_examples(data)} inputs but encodings {n}.")
    z, pi, paired, order = _draws(encodings, generator)
    ll_own, ll_swap, calls = _whole_vector_swap(model, data, z, pi, info, settings,
                                                show_progress)
    windows = None
    if paired is not None:
        order = order[paired[order]]
        windows = window_swap(model, data, z, pi, order, encodings.valid(), info, settings)
    per_dim = _per_dim(
        model, data, z, pi, order, info, settings, paired,
        np.ones(dim, bool) if informative is None else np.asarray(informative, bool),
        negligible_thresholds(information, dim, settings.negligible_swap_nats,
                              settings.negligible_swap_fraction),
        show_progress,
    )
    return _result(ll_own, ll_swap, pi, paired, per_dim, windows, encodings.num_tokens,
                   calls, settings, generator)


def _draws(encodings: Encodings, generator: torch.Generator
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
    """The diagnostic's random draws, in order: posterior codes, partners, input order.

    Returns:
        ``(z, pi, paired, order)``: z = mu + sigma eps ``(N, D)``; the derangement
        (sequential latents: partners of equal valid length only, window_swap.py) and
        which inputs have a partner (``None`` for vector latents); a random order of
        the inputs for the per-dimension rounds.
    """
    noise = torch.randn(encodings.mu.shape, generator=generator, dtype=torch.float64).numpy()
    z = encodings.mu + np.exp(0.5 * encodings.logvar) * noise
    if encodings.sequential:
        pi, paired = aligned_derangement(encodings.valid(), generator)
    else:
        pi, paired = derangement(encodings.n_examples, generator), None
    order = torch.randperm(encodings.n_examples, generator=generator).numpy()
    return z, pi, paired, order


def _whole_vector_swap(model: Any, data: Batch, z: np.ndarray, pi: np.ndarray, info: ModelInfo,
                       settings: Settings, show_progress: bool
                       ) -> tuple[np.ndarray, np.ndarray, int]:
    """The whole-vector swap: log p(x_i|z_i), log p(x_i|z_pi(i)) per input; decoder calls.

    Rows ``[x; x]`` with codes ``[z_i; z_pi(i)]`` in one call; this process's shard
    of the inputs, the per-input figures gathered.
    """
    n, device = len(z), settings.device
    step = inputs_per_call(settings.batch_size, 2)

    def swap_shard(start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        own, swapped = np.empty(stop - start), np.empty(stop - start)
        with torch.no_grad():
            for rows, batch in shard_batches(data, start, stop, step, "swap test",
                                             show_progress):
                b, at = rows.stop - rows.start, slice(rows.start - start, rows.stop - start)
                x = repeat(to_device(batch, device), 2)
                ll = decode(model, x, np.concatenate([z[rows], z[pi[rows]]]), info, device)
                own[at], swapped[at] = ll[:b], ll[b:]
        return own, swapped

    ll_own, ll_swap = distributed.map_shard(n, swap_shard)
    return ll_own, ll_swap, distributed.total(-(-len(distributed.shard(n)) // step))


def _result(ll_own: np.ndarray, ll_swap: np.ndarray, pi: np.ndarray, paired: np.ndarray | None,
            per_dim: DimSwapResult, windows: Any, tokens: np.ndarray | None, calls: int,
            settings: Settings, generator: torch.Generator) -> SensitivityResult:
    """The figures: deltas, the Wilcoxon test, the bootstrap intervals (their draws last)."""
    dim_delta, sub = per_dim.delta, per_dim.examples
    delta = ll_own - ll_swap
    if paired is not None:  # unpaired inputs kept their own code: no swap to measure
        delta = delta[paired]
    delta_tok = per_token(delta, tokens if paired is None or tokens is None else tokens[paired])
    p_value = wilcoxon_greater(delta)
    tok_sub = tokens[sub] if tokens is not None else None
    swap_ci = bootstrap_ci(delta, settings.swap_bootstrap, settings.confidence, generator)
    estimate_ci = np.column_stack(estimate_intervals(dim_delta, per_dim.error, generator))
    return SensitivityResult(
        delta=delta,
        delta_per_token=delta_tok,
        swap_delta=float(delta.mean()),
        swap_delta_per_token=mean_or_none(delta_tok),
        swap_ci=swap_ci,
        swap_p_value=p_value,
        swap_significant=bool(p_value < settings.alpha),
        alpha=float(settings.alpha),
        log_likelihood=ll_own,
        reconstruction=float(ll_own.mean()),
        reconstruction_per_token=mean_or_none(per_token(ll_own, tokens)),
        permutation=pi,
        per_dim=per_dim,
        dim_swap_delta=nanmean(dim_delta),
        dim_swap_delta_per_token=(None if tok_sub is None
                                  else nanmean(per_token(dim_delta, tok_sub))),
        dim_swap_estimate_ci=estimate_ci,
        dim_p_values=(signed_rank_greater(dim_delta) if len(sub)
                      else np.full(len(per_dim.count), math.nan)),
        decoder_calls=calls + per_dim.calls,
        decoder_rows=2 * len(ll_own) + per_dim.rows,
        windows=windows,
        unpaired=None if paired is None else int((~paired).sum()),
    )


def _per_dim(model: Any, data: Batch, z: np.ndarray, pi: np.ndarray, order: np.ndarray,
             info: ModelInfo, settings: Settings, paired: np.ndarray | None,
             *rest: Any) -> DimSwapResult:
    """:func:`adaptive_dim_swap`; for sequential latents on the paired inputs only.

    The paired inputs are taken out (codes, partners and order re-indexed) and the
    result's ``examples`` mapped back to indices of all N inputs.
    """
    if paired is None:
        return adaptive_dim_swap(model, data, z, pi, order, info, settings, *rest)
    keep = np.flatnonzero(paired)
    new = np.full(len(paired), -1)
    new[keep] = np.arange(len(keep))
    result = adaptive_dim_swap(model, take(data, torch.from_numpy(keep)), z[keep],
                               new[pi[keep]], new[order], info, settings, *rest)
    return dataclasses.replace(result, examples=keep[result.examples])



# --- the diagnostic's spec (collapse_diag/diagnostics/spec.py) ---------------------------


def _run(context: RunContext) -> SensitivityResult:
    kl, activity = context.result("kl"), context.result("activity")
    return sensitivity_diagnostic(
        *context.decoder_args("sensitivity"), show_progress=context.show_progress,
        informative=informative_dims(kl, activity),
        information=swap_reference(context.result("information"), kl))


SPEC = DiagnosticSpec(
    name="sensitivity",
    min_inputs=2,
    run=_run,
    requires=("kl", "activity", "information"),
    settings=("swap_bootstrap", "per_dim_swap_examples", "per_dim_swap_max_examples",
              "negligible_swap_nats", "negligible_swap_fraction"),
    uses_decoder=True,
    summary_rows=(
        SummaryRow(S.swap_delta, "swap delta", "nats_ci", related=(S.swap_ci,),
                   terminal=label(S.swap_delta)),
        SummaryRow(S.swap_delta_per_token, "swap delta per token", "nats"),
        SummaryRow(S.swap_p_value, "swap p-value", "p_value"),
        SummaryRow(S.decoder_use_counts, "per-dimension swap: decoder use", "counts"),
        SummaryRow(S.per_dim_swap_rounds, "per-dimension swap: inputs, rounds",
                   "inputs_rounds", related=(S.per_dim_swap_examples, S.per_dim_swap_budget)),
        SummaryRow(S.reconstruction, "reconstruction E log p(x|z), z ~ q", "nats"),
    ),
    columns=(
        DimensionColumn(D.swap_delta, "swap delta (nats)", "num", terminal=True,
                        overview=True, group="decoder"),
        DimensionColumn(D.swap_estimate_ci, "swap delta interval", "interval", terminal=True,
                        group="decoder"),
        DimensionColumn(D.swap_ci, "decision interval", "interval", group="decoder"),
        DimensionColumn(D.swap_threshold, "negligible below", "num", group="decoder"),
        DimensionColumn(D.swap_examples, "swap inputs", "num", group="decoder"),
        DimensionColumn(D.swap_inputs_needed, "inputs to decide", "num", group="decoder"),
        DimensionColumn(D.swap_delta_per_token, "swap delta / token", "num", group="decoder"),
        DimensionColumn(D.swap_p_value, "swap p", "p_value", group="decoder"),
    ),
    plots=(
        PlotRef("sensitivity", "Decoder sensitivity",
                "How much worse each input is explained when given another input's z (left; "
                "mass at 0 means the decoder ignores z), and the same for one dimension at a "
                "time (right).",
                "collapse_diag.render.plots_sensitivity:plot_sensitivity"),
    ),
    explanation=("collapse_diag.render.explain:decoder_text",
                 "collapse_diag.render.sequence_text:sequence_text"),
)
