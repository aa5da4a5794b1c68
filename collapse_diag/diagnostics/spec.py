"""What one diagnostic is, to every part of the toolkit: a frozen :class:`DiagnosticSpec`.

Each diagnostic module ends with ``SPEC = DiagnosticSpec(...)``;
:data:`collapse_diag.diagnostics.registry.SPECS` lists them in the order they
run. ``analyze`` runs them from it (the ``--diagnostics`` names, the
``--dtype`` autocast, which earlier results each reads), and the readers loop
over it: the key-figures and per-dimension tables (render/tables.py), the
terminal (cli/terminal.py), the overview plot, the plots, the extra document
sections and the plain-language explanation. Adding a diagnostic is one module
with its ``SPEC``, one entry in the registry, its test and its docs section.

How plots, tables and explanations attach (the design choice). A diagnostic
module must not import matplotlib or seaborn when it is imported (``--help``
stays fast; tests/test_fast_start.py), and ``collapse_diag.render`` owns every
line of drawing and prose code. So a spec names its plots, section tables and
explanation paragraphs by *reference*: a string ``"module:function"`` of a
function in ``collapse_diag.render`` (a :class:`PlotRef` adds the title and
caption, a :class:`SectionRef` the heading and the paragraph above its table).
The readers resolve a reference with :func:`resolve` when they draw or write,
so importing a spec imports nothing of render/. tests/test_specs.py resolves
every reference. Summary rows and dimension columns are data: a schema key, a
label and the *name* of a number format (:data:`ROW_FORMATS`,
:data:`COLUMN_FORMATS`), which render/tables.py implements once.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from collapse_diag.config.settings import Settings
from collapse_diag.io.data import Batch
from collapse_diag.model.encodings import Encodings
from collapse_diag.model.protocol import ModelInfo
from collapse_diag.runtime.rng import generator_for

__all__ = [
    "COLUMN_FORMATS",
    "COLUMN_GROUPS",
    "ROW_FORMATS",
    "DiagnosticSpec",
    "DimensionColumn",
    "PlotRef",
    "RunContext",
    "SectionRef",
    "SummaryRow",
    "resolve",
]

#: Formats of a key-figures row (implemented in render/tables.py):
#: ``text`` as is; ``num`` 3 significant figures; ``nats`` "1.23 nats"; ``of_dims`` "3 of 8";
#: ``counts`` "3 used, 1 ignored";
#: ``p_value`` "< 0.001"; ``percent`` "12%"; ``nats_ci`` nats and the interval ``related[0]``
#: at ``confidence``; ``nats_flagged`` nats and, in brackets, the last word of each
#: ``related`` boolean key that is true ("saturated"); ``inputs_rounds`` "``related[0]`` of at
#: most ``related[1]``, ``key`` round(s)".
ROW_FORMATS = ("text", "num", "nats", "of_dims", "counts", "p_value", "percent", "nats_ci",
               "nats_flagged", "inputs_rounds")
#: Formats of a per-dimension column: ``text`` (labels, yes/no), ``num`` (3 significant
#: figures), ``nonnegative`` (``num`` for an estimate of a quantity >= 0: a negative estimate,
#: noise, reads "≈ 0"), ``percent``, ``interval`` ("low to high"), ``p_value``.
COLUMN_FORMATS = ("text", "num", "nonnegative", "percent", "interval", "p_value")
#: Groups of the per-dimension columns; the documents show one table per group (titles and
#: captions in render/tables.py), so no table is wider than a laptop's window: ``lead`` first
#: in every table, after the dimension (the verdict's status); ``encoder`` what the encoder
#: puts in z; ``decoder`` what the decoder does with z (the swaps); ``why`` whether the
#: likelihood identifies z and why a dimension is unused.
COLUMN_GROUPS = ("lead", "encoder", "decoder", "why")


@dataclass
class RunContext:
    """Everything a diagnostic's ``run`` may read, and the results computed so far.

    Attributes:
        model: The model (protocol in docs/model-protocol.md), in eval mode on its device.
        data: The analysed inputs (after ``max_examples`` subsampling).
        labels: Known factors per input (name -> ``[n]`` int array), or ``None``.
        info: What :func:`~collapse_diag.model.protocol.check_model` found (latent dim, prior, ...).
        encodings: The one encoder pass (:class:`~collapse_diag.model.encodings.Encodings`).
        settings: The validated :class:`~collapse_diag.config.settings.Settings`.
        show_progress: Progress bars on stderr.
        results: Diagnostic name -> result, of those that ran before and succeeded.
    """

    model: Any  # duck-typed: the protocol is checked, not a base class
    data: Batch
    labels: dict[str, np.ndarray] | None
    info: ModelInfo
    encodings: Encodings
    settings: Settings
    show_progress: bool
    results: dict[str, Any] = field(default_factory=dict)

    def generator(self, name: str) -> torch.Generator:
        """The seeded generator of diagnostic ``name`` (collapse_diag/runtime/rng.py)."""
        return generator_for(self.settings.seed, name)

    def result(self, name: str) -> Any:
        """The result of the earlier diagnostic ``name``, or ``None`` (failed, not selected)."""
        return self.results.get(name)

    def decoder_args(self, name: str
                     ) -> tuple[Any, Batch, Encodings, ModelInfo, Settings, torch.Generator]:
        """``(model, data, encodings, info, settings, generator)``: a decoder diagnostic's call."""
        return (self.model, self.data, self.encodings, self.info, self.settings,
                self.generator(name))


