"""The plots of a :class:`~collapse_diag.report.report.Report`: which there are, in which order.

Every plot is a function ``(report) -> Figure | None`` in a ``render/plots_*.py``
module of its figure family (plots_kl, plots_activity, plots_information,
plots_sensitivity, plots_identifiability, plots_likelihood, plots_sequence,
plots_overview), returning ``None`` when the figures it needs are missing (a
diagnostic failed or was disabled): a plot is left out, never drawn empty.

The registry is built from the diagnostic specs
(:data:`collapse_diag.diagnostics.registry.SPECS`): each spec's
:class:`~collapse_diag.diagnostics.spec.PlotRef` names its plots, in display
order, and this module adds the per-dimension overview last. A plot module is
imported only when its plot is drawn, so importing this registry loads no
matplotlib.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from collapse_diag.diagnostics.registry import SPEC_BY_NAME, SPECS, display_order, report_kind
from collapse_diag.diagnostics.spec import PlotRef, resolve
from collapse_diag.report.report import Report
from collapse_diag.report.schema import SUMMARY_KEY as SK

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "DISCRETE_PLOTS",
    "PLOTS",
    "SECTION_PLOTS",
    "SEQUENCE_PLOTS",
    "PlotSpec",
    "all_figures",
    "figure_png",
    "is_sequential",
    "missing_note",
    "plots_for",
    "figure_marks",
]


@dataclass(frozen=True)
class PlotSpec:
    """One registered plot: what it is called, what it shows and what it needs.

    Attributes:
        title: Heading of the plot in the documents.
        caption: One or two sentences saying how to read it.
        sources: Diagnostics whose figures it draws (named in the note when it is left out).
        reference: ``"module:function"`` of its ``(report) -> Figure | None``.
        kinds: The latent kinds it is drawn for.
    """

    title: str
    caption: str
    sources: tuple[str, ...]
    reference: str
    kinds: tuple[str, ...] = ("gaussian",)

    @property
    def function(self) -> Callable[[Report], Figure | None]:
        """The plot function (its module is imported on first use)."""
        return resolve(self.reference)

    def __call__(self, report: Report) -> Figure | None:
        """Draw the plot for ``report`` (``None`` when its figures are missing)."""
        return self.function(report)


def _spec(ref: PlotRef, diagnostic: str) -> PlotSpec:
    return PlotSpec(ref.title, ref.caption, (diagnostic, *ref.reads), ref.function,
                    ref.kinds or SPEC_BY_NAME[diagnostic].kinds)


#: The plot of every dimension column flagged ``overview`` (render/plots_overview.py).
_OVERVIEW = PlotSpec(
    "Per-dimension overview",
    "Every dimension's figures, each row divided by its largest magnitude (numbers: the "
    "raw values), with the status strip on top.",
    tuple(spec.name for spec in SPECS if spec.columns),
    "collapse_diag.render.plots_overview:plot_overview")

#: Every plot of a report of Gaussian latents, in display order (the specs' plots, then the
#: overview).
PLOTS: dict[str, PlotSpec] = {
    **{ref.name: _spec(ref, spec.name) for spec in display_order("gaussian")
       for ref in spec.plots if not ref.sequential},
    "overview": _OVERVIEW,
}
#: The plots of sequential reports only, after those of :data:`PLOTS`.
SEQUENCE_PLOTS: dict[str, PlotSpec] = {
    ref.name: _spec(ref, spec.name) for spec in display_order("gaussian") for ref in spec.plots
    if ref.sequential
}
#: The plots of discrete latents (codes, categorical): those of the specs of those kinds.
DISCRETE_PLOTS: dict[str, PlotSpec] = {
    ref.name: _spec(ref, spec.name) for spec in display_order() if "gaussian" not in spec.kinds
    for ref in spec.plots
}


#: Plots a spec shows in a section of its own (``SectionRef.plots``), when drawn, instead of
#: under "Plots" (where every other plot is drawn or gets a note saying why not).
SECTION_PLOTS: frozenset[str] = frozenset(
    name for spec in SPECS for ref in spec.sections for name in ref.plots)


def is_sequential(report: Report) -> bool:
    """The report is of a model with sequential latents (``summary.kl_by_step`` is a list)."""
    return isinstance(report.summary.get(SK.kl_by_step), list)


def plots_for(report: Report) -> dict[str, PlotSpec]:
    """The plots of ``report``: :data:`PLOTS`, then :data:`SEQUENCE_PLOTS` for sequential ones.

    A report of discrete latents: the :data:`DISCRETE_PLOTS` of its kind instead.
    """
    kind = report_kind(report)
    if kind != "gaussian":
        return {name: plot for name, plot in DISCRETE_PLOTS.items() if kind in plot.kinds}
    return {**PLOTS, **SEQUENCE_PLOTS} if is_sequential(report) else PLOTS


def all_figures(report: Report) -> dict[str, Figure | None]:
    """Every plot of :data:`PLOTS` for ``report``, in display order (``None``: left out)."""
    return {name: spec(report) for name, spec in PLOTS.items()}


def missing_note(report: Report, name: str) -> str:
    """One sentence saying why plot ``name`` was left out of ``report``'s documents."""
    spec = PLOTS.get(name) or SEQUENCE_PLOTS.get(name) or DISCRETE_PLOTS[name]
    failed = [s for s in spec.sources if s in report.errors]
    if failed:
        why = "; ".join(f"the {s} diagnostic failed: {str(report.errors[s]).rstrip('.')}"
                        for s in failed)
        return f"Not drawn: its figures are missing ({why})."
    return ("Not drawn: its figures were not computed (the "
            f"{' / '.join(spec.sources)} diagnostic was disabled or did not run).")


def figure_marks(fig: Figure) -> set[str]:
    """The line styles ``fig`` draws that a caption may name: ``"dashed"``, ``"dotted"``.

    Read from every line (``plot``, ``axhline``, ``axvline``) and line collection of
    every axes; :func:`collapse_diag.report.invariants.caption_marks_drawn` compares
    them with the caption.
    """
    styles = {"--": "dashed", "dashed": "dashed", ":": "dotted", "dotted": "dotted"}
    marks: set[str] = set()
    for ax in fig.axes:
        for line in ax.get_lines():
            if line.get_visible() and line.get_linestyle() in styles:
                marks.add(styles[line.get_linestyle()])
        for collection in ax.collections:
            if any(dashes for _offset, dashes in collection.get_linestyle() or []):
                marks.add("dashed")  # hlines / vlines with a dash pattern
    return marks


def figure_png(fig: Figure, dpi: int = 110) -> bytes:
    """Render ``fig`` to PNG bytes (no software tag, so the bytes depend only on the figure)."""
    buffer = io.BytesIO()
    # constrained layout settles a legend placed beside its axes over two passes: run one
    # before the draw, so that the bytes are the same however often the figure is saved
    if (engine := fig.get_layout_engine()) is not None:
        engine.execute(fig)
    fig.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    return buffer.getvalue()
