"""Write a :class:`~collapse_diag.runs.comparison.Comparison`: comparison.json/.md/.html/.csv/.tex.

Usage::

    from collapse_diag import compare
    from collapse_diag.render.comparison import write_comparison

    comparison = compare(["runs/seed1", "runs/seed2", "runs/annealed"])
    write_comparison(comparison, "comparison/")

The Markdown and HTML documents are printed by the single-report writers
(:mod:`~collapse_diag.render.markdown`, :mod:`~collapse_diag.render.html`) from
one :class:`~collapse_diag.render.document.Document`, so they hold the same
content; the HTML embeds its plots as ``data:`` URIs (no external resource),
the Markdown links them from ``plots/``. Every file is written atomically.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path

from collapse_diag.exceptions import invalid_parameter
from collapse_diag.render.comparison_plots import COMPARISON_PLOTS
from collapse_diag.render.comparison_tables import (
    BEST_MARK,
    csv_text,
    data_table,
    identifiability_table,
    models_table,
    paired_table,
    standard_table,
    tex_text,
)
from collapse_diag.render.document import Document, FigureBlock, Section
from collapse_diag.render.emit import draw_pngs, render_documents
from collapse_diag.render.replace import check_dpi, replace_set
from collapse_diag.report.formats import COMPARISON_FORMATS
from collapse_diag.report.schema import SUMMARY_KEY as S
from collapse_diag.runs.comparison import Comparison

__all__ = ["COMPARISON_FORMATS", "MODELS_FOLDER", "build_comparison_document", "write_comparison"]

#: Folder of the reports (and encodings) of the checkpoints a comparison analysed.
MODELS_FOLDER = "models"

_COLUMN_TEXT = (
    "-ELBO = rate + distortion and NLL (importance-weighted bound with K codes per input, "
    "± its standard error over inputs) in nats per input, on each model's NLL subsample; "
    "PPL = exp(NLL per token) for text models; KL and MI (whole-set estimate) in nats; "
    "MI (minibatch) is He et al. (2019)'s estimator, given to compare with published "
    "tables: it cannot exceed log of its batch size (biased low for informative codes), "
    "reads above 0 when the posteriors equal the prior (biased high near 0) and is noisy "
    "(one code per input): read the whole-set MI beside it; AU: active units; used / collapsed: "
    "dimensions with that status; swap delta: how much worse an input is explained by "
    f"another input's code (nats). {BEST_MARK.strip()} marks the best value of a column "
    "among models analysed on the same inputs (lowest -ELBO, NLL, PPL and collapsed count; "
    "highest MI (whole-set), AU, used count and swap delta; KL, minibatch MI and verdict "
    "are not ranked). The mark "
    "compares values, not their uncertainty: the section Paired differences says which "
    "differences of NLL, -ELBO and KL the inputs can tell apart."
)


def build_comparison_document(comparison: Comparison, drawn: Iterable[str]) -> Document:
    """Lay out comparison.md / comparison.html.

    Args:
        comparison: What to print.
        drawn: Names of the plots that were drawn (others get a note).
    """
    drawn = set(drawn)
    n = len(comparison.models)
    summary = Section("Standard figures", "standard-figures",
                      (_COLUMN_TEXT, *comparison.notes), tables=(standard_table(comparison),))
    figures = tuple(FigureBlock(name, title, caption, None if name in drawn else
                                "Not drawn: no model has the figures this plot needs.")
                    for name, (title, caption, _) in COMPARISON_PLOTS.items())
    ident = identifiability_table(comparison)
    ident_text = (
        "For models analysed on the same inputs with saved encodings (analyze "
        "--save-encodings): the mean correlation coefficient between their mu(x) after "
        "optimal one-to-one matching of their used dimensions (Hungarian assignment on "
        "|Pearson| and, separately, on |Spearman|), and the mean canonical correlation. MCC "
        "near 1: the same code up to permutation and sign; CCA near 1 with a lower MCC: the "
        "same subspace, rotated.",)
    paired = paired_table(comparison)
    paired_text = (
        "For models analysed on the same inputs: the difference a - b of NLL, -ELBO and KL "
        "per input, averaged, with a Student-t interval at the reports' confidence level. "
        "Paired per input, the shared difficulty of the inputs cancels, so the interval is "
        "narrower than the unpaired one (the two reports' figures ± their standard errors, "
        "shown beside it). A model is ranked lower only where the paired interval excludes "
        "0. NLL and -ELBO pair the likelihood subsample's inputs both reports hold (all of "
        "them with the same seed and nll_examples); KL every analysed input.",)
    sections = [
        summary,
        Section("Paired differences", "paired-differences", paired_text if paired is not None
                else paired_text + ("No pair of models qualifies.",),
                tables=(paired,) if paired is not None else ()),
        Section("Plots", "plots", figures=figures),
        Section("Identifiability across seeds", "identifiability", ident_text
                if ident is not None else ident_text + ("No pair of models qualifies.",),
                tables=(ident,) if ident is not None else ()),
        Section("Inputs", "inputs", ("Each model's name is the shortest distinct end of its "
                                     "path; the full path is below. Models share a data "
                                     "group when the hash of the inputs they were analysed "
                                     "on (provenance.data_sha256) is the same.",),
                tables=(models_table(comparison), data_table(comparison))),
    ]
    verdicts = [str(r.get(S.verdict) or "no verdict") for r in comparison.rows]
    reason = "; ".join(f"{row['name']}: {v}" for row, v in zip(comparison.rows, verdicts))
    return Document(f"Comparison of {n} models", f"{n} models.", reason + ".", None,
                    tuple(sections))


def _check_formats(formats: str | Iterable[str]) -> tuple[str, ...]:
    items = ([p.strip() for p in formats.split(",") if p.strip()] if isinstance(formats, str)
             else list(formats))
    if not items or any(i not in COMPARISON_FORMATS for i in items):
        raise invalid_parameter("formats", "write_comparison",
                                f"a subset of {list(COMPARISON_FORMATS)}", formats)
    return tuple(f for f in COMPARISON_FORMATS if f in items)


def write_comparison(comparison: Comparison, out_dir: str | Path,
                     formats: str | Iterable[str] = COMPARISON_FORMATS, *,
                     dpi: int = 110, extra: Mapping[str, bytes] | None = None,
                     removed: list[str] | None = None) -> dict[str, Path]:
    """Write the comparison files into ``out_dir``, replacing an earlier comparison's whole.

    Args:
        comparison: The result of :func:`collapse_diag.compare`.
        out_dir: Folder (created if needed).
        formats: Any of ``json``, ``md`` (with ``plots/comparison_*.png``), ``html``
            (plots embedded), ``csv``, ``tex``; default all.
        dpi: Resolution of the plots.
        extra: The files of :data:`MODELS_FOLDER` (the reports and encodings of the
            analysed checkpoints), relative name -> content; an earlier run's folder is
            replaced by these (removed when there are none).
        removed: When given, the stale files of an earlier comparison removed (the
            formats not written now) are appended to it.

    Returns:
        Format name -> path written.

    Raises:
        InvalidParameterError: unknown formats, or ``dpi`` outside [10, MAX_DPI].
        ReportWriteError: ``out_dir`` cannot be written; it is left as it was.
    """
    chosen = _check_formats(formats)
    check_dpi(dpi, "write_comparison")
    out = Path(out_dir)
    texts: dict[str, str | bytes] = {}
    pngs: dict[str, bytes] = {}
    if "md" in chosen or "html" in chosen:
        pngs = draw_pngs({name: plot for name, (_, _, plot) in COMPARISON_PLOTS.items()},
                         comparison, dpi)
        texts.update(render_documents(build_comparison_document(comparison, pngs), pngs, chosen,
                                      _plot_path))
    if "json" in chosen:
        texts["json"] = json.dumps(comparison.to_dict(), indent=2, allow_nan=False) + "\n"
    if "csv" in chosen:
        texts["csv"] = csv_text(comparison)
    if "tex" in chosen:
        texts["tex"] = tex_text(comparison)
    files = {f"comparison.{fmt}": text.encode("utf-8") if isinstance(text, str) else text
             for fmt, text in texts.items() if fmt in chosen}
    if "md" in chosen:
        files.update({_plot_path(name): data for name, data in pngs.items()})
    members = [*(f"comparison.{fmt}" for fmt in COMPARISON_FORMATS),
               *(_plot_path(name) for name in COMPARISON_PLOTS), MODELS_FOLDER]
    files.update(extra or {})
    stale = replace_set(out, files, members, "the comparison")
    if removed is not None:
        removed.extend(stale)
    return {fmt: out / f"comparison.{fmt}" for fmt in chosen}


def _plot_path(name: str) -> str:
    return f"plots/comparison_{name}.png"
