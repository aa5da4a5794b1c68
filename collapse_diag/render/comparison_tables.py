"""The tables of a comparison: for the documents, as CSV and as a LaTeX table.

What a cell holds is decided here once; the best value of a column (among
models on the same inputs, :attr:`Comparison.best`) is marked ``★`` in Markdown
and HTML and set in bold in LaTeX.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from collapse_diag.render.tables import MISSING, Table, fmt_num
from collapse_diag.report.schema import PROVENANCE_KEY as P
from collapse_diag.report.schema import SUMMARY_KEY as S
from collapse_diag.report.schema import TOP_LEVEL_KEY as T
from collapse_diag.report.values import finite
from collapse_diag.runs.comparison import EXTRA_FIELDS, Comparison

__all__ = ["BEST_MARK", "csv_text", "data_table", "identifiability_table", "models_table",
           "paired_table", "standard_table",
           "tex_text"]

#: Appended to a best value in Markdown and HTML.
BEST_MARK = " ★"


def _cell(row: dict[str, Any], key: str) -> str:
    value = row.get(key)
    if key == S.nll and finite(value) is not None and finite(row.get(S.nll_se)) is not None:
        return f"{fmt_num(value, 4)} ± {fmt_num(row[S.nll_se], 2)}"
    if isinstance(value, str):
        return value
    return fmt_num(value, 4) if value is not None else MISSING


def _is_best(comparison: Comparison, key: str, name: str) -> bool:
    return name in comparison.best.get(key, [])


def standard_table(comparison: Comparison) -> Table:
    """One row per model: name, data group (when several), then :data:`COLUMNS`."""
    several = not comparison.same_data
    headers = ["model"] + (["data"] if several else []) + [c.header
                                                           for c in comparison.columns]
    rows, keys = [], []
    for row in comparison.rows:
        cells = [row["name"]] + ([row["data_group"]] if several else [])
        raw: list[Any] = [row["name"]] + ([row["data_group"]] if several else [])
        for column in comparison.columns:
            text = _cell(row, column.key)
            cells.append(text + (BEST_MARK if _is_best(comparison, column.key, row["name"])
                                 else ""))
            value = row.get(column.key)
            raw.append(finite(value) if finite(value) is not None else
                       (None if value is None else str(value)))
        rows.append(cells)
        keys.append(raw)
    return Table(headers, rows, keys, sortable=True)


def identifiability_table(comparison: Comparison) -> Table | None:
    """One row per pair of models on the same inputs; ``None`` when there is none."""
    if not comparison.identifiability:
        return None
    rows, keys = [], []
    for e in comparison.identifiability:
        matched = ", ".join(f"z{i}↔z{j}" for i, j in e.get("matched") or []) or MISSING
        raw = [e["a"], e["b"], e.get("mcc"), e.get("mcc_spearman"), e.get("cca"),
               f"{len(e.get('dims_a') or [])} / {len(e.get('dims_b') or [])}", matched]
        rows.append([raw[0], raw[1], fmt_num(raw[2]), fmt_num(raw[3]), fmt_num(raw[4]),
                     raw[5], matched])
        keys.append([finite(v) if finite(v) is not None else str(v) for v in raw])
    return Table(["model a", "model b", "MCC (Pearson)", "MCC (Spearman)", "mean CCA",
                  "used dims a / b", "matched dimensions"], rows, keys)


#: Row label of each paired figure (collapse_diag/runs/paired.py).
_PAIRED_LABELS = {S.nll: "NLL", S.neg_elbo: "-ELBO", S.kl: "KL"}


def _interval(ci: Any) -> str:
    return MISSING if not ci else f"[{fmt_num(ci[0], 3)}, {fmt_num(ci[1], 3)}]"


def paired_table(comparison: Comparison) -> Table | None:
    """One row per pair of models on the same inputs and figure; ``None`` when there is none."""
    rows, keys = [], []
    for e in comparison.paired:
        for figure, label in _PAIRED_LABELS.items():
            d = e.get(figure)
            if not isinstance(d, dict):
                continue
            lower = d.get("lower")
            verdict = f"{lower} lower" if lower else "not distinguishable"
            raw = [e["a"], e["b"], label, d.get("n"), d.get("mean"), _interval(d.get("ci")),
                   _interval(d.get("ci_unpaired")), d.get("narrowing"), verdict]
            rows.append([raw[0], raw[1], label, str(raw[3]), fmt_num(raw[4], 4), raw[5],
                         raw[6], MISSING if raw[7] is None else f"{fmt_num(raw[7], 3)}x",
                         verdict])
            keys.append([finite(v) if finite(v) is not None else str(v) for v in raw])
    if not rows:
        return None
    return Table(["model a", "model b", "figure", "inputs", "a - b (nats)", "paired interval",
                  "unpaired interval", "narrower by", "ranking"], rows, keys)


def models_table(comparison: Comparison) -> Table:
    """Each model's short name and where it came from: the full path as given, its source."""
    rows = [[model.name, comparison.paths.get(model.name) or "(given as an object)",
             model.source] for model in comparison.models]
    return Table(["model", "path", "read from"], rows, [list(r) for r in rows])


