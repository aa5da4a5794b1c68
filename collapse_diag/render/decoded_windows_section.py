"""What the decoder makes of z per time window (sequential latents): paragraph and tables.

Part of the section "What the decoder makes of z" (render/decoded_section.py); reads
``summary.output_diversity_by_window`` and, for text, ``decoded_views.windows``.
"""

from __future__ import annotations

from typing import Any

from collapse_diag.render.plots_decoded_windows import window_label
from collapse_diag.render.tables import MISSING, Table, fmt_pct
from collapse_diag.report.report import Report
from collapse_diag.report.schema import DIVERSITY_WINDOW_KEY as K
from collapse_diag.report.schema import SUMMARY_KEY as SK

__all__ = ["window_paragraph", "window_tables"]


def window_paragraph(report: Report) -> str | None:
    """What the per-window figures mean; ``None`` for vector latents."""
    windows = report.summary.get(SK.output_diversity_by_window)
    if not windows:
        return None
    unread = [window_label(w) for w in windows if w.get(K.output_diversity) == 0.0]
    lead = ("Per time window: the same codes, varied only at the window's steps (the mean "
            "of q(z) at the others), decoded and measured as above; the windows are those of"
            " the swap per time window. A window at 0 is one whose z the decoder does not "
            "read")
    if unread:
        return (f"{lead}: here {', '.join(unread)} (the output is the same whatever z is "
                "there; a decoder that reads z only early in the sequence).")
    return lead + "."


def window_tables(report: Report, kind: str) -> list[Table]:
    """The diversity per window, and for text the sentences decoded per window."""
    windows = report.summary.get(SK.output_diversity_by_window)
    if not windows:
        return []
    rows, keys = [], []
    for w in windows:
        ci = w.get(K.output_diversity_ci)
        value = w.get(K.output_diversity)
        rows.append([window_label(w), fmt_pct(value),
                     MISSING if not ci else f"{fmt_pct(ci[0])} to {fmt_pct(ci[1])}"])
        keys.append([window_label(w), value, None])
    tables = [Table(["time window", "output diversity, z varied there only", "interval"],
                    rows, keys)]
    views = report.summary.get(SK.decoded_views)
    if kind == "tokens" and isinstance(views, dict) and views.get("windows"):
        tables.append(_sentences(views["windows"]))
    return tables


def _sentences(windows: list[dict[str, Any]]) -> Table:
    """One row per (window, other input's code): the sentence decoded."""
    rows = [[window_label(w), f"code of input {j}", text or "(empty)"]
            for w in windows for j, text in zip(w["inputs"], w["decoded"])]
    return Table(["time window", "code z put there (mean of q(z) elsewhere)", "decoded"],
                 rows, [list(r) for r in rows])
