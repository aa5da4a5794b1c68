"""What the decoder makes of z: decoded outputs, and how much they change with z.

Needs the optional protocol method ``generate(z)`` (docs/model-protocol.md): token
ids for a text decoder (greedy, so one z gives one sentence), the decoder's mean
for continuous data. Without it the diagnostic records ``output_kind =
"unavailable"`` and the report says how to add it; nothing else changes.

Diversity (collapse_diag/diagnostics/estimators/diversity.py): M =
``decoded_samples`` codes z_j ~ q(z) = mean_x q(z|x) (a seeded input i_j, then
z_j = mu(x_{i_j}) + sigma(x_{i_j}) eps_j) are decoded, and compared with the
decode at z_bar = mean_x mu(x), the mean of q(z):

* tokens: the share of tokens that change from the decode at z_bar (normalised
  token edit distance, percentile bootstrap interval over the codes), the fraction
  of the M decodes that differ from it at all (exact Clopper-Pearson interval),
  distinct-1 and distinct-2 (Li et al. 2016);
* continuous: sum_p Var_j g_p(z_j) / sum_p Var_j x_{i_j, p} (percentile bootstrap
  interval over the pairs), when the inputs are floats of the outputs' size.

A decoder that ignores z (posterior collapse) gives 0: the "generic outputs that
are crude representatives of all seen x's".

Views (what the report shows, ``decoded_views``): ``decoded_examples`` inputs
beside the decode at their mu(x); decodes at z_bar, at as many prior draws and at
as many other inputs' codes mu(x_j); text, the homotopy between two inputs' codes
(1 - t) mu(x_a) + t mu(x_b) at ``decoded_steps`` points (Bowman et al. 2016); text
and continuous, a traversal of the ``decoded_dims`` dimensions of largest KL, each over
the 2.5 to 97.5 percentiles of its q(z) draws with the others at z_bar (Higgins et
al. 2017; for text a table of sentences, one row per dimension). Sequential latents:
z_bar is the mean per step, a traversal moves the dimension at every step, and the
prior draws are left out when the model has a (conditional) prior; the diversity and
the other inputs' codes are also shown per time window
(collapse_diag/diagnostics/decoded_windows.py).

Cost: M (1 + W) + 1 + 3 ``decoded_examples`` + ``decoded_steps`` (1 + ``decoded_dims``)
rows (W time windows for sequential latents, else 0) of ``generate`` in calls of
``batch_size``; under ``torchrun`` the M codes (and their window variants) are sharded
(:func:`~collapse_diag.runtime.distributed.map_shard`), the few view rows
decoded on every process.

References:
    Bowman et al. (2016), "Generating Sentences from a Continuous Space", CoNLL.
    Higgins et al. (2017), "beta-VAE: Learning Basic Visual Concepts with a
    Constrained Variational Framework", ICLR. Li et al. (2016), see the estimator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from collapse_diag.config.settings import Settings
from collapse_diag.diagnostics.decoded_windows import window_diversity, window_views
from collapse_diag.diagnostics.estimators.diversity import (
    differ_fraction,
    distinct_n,
    token_change,
    variance_ratio,
)
from collapse_diag.diagnostics.estimators.statistics import bootstrap_ci
from collapse_diag.diagnostics.spec import (
    DiagnosticSpec,
    PlotRef,
    RunContext,
    SectionRef,
    SummaryRow,
)
from collapse_diag.io.data import Batch, take
from collapse_diag.model.decoding import codes_to_device
from collapse_diag.model.encodings import Encodings
from collapse_diag.model.protocol import ModelInfo, call_detokenize, call_generate
from collapse_diag.report.report import ReportSection
from collapse_diag.report.schema import SUMMARY_KEY as S
from collapse_diag.runtime import distributed

__all__ = ["DecodedResult", "OUTPUT_KINDS", "decoded_outputs_diagnostic"]

#: ``summary.output_kind``: what ``generate(z)`` returns, or that the model has none.
OUTPUT_KINDS = ("tokens", "continuous", "unavailable")
#: Decimals kept of each pixel / value of a continuous view in report.json.
_DECIMALS = 4
#: Percentiles of q(z) a traversal covers.
_RANGE = (2.5, 97.5)


@dataclass(frozen=True)
class DecodedResult:
    """What the decoder makes of z.

    Attributes:
        kind: One of :data:`OUTPUT_KINDS`.
        diversity: ``output_diversity`` (see the module docstring), or ``None``.
        diversity_ci: Its interval ``(low, high)``, or ``None``.
        samples: M, codes decoded for it (``None`` when unavailable).
        distinct: distinct-1 and distinct-2 (tokens), else ``(None, None)``.
        differ: Tokens: the fraction of decodes that differ from the decode at z_bar and
            its exact interval ``(fraction, (low, high))``; else ``None``.
        views: The decoded outputs the report shows (``summary.decoded_views``), or ``None``.
        by_window: Sequential latents: the diversity per time window
            (collapse_diag/diagnostics/decoded_windows.py), else ``None``.
    """

    kind: str
    diversity: float | None = None
    diversity_ci: tuple[float, float] | None = None
    samples: int | None = None
    distinct: tuple[float | None, float | None] = (None, None)
    differ: tuple[float, tuple[float, float]] | None = None
    views: dict[str, Any] | None = None
    by_window: list[dict[str, Any]] | None = None

    def section(self) -> ReportSection:
        """The report fields (summary only)."""
        return ReportSection(summary={
            S.output_kind: self.kind,
            S.output_diversity: self.diversity,
            S.output_diversity_ci: None if self.diversity_ci is None else list(self.diversity_ci),
            S.decoded_samples: self.samples,
            S.distinct_1: self.distinct[0],
            S.distinct_2: self.distinct[1],
            S.differ_fraction: None if self.differ is None else self.differ[0],
            S.differ_fraction_ci: None if self.differ is None else list(self.differ[1]),
            S.decoded_views: self.views,
            S.output_diversity_by_window: self.by_window,
        })


def decoded_outputs_diagnostic(
    model: Any,
    data: Batch,
    encodings: Encodings,
    info: ModelInfo,
    settings: Settings,
    generator: torch.Generator,
    kl: np.ndarray | None = None,
) -> DecodedResult:
    """Decode seeded codes with ``model.generate`` and measure how much the output changes.

    Random draws, in this order, from ``generator`` (CPU, float64): a permutation of
    the inputs (the shown ones), the M inputs and noise of the q(z) codes, the
    noise of the prior draws, then the bootstrap indices.

    Args:
        model: Protocol model on ``settings.device``, in eval mode.
        data: The N analysed inputs on the CPU, in the order of ``encodings``.
        encodings: Encoder outputs of ``data``.
        info: Result of ``check_model``.
        settings: Uses ``decoded_samples``, ``decoded_examples``, ``decoded_steps``,
            ``decoded_dims``, ``decoded_bootstrap``, ``batch_size``, ``device``, ``confidence``.
        generator: The diagnostic's seeded CPU generator.
        kl: Mean KL per dimension ``(D,)``: the order of the traversals (default: index order).

    Returns:
        A :class:`DecodedResult`; ``kind = "unavailable"`` without ``generate``.

    Raises:
        DiagnosticError: ``generate`` or ``detokenize`` failed or returned a wrong value.
    """
    if not callable(getattr(model, "generate", None)):
        return DecodedResult("unavailable")
    n, m, shown = encodings.n_examples, settings.decoded_samples, settings.decoded_examples
    mu, logvar = encodings.mu, encodings.logvar
    perm = torch.randperm(n, generator=generator).numpy()
    picks = torch.randint(n, (m,), generator=generator).numpy()
    noise = torch.randn((m, *mu.shape[1:]), generator=generator, dtype=torch.float64).numpy()
    codes = mu[picks] + np.exp(0.5 * logvar[picks]) * noise
    prior_noise = torch.randn((shown, *mu.shape[1:]), generator=generator,
                              dtype=torch.float64).numpy()
    z_bar = _mean_code(encodings)
    decode = _Decoder(model, info, settings)
    reference = decode(z_bar[None])
    kind = "tokens" if isinstance(reference, list) else "continuous"
    views = _views(decode, kind, data, encodings, info, settings, perm, prior_noise, z_bar,
                   codes, kl)
    if kind == "tokens":
        rows = _sharded_tokens(decode, codes)
        change = token_change(rows, reference[0])
        ci = bootstrap_ci(change, settings.decoded_bootstrap, settings.confidence, generator)
        fraction, exact, _ = differ_fraction(rows, reference[0], settings.confidence)
        return DecodedResult(kind, float(change.mean()),
                             None if math.isnan(ci[0]) else ci, m,
                             (distinct_n(rows, 1), distinct_n(rows, 2)), (fraction, exact),
                             views, _by_window(decode, kind, views, encodings, settings, perm,
                                               codes, z_bar, reference[0], None, generator))
    outputs = _sharded_outputs(decode, codes)
    inputs = comparable_inputs(take(data, torch.from_numpy(picks)), outputs.shape[1])
    ratio, ci = (None, None) if inputs is None else variance_ratio(
        outputs, inputs, settings.decoded_bootstrap, settings.confidence, generator)
    return DecodedResult(kind, ratio, ci, m, views=views,
                         by_window=_by_window(decode, kind, views, encodings, settings, perm,
                                              codes, z_bar, None, inputs, generator))


def _sharded_outputs(decode: _Decoder, codes: np.ndarray) -> np.ndarray:
    """Continuous decodes ``(M, P)`` of ``codes``, this process's shard decoded, gathered."""
    m = len(codes)
    return distributed.map_shard(m, lambda a, b: (decode(codes[a:b]).reshape(b - a, -1),))[0]


