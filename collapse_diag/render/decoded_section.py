"""The section "What the decoder makes of z": its paragraphs and tables (the decoded diagnostic).

Reads ``summary.output_kind``, ``output_diversity`` (with its interval),
``distinct_1/2`` and ``decoded_views``; the image grids are in render/plots_decoded.py.
"""

from __future__ import annotations

from typing import Any

from collapse_diag.render.decoded_windows_section import window_paragraph, window_tables
from collapse_diag.render.tables import MISSING, Table, fmt_num, fmt_pct
from collapse_diag.report.report import Report
from collapse_diag.report.schema import SUMMARY_KEY as SK
from collapse_diag.report.values import setting

__all__ = ["HOW_TO_ADD", "decoded_tables", "decoded_text"]

#: What the section says about a model without ``generate``.
HOW_TO_ADD = (
    "The model has no generate(z) method, so this report cannot show what the decoder "
    "produces from z. Add one to see it (docs/model-protocol.md, \"generate\"): "
    "`def generate(self, z)` returning token ids [batch, length] for text (greedy decoding, "
    "0 as padding after each sentence's end; with `def detokenize(self, ids) -> list[str]` "
    "they are shown as text), or the decoder's mean [batch, ...] for continuous data (e.g. "
    "`torch.sigmoid(self.decoder(z))` for a Bernoulli decoder). The report then shows "
    "reconstructions, decodes of prior draws and of other inputs' codes, homotopies or "
    "traversals, and how much the output changes with z."
)


def _interval(report: Report, key: str) -> str:
    ci = report.summary.get(key)
    if not ci or ci[0] is None:
        return MISSING
    return f"{fmt_pct(ci[0])} to {fmt_pct(ci[1])}"


def decoded_text(report: Report) -> tuple[str, ...] | None:
    """The section's paragraphs; ``None`` when the decoded diagnostic did not run."""
    text = _decoded_text(report)
    windows = window_paragraph(report)
    return text if text is None or windows is None else (*text, windows)


def _decoded_text(report: Report) -> tuple[str, ...] | None:
    kind = report.summary.get(SK.output_kind)
    if kind is None:
        return None
    if kind == "unavailable":
        return (HOW_TO_ADD,)
    m = report.summary.get(SK.decoded_samples)
    level = fmt_pct(setting(report, "confidence"))
    value = report.summary.get(SK.output_diversity)
    if kind == "tokens":
        differ = report.summary.get(SK.differ_fraction)
        lead = (f"Diversity: across {m} codes drawn from the aggregate posterior q(z) = mean_x "
                f"q(z|x), {fmt_pct(value)} of the tokens of the (greedy) decodes change from "
                f"the sentence decoded at the mean of q(z) ({level} percentile-bootstrap "
                f"interval {_interval(report, SK.output_diversity_ci)}); "
                f"{fmt_pct(differ)} of the decodes differ from it in at least one token ("
                f"{level} exact binomial interval {_interval(report, SK.differ_fraction_ci)})."
                " Near 0, the decoder writes the same sentence whatever code it gets: it "
                "ignores z (posterior collapse). distinct-n counts the different n-grams over"
                " all n-grams of the decodes.")
        parts = ("The tables: inputs beside the sentence decoded from their own code mu(x); "
                 "sentences decoded from the mean of q(z), from prior draws and from other "
                 "inputs' codes (the same sentence from different codes: the decoder ignores "
                 "z); the homotopy between two inputs' codes, (1 - t) mu(x_a) + t mu(x_b) "
                 "(Bowman et al. 2016); a traversal per dimension, largest KL first: the "
                 "dimension moved over its range under q(z), the others at the mean of q(z) "
                 "(a row of one sentence: a dimension the decoder does not read).")
        return lead, parts
    if value is None:
        lead = (f"The decoder's mean was decoded from {m} codes drawn from q(z), but the inputs"
                " are not floats of the outputs' size, so its variance cannot be set against"
                " theirs (no diversity figure).")
    else:
        ci = _interval(report, SK.output_diversity_ci)
        lead = (f"Diversity: across {m} codes drawn from the aggregate posterior q(z), the "
                f"decoder's mean varies by {fmt_pct(value)} of the variance of the inputs the "
                f"codes came from ({level} percentile-bootstrap interval {ci}). "
                "0 means the same output whatever z (posterior collapse); by the law of total "
                "variance it is about the share of the data's variance the decoder explains "
                "through z.")
    return lead, ("The grids share one grey scale. A traversal row that stays the same is a "
                  "dimension the decoder does not read.")


def decoded_tables(report: Report) -> tuple[Table, ...] | None:
    """The diversity table, and for text the decoded sentences; ``None`` without outputs."""
    kind = report.summary.get(SK.output_kind)
    if kind not in ("tokens", "continuous"):
        return None
    summary = report.summary
    m = str(summary.get(SK.decoded_samples))
    name = ("share of tokens that change from the decode at the mean of q(z)"
            if kind == "tokens" else "variance of the decoder's mean / variance of the inputs")
    figures = [(name, SK.output_diversity, SK.output_diversity_ci, fmt_pct)]
    if kind == "tokens":
        figures += [("decodes that differ from the decode at the mean of q(z)",
                     SK.differ_fraction, SK.differ_fraction_ci, fmt_pct),
                    ("distinct-1", SK.distinct_1, None, fmt_num),
                    ("distinct-2", SK.distinct_2, None, fmt_num)]
    rows = [[label, fmt(summary.get(key)), _interval(report, ci) if ci else MISSING, m]
            for label, key, ci, fmt in figures]
    keys: list[list[Any]] = [[label, summary.get(key), None, summary.get(SK.decoded_samples)]
                             for label, key, _, _ in figures]
    tables = [Table(["measure", "estimate", "interval", "decodes"], rows, keys)]
    views = summary.get(SK.decoded_views)
    if kind == "tokens" and isinstance(views, dict):
        tables += _text_tables(views)
    return tuple(tables + window_tables(report, kind))


def _table(headers: list[str], rows: list[list[str]]) -> Table:
    return Table(headers, rows, [list(r) for r in rows])


def _text_tables(views: dict[str, Any]) -> list[Table]:
    recon = [[f"{r['input']}: {r['text']}" if r.get("text") is not None else str(r["input"]),
              r["decoded"] or "(empty)"] for r in views.get("reconstructions") or []]
    codes = [[c["code"], c["decoded"] or "(empty)"] for c in views.get("from_codes") or []]
    tables = [_table(["input", "decoded from its own code mu(x)"], recon),
              _table(["code z", "decoded from z"], codes)]
    homotopy = views.get("homotopy")
    if homotopy:
        a, b = homotopy["inputs"]
        tables.append(_table(
            ["t", f"decoded from (1 - t) mu(x_{a}) + t mu(x_{b})"],
            [[f"{t:.2f}", text or "(empty)"] for t, text in zip(homotopy["t"],
                                                                 homotopy["decoded"])]))
    traversal = views.get("traversal")
    if traversal:
        tables.append(_traversal_table(traversal))
    return tables


def _traversal_table(traversal: list[dict[str, Any]]) -> Table:
    """One row per traversed dimension (largest KL first): its sentences, low to high."""
    steps = len(traversal[0]["decoded"])
    headers = ["dimension (range under q(z))"] + [
        f"{k + 1}" + (" (low)" if k == 0 else " (high)" if k == steps - 1 else "")
        for k in range(steps)]
    rows = [[f"z{e['dimension']} ({e['values'][0]:.2g} to {e['values'][-1]:.2g})"]
            + [text or "(empty)" for text in e["decoded"]] for e in traversal]
    return _table(headers, rows)