@dataclass(frozen=True)
class SummaryRow:
    """One row of the key-figures table (and, with ``terminal``, of the terminal summary line).

    Attributes:
        key: The ``summary`` key shown (a :data:`~collapse_diag.report.schema.SUMMARY_KEY` name);
            the row is left out when it is missing or null.
        label: The row's text in the table.
        format: One of :data:`ROW_FORMATS`.
        related: Further ``summary`` keys the format reads (see :data:`ROW_FORMATS`).
        terminal: Short label on the terminal summary line (``None``: not shown there);
            a headline figure's is its :data:`~collapse_diag.report.headlines.LABELS` entry.
    """

    key: str
    label: str
    format: str = "nats"
    related: tuple[str, ...] = ()
    terminal: str | None = None


@dataclass(frozen=True)
class DimensionColumn:
    """One column of the per-dimension table.

    Attributes:
        key: The ``dimensions[d]`` key (a :data:`~collapse_diag.report.schema.DIMENSION_KEY` name).
        header: Column title.
        format: One of :data:`COLUMN_FORMATS`.
        terminal: Also shown by ``collapse-diag analyze`` on the terminal.
        overview: A row of the per-dimension overview heatmap (``num`` or ``percent`` only).
        group: One of :data:`COLUMN_GROUPS`: the documents' table it is shown in (keyword only,
            no default: every new column picks one).
    """

    key: str
    header: str
    format: str = "num"
    terminal: bool = False
    overview: bool = False
    group: str = field(kw_only=True)


@dataclass(frozen=True)
class PlotRef:
    """A plot of the diagnostic's figures, drawn by a function in ``collapse_diag.render``.

    Attributes:
        name: Plot name (the PNG file is ``plots/<name>.png``).
        title: Heading of the plot in the documents.
        caption: One or two sentences saying how to read it.
        function: ``"collapse_diag.render.module:function"``, ``(report) -> Figure | None``.
        reads: Other diagnostics whose figures it also draws (named when it is left out).
        sequential: Drawn only for reports of sequential latents (``summary.kl_by_step``).
        kinds: The latent kinds it is drawn for, when fewer than its diagnostic's
            (``None``: all of ``spec.kinds``), e.g. the codebook plot for VQ codes only.
    """

    name: str
    title: str
    caption: str
    function: str
    reads: tuple[str, ...] = ()
    sequential: bool = False
    kinds: tuple[str, ...] | None = None


@dataclass(frozen=True)
class SectionRef:
    """A document section of its own (after the per-dimension figures), holding one table.

    Attributes:
        title: Section heading.
        anchor: HTML anchor.
        paragraph: The sentence(s) above the table.
        table: ``"collapse_diag.render.module:function"``, ``(report) -> Table | None``
            (``None``: the section is left out), or a tuple of Tables.
        text: Optional ``"module:function"``, ``(report) -> tuple[str, ...] | None``: the
            paragraphs shown instead of ``paragraph``; with them the section is shown even
            without a table.
        plots: Names of the spec's plots shown in this section (those drawn) instead of
            under "Plots".
    """

    title: str
    anchor: str
    paragraph: str
    table: str
    text: str | None = None
    plots: tuple[str, ...] = ()


@dataclass(frozen=True)
class DiagnosticSpec:
    """One diagnostic, as analysis and every reader see it.

    Attributes:
        name: The name in ``Settings.diagnostics``, ``report.errors`` and ``report.timings``,
            and the ``writer`` of its fields in collapse_diag/report/schema.py.
        run: ``(RunContext) -> result | None``; the result has ``section()`` returning a
            :class:`~collapse_diag.report.report.ReportSection` (``None``: nothing to report).
        requires: Diagnostics whose results ``run`` reads (when they ran); they come
            earlier in the registry.
        settings: The :class:`~collapse_diag.config.settings.Settings` fields it owns (read by it
            alone); fields shared by several are listed in ``analysis.RUN_SETTINGS``.
        uses_decoder: Its decoder passes run under ``Settings.dtype`` (``torch.autocast``):
            sensitivity and identifiability. The likelihood diagnostic calls the decoder
            too but keeps float32 (docs/performance.md documents ``--dtype`` for those two).
        runs_with: It runs, even when not selected, whenever all of these run (the verdict
            with kl and activity).
        leads: Its key-figures rows and dimension columns come first (the verdict).
        summary_rows: Its rows of the key-figures table.
        columns: Its columns of the per-dimension table.
        plots: Its plots, in display order.
        sections: Document sections of its own (e.g. the probe table).
        min_inputs: Fewest analysed inputs it may be computed from (why each number:
            collapse_diag/diagnostics/minimums.py); ``analyze`` refuses fewer before anything runs.
        explanation: ``"collapse_diag.render.module:function"`` references,
            ``(report) -> str | None``: its paragraphs of "What this means", in order.
        kinds: The latent kinds it applies to (collapse_diag/model/latent_kinds.py); it
            neither runs nor shows for a model of another kind.
    """

    name: str
    run: Callable[[RunContext], Any]
    requires: tuple[str, ...] = ()
    settings: tuple[str, ...] = ()
    uses_decoder: bool = False
    runs_with: tuple[str, ...] = ()
    leads: bool = False
    summary_rows: tuple[SummaryRow, ...] = ()
    columns: tuple[DimensionColumn, ...] = ()
    plots: tuple[PlotRef, ...] = ()
    sections: tuple[SectionRef, ...] = ()
    explanation: tuple[str, ...] = ()
    min_inputs: int = 1
    kinds: tuple[str, ...] = ("gaussian",)


def resolve(reference: str) -> Any:
    """The object a ``"package.module:name"`` reference names (imported on first use).

    Raises:
        ValueError: the reference is not of the form ``module:name``.
        ImportError, AttributeError: the module or the name does not exist.
    """
    module, sep, name = reference.partition(":")
    if not sep or not module or not name:
        raise ValueError(f"{reference!r} is not a 'module:name' reference.")
    return getattr(importlib.import_module(module), name)