def _by_window(decode: _Decoder, kind: str, views: dict[str, Any], encodings: Encodings,
               settings: Settings, perm: np.ndarray, codes: np.ndarray, z_bar: np.ndarray,
               reference: tuple[int, ...] | None, inputs: np.ndarray | None,
               generator: torch.Generator) -> list[dict[str, Any]] | None:
    """Sequential latents: the diversity per time window, and its view added to ``views``.

    Drawn after every whole-code figure (its bootstrap draws come last).
    """
    if not encodings.sequential:
        return None
    shown, n = settings.decoded_examples, encodings.n_examples
    other = perm[(shown + np.arange(shown)) % n]  # the "other inputs" of the section's view

    def shown_values(z: np.ndarray) -> list[Any]:
        out = decode(z)
        if kind == "tokens":
            return decode.texts(out)
        return np.round(np.asarray(out, np.float64).reshape(len(z), -1), _DECIMALS).tolist()

    views["windows"] = window_views(z_bar, encodings.mu[other], other, settings.swap_windows,
                                    shown_values)
    return window_diversity(kind, codes, z_bar, settings.swap_windows,
                            lambda z: _sharded_tokens(decode, z),
                            lambda z: _sharded_outputs(decode, z), reference, inputs,
                            settings.decoded_bootstrap, settings.confidence, generator)