def data_table(comparison: Comparison) -> Table:
    """Data groups: their label, input hash (first 16 hex digits) and models."""
    rows = [[label, (g[P.data_sha256] or "unknown")[:16], ", ".join(g["models"])]
            for label, g in comparison.data_groups.items()]
    return Table(["data group", "data sha256", "models"], rows, [list(r) for r in rows])


def csv_text(comparison: Comparison) -> str:
    """comparison.csv: one row per model, raw numbers (empty when missing), ``best`` columns."""
    fields = (["name", "data_group"] + [c.key for c in comparison.columns] + list(EXTRA_FIELDS)
              + [T.latent_dim, T.n_examples, "best"])
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(fields)
    for row in comparison.rows:
        best = ";".join(c.key for c in comparison.columns
                        if _is_best(comparison, c.key, row["name"]))
        values = [row.get(f) for f in fields[:-1]]
        writer.writerow(["" if v is None else repr(v) if isinstance(v, float) else v
                         for v in values] + [best])
    return buffer.getvalue()


_TEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                "^": r"\textasciicircum{}"}
_TEX_HEADERS = {"-ELBO": r"$-$ELBO", "swap delta": r"swap $\Delta$"}


def tex_escape(text: str) -> str:
    """``text`` with LaTeX's special characters escaped."""
    return "".join(_TEX_SPECIAL.get(ch, ch) for ch in str(text))


def tex_text(comparison: Comparison) -> str:
    """comparison.tex: a booktabs ``table`` of the standard columns, best values in bold."""
    several = not comparison.same_data
    headers = ["Model"] + (["Data"] if several else []) + [
        _TEX_HEADERS.get(c.header, tex_escape(c.header)) for c in comparison.columns]
    lines = [r"% collapse-diag compare; needs \usepackage{booktabs}", r"\begin{table}[t]",
             r"\centering", r"\small", r"\begin{tabular}{l" + "l" * several
             + "r" * len(comparison.columns) + "}", r"\toprule", " & ".join(headers) + r" \\",
             r"\midrule"]
    for row in comparison.rows:
        cells = [tex_escape(row["name"])] + ([row["data_group"]] if several else [])
        for column in comparison.columns:
            text = tex_escape(_cell(row, column.key).replace(" ± ", "±"))
            text = text.replace("±", r"$\pm$").replace(MISSING, "--")
            cells.append(rf"\textbf{{{text}}}" if _is_best(comparison, column.key, row["name"])
                         else text)
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}",
              r"\caption{$-$ELBO, NLL (importance-weighted bound $\pm$ its standard error), KL "
              r"and MI in nats per input; PPL per token; AU: active units. Best values (bold) "
              r"among models analysed on the same inputs.}",
              r"\label{tab:collapse-diag-comparison}", r"\end{table}"]
    return "\n".join(lines) + "\n"