class _Decoder:
    """``generate`` in calls of ``batch_size`` codes: token rows (tuples) or a float array."""

    def __init__(self, model: Any, info: ModelInfo, settings: Settings) -> None:
        self.model, self.info, self.settings = model, info, settings

    def __call__(self, z: np.ndarray) -> Any:
        step, parts = self.settings.batch_size, []
        for lo in range(0, len(z), step):
            parts.append(call_generate(self.model, codes_to_device(
                z[lo:lo + step], self.info, self.settings.device)).to("cpu"))
        if not parts:
            return np.zeros((0, 0))
        if parts[0].is_floating_point():
            return torch.cat([p.to(torch.float64) for p in parts]).numpy()
        return [_strip(row) for p in parts for row in p.tolist()]

    def texts(self, rows: list[tuple[int, ...]]) -> list[str]:
        """Token rows as text: ``detokenize`` when the model has it, else the ids."""
        if not callable(getattr(self.model, "detokenize", None)):
            return [" ".join(map(str, row)) for row in rows]
        width = max((len(r) for r in rows), default=0)
        ids = torch.zeros((len(rows), max(width, 1)), dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, :len(row)] = torch.tensor(row, dtype=torch.long)
        return call_detokenize(self.model, ids)


def _strip(row: list[int]) -> tuple[int, ...]:
    """A token row without its trailing padding (0)."""
    end = len(row)
    while end and row[end - 1] == 0:
        end -= 1
    return tuple(row[:end])


def _sharded_tokens(decode: _Decoder, codes: np.ndarray) -> list[tuple[int, ...]]:
    """Token decodes of ``codes``, this process's shard decoded, all rows gathered.

    Two gathers, as rows differ in length: the lengths, then the rows padded to the
    longest (each process keeps its decodes between the two).
    """
    kept: dict[int, list[tuple[int, ...]]] = {}

    def lengths(a: int, b: int) -> tuple[np.ndarray]:
        kept[a] = decode(codes[a:b]) if b > a else []
        return (np.array([len(r) for r in kept[a]], dtype=np.float64),)

    (length,) = distributed.map_shard(len(codes), lengths)
    width = int(length.max()) if len(length) else 0

    def padded(a: int, b: int) -> tuple[np.ndarray]:
        out = np.zeros((b - a, width), dtype=np.int64)
        for i, row in enumerate(kept.get(a, [])):
            out[i, :len(row)] = row
        return (out,)

    (ids,) = distributed.map_shard(len(codes), padded)
    return [tuple(int(t) for t in row[:int(k)]) for row, k in zip(ids, length)]


def _mean_code(encodings: Encodings) -> np.ndarray:
    """z_bar = mean_x mu(x), the mean of q(z); sequential: per step over the valid inputs."""
    if not encodings.sequential:
        return encodings.mu.mean(axis=0)
    valid = encodings.valid()[:, :, None]
    count = valid.sum(axis=0)
    return np.where(count > 0, (encodings.mu * valid).sum(axis=0) / np.maximum(count, 1), 0.0)


def comparable_inputs(x: Batch, size: int) -> np.ndarray | None:
    """The inputs as float64 rows ``(n, size)`` when they are floats of the outputs' size.

    A Tensor, or the first floating entry of a dict, with ``size`` values per input;
    ``None`` otherwise (token ids, another layout): no variance ratio then.
    """
    tensors = [x] if isinstance(x, torch.Tensor) else list(x.values())
    for t in tensors:
        if t.is_floating_point() and t.dim() >= 1 and t[0].numel() == size:
            return t.reshape(len(t), -1).to(torch.float64).numpy()
    return None


def _views(decode: _Decoder, kind: str, data: Batch, encodings: Encodings, info: ModelInfo,
           settings: Settings, perm: np.ndarray, prior_noise: np.ndarray, z_bar: np.ndarray,
           codes: np.ndarray, kl: np.ndarray | None) -> dict[str, Any]:
    """The decoded outputs the report shows, decoded in one stack of codes."""
    n, shown, steps = encodings.n_examples, settings.decoded_examples, settings.decoded_steps
    own = perm[np.arange(shown) % n]
    other = perm[(shown + np.arange(shown)) % n]
    mu = encodings.mu
    with_prior = not (encodings.sequential and info.has_prior)
    prior_mu, prior_logvar = encodings.prior()
    prior = (prior_mu[own] + np.exp(0.5 * prior_logvar[own]) * prior_noise if with_prior
             else np.zeros((0, *mu.shape[1:])))
    labels = (["mean of q(z)"] + [f"prior draw {k + 1}" for k in range(len(prior))]
              + [f"code of input {int(j)}" for j in other])
    blocks: dict[str, np.ndarray] = {"own": mu[own],
                                     "codes": np.concatenate([z_bar[None], prior, mu[other]])}
    a, b = int(perm[0]), int(perm[1 % n])
    t = np.linspace(0.0, 1.0, steps)
    if kind == "tokens":
        blocks["homotopy"] = (1 - t).reshape(-1, *[1] * (mu.ndim - 1)) * mu[a] \
            + t.reshape(-1, *[1] * (mu.ndim - 1)) * mu[b]
    dims, values, grid = _traversal(z_bar, codes, encodings, kl, settings)
    blocks["traversal"] = grid
    stacked = np.concatenate(list(blocks.values()))
    decoded = decode(stacked)
    parts, at = {}, 0
    for name, block in blocks.items():
        parts[name], at = decoded[at:at + len(block)], at + len(block)
    if kind == "tokens":
        return _token_views(decode, data, own, labels, parts, (a, b), t, (dims, values))
    shape = _display_shape(decoded.shape[1:])
    flat = {k: np.round(np.asarray(v, np.float64).reshape(len(v), -1), _DECIMALS)
            for k, v in parts.items()}
    inputs = comparable_inputs(take(data, torch.from_numpy(own)), flat["own"].shape[1])
    return {
        "shape": list(shape),
        "reconstructions": [{"input": int(i),
                             "pixels": None if inputs is None
                             else np.round(inputs[k], _DECIMALS).tolist(),
                             "decoded": flat["own"][k].tolist()} for k, i in enumerate(own)],
        "from_codes": [{"code": label, "decoded": row.tolist()}
                       for label, row in zip(labels, flat["codes"])],
        "homotopy": None,
        "traversal": [{"dimension": int(d), "values": vals.tolist(),
                       "decoded": flat["traversal"][k * steps:(k + 1) * steps].tolist()}
                      for k, (d, vals) in enumerate(zip(dims, values))],
    }


def _token_views(decode: _Decoder, data: Batch, own: np.ndarray, labels: list[str],
                 parts: dict[str, Any], pair: tuple[int, int], t: np.ndarray,
                 traversal: tuple[np.ndarray, np.ndarray]) -> dict[str, Any]:
    texts = {k: decode.texts(v) for k, v in parts.items()}
    dims, values = traversal
    steps = len(t)
    inputs = _input_texts(decode, take(data, torch.from_numpy(own)))
    return {
        "shape": None,
        "reconstructions": [{"input": int(i), "text": None if inputs is None else inputs[k],
                             "decoded": texts["own"][k]} for k, i in enumerate(own)],
        "from_codes": [{"code": label, "decoded": text}
                       for label, text in zip(labels, texts["codes"])],
        "homotopy": {"inputs": list(pair), "t": [float(v) for v in t],
                     "decoded": texts["homotopy"]},
        "traversal": [{"dimension": int(d), "values": vals.tolist(),
                       "decoded": texts["traversal"][k * steps:(k + 1) * steps]}
                      for k, (d, vals) in enumerate(zip(dims, values))],
    }


def _input_texts(decode: _Decoder, x: Batch) -> list[str] | None:
    """The inputs as text, when they are token ids and the model has ``detokenize``."""
    if (not isinstance(x, torch.Tensor) or x.is_floating_point() or x.dim() != 2
            or not callable(getattr(decode.model, "detokenize", None))):
        return None
    return call_detokenize(decode.model, x)


def _traversal(z_bar: np.ndarray, codes: np.ndarray, encodings: Encodings,
               kl: np.ndarray | None, settings: Settings
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Dimensions (largest KL first), their values ``(dims, K)`` and the codes to decode.

    Dimension d goes over ``decoded_steps`` evenly spaced values between the
    :data:`_RANGE` percentiles of z_d over the q(z) draws ``codes``, the others at
    z_bar (sequential latents: d moves at every step).
    """
    dim = encodings.latent_dim
    order = (np.arange(dim) if kl is None
             else np.argsort(-np.nan_to_num(np.asarray(kl, np.float64), nan=-np.inf),
                             kind="stable"))
    dims = order[:settings.decoded_dims]
    flat = codes.reshape(-1, dim)
    lo, hi = np.percentile(flat[:, dims], _RANGE, axis=0)
    values = np.linspace(lo, hi, settings.decoded_steps).T  # (dims, K)
    grid = np.repeat(z_bar[None], len(dims) * settings.decoded_steps, axis=0)
    for k, d in enumerate(dims):
        rows = slice(k * settings.decoded_steps, (k + 1) * settings.decoded_steps)
        grid[rows, ..., d] = values[k].reshape(-1, *[1] * (z_bar.ndim - 1))
    return dims, values, grid


def _display_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """How one output is drawn: ``(H, W)`` or ``(H, W, 3)``.

    1-D outputs of a square size are square images (8 x 8 digits), other 1-D ones a
    strip; ``(C, H, W)`` with C = 1 or 3 an image; anything else its last axis
    against the rest.
    """
    if len(shape) == 1:
        side = math.isqrt(shape[0])
        return (side, side) if side * side == shape[0] else (1, shape[0])
    if len(shape) == 2:
        return tuple(shape)
    if len(shape) == 3 and shape[0] in (1, 3):
        return (shape[1], shape[2]) if shape[0] == 1 else (shape[1], shape[2], 3)
    return (int(np.prod(shape[:-1])), shape[-1])


# --- the diagnostic's spec (collapse_diag/diagnostics/spec.py) ---------------------------


def _run(context: RunContext) -> DecodedResult:
    kl = context.result("kl")
    return decoded_outputs_diagnostic(*context.decoder_args("decoded"),
                                      kl=None if kl is None else kl.per_dimension)


SPEC = DiagnosticSpec(
    name="decoded",
    run=_run,
    requires=("kl",),
    settings=("decoded_samples", "decoded_examples", "decoded_steps", "decoded_dims",
              "decoded_bootstrap"),
    summary_rows=(
        SummaryRow(S.output_diversity, "output diversity (decodes of q(z) draws)", "percent"),
    ),
    plots=(
        PlotRef("decoded_samples", "Decoded from different codes",
                "Top: inputs; then the decoder's mean at each input's own code mu(x); then "
                "at the mean of q(z), at prior draws and at other inputs' codes. "
                "Identical images from different codes mean the decoder ignores z.",
                "collapse_diag.render.plots_decoded:plot_decoded_samples"),
        PlotRef("decoded_traversal", "Traversals, one row per dimension",
                "Each row moves one dimension over its range under q(z) (left to right), "
                "the others at the mean of q(z); largest KL on top. A row that stays the "
                "same is a dimension the decoder does not read.",
                "collapse_diag.render.plots_decoded:plot_decoded_traversal"),
        PlotRef("decoded_window_diversity", "Output diversity per time window",
                "The same codes varied in one time window only (the mean of q(z) at the "
                "other steps), bars with their intervals; dashed, the whole code varied. A "
                "window at 0 is one whose z the decoder does not read.",
                "collapse_diag.render.plots_decoded_windows:plot_decoded_window_diversity",
                sequential=True),
        PlotRef("decoded_window_grid", "Decoded with other inputs' codes in one time window",
                "Each row puts other inputs' codes into the mean of q(z) at one window's "
                "steps only. A row of identical outputs is a window the decoder does not read.",
                "collapse_diag.render.plots_decoded_windows:plot_decoded_window_grid",
                sequential=True),
    ),
    sections=(
        SectionRef("What the decoder makes of z", "what-the-decoder-makes-of-z",
                   "Outputs the decoder produces from different codes z, and how much they "
                   "change with z.",
                   "collapse_diag.render.decoded_section:decoded_tables",
                   text="collapse_diag.render.decoded_section:decoded_text",
                   plots=("decoded_samples", "decoded_traversal", "decoded_window_diversity",
                          "decoded_window_grid")),
    ),
    min_inputs=2,
)
