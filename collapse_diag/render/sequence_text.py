"""The "What this means" paragraph for sequential latents: where in time z is used.

Reads ``summary.kl_by_step`` (KL summed over dimensions per step),
``dimensions[d].kl_by_step`` and ``summary.swap_delta_by_window``. A step
*carries information* when its summed KL is at least ``kl_eps``; a window is
*read by the decoder* when its swap delta is positive with p < ``alpha``.
Steps are numbered from 0, as in report.json and the plots (windows are
written ``start–(stop - 1)``). ``None`` for vector-latent reports.
"""

from __future__ import annotations

from collapse_diag.render.tables import fmt_num
from collapse_diag.report.report import Report
from collapse_diag.report.schema import DIMENSION_KEY as D
from collapse_diag.report.schema import SUMMARY_KEY as S
from collapse_diag.report.schema import SWAP_WINDOW_KEY as W

__all__ = ["sequence_text", "step_ranges"]


def step_ranges(flags: list[bool]) -> list[tuple[int, int]]:
    """Runs of True as 0-based inclusive ``(first, last)`` step pairs."""
    out, start = [], None
    for i, flag in enumerate([*flags, False]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            out.append((start, i - 1))
            start = None
    return out


def _ranges_text(ranges: list[tuple[int, int]]) -> str:
    parts = [f"step {a}" if a == b else f"steps {a}–{b}" for a, b in ranges]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _kl_sentence(kl: list, eps: float) -> str | None:
    values = [v for v in kl if v is not None]
    if not values:
        return None
    flags = [v is not None and v >= eps for v in kl]
    t = len(kl)
    on = step_ranges(flags)
    if not on:
        return f"z carries no information at any of the {t} steps (KL below {eps:g} nats)."
    if len(on) == 1 and on[0] == (0, t - 1):
        return f"z carries information at every one of the {t} steps."
    if len(on) == 1 and on[0][0] == 0:
        last = on[0][1]
        return (f"z carries information for the first {last + 1} steps (steps 0–{last}) and "
                f"collapses after step {last} (KL summed over dimensions below {eps:g} nats at "
                f"steps {last + 1}–{t - 1}).")
    return (f"z carries information (KL summed over dimensions at least {eps:g} nats) at "
            f"{_ranges_text(on)} of steps 0–{t - 1} and is collapsed elsewhere.")


def _window_sentence(windows: list, alpha: float) -> str | None:
    measured = [w for w in windows if w.get(W.swap_delta) is not None]
    if not measured:
        return None
    read = [w for w in measured if (w.get(W.p_value) or 1.0) < alpha and w[W.swap_delta] > 0]
    names = [f"{w['start']}–{w['stop'] - 1}" for w in read]
    if not read:
        return ("Swapping z between inputs of equal length changes log p(x|z) in no time window "
                f"(p >= {alpha:g} in each): the decoder does not read z at any position.")
    if len(read) == len(measured):
        return f"The decoder reads z in every time window (swap test p < {alpha:g})."
    last = max(w[W.stop] for w in read)
    late = all(w[W.start] >= last for w in measured if w not in read)
    detail = "; ".join(f"steps {n}: {fmt_num(w[W.swap_delta])} nats" for n, w in
                       zip(names, read))
    text = (f"The decoder reads z only in the window(s) of steps {', '.join(names)} (swap delta "
            f"{detail}); swapping the other windows changes nothing the test detects.")
    if late and min(w[W.start] for w in read) == 0:
        text += f" It uses z early in the sequence and ignores it from step {last} on."
    return text


def sequence_text(report: Report) -> str | None:
    """One paragraph on where in the sequence z is used, or ``None`` for vector latents."""
    kl = report.summary.get(S.kl_by_step)
    if not isinstance(kl, list):
        return None
    eps = float(report.settings.get("kl_eps", 0.01))
    alpha = float(report.settings.get("alpha", 0.05))
    text = [s for s in (_kl_sentence(kl, eps),
                        _window_sentence(report.summary.get(S.swap_delta_by_window) or [], alpha))
            if s]
    for row in report.dimensions[:8]:
        by_step = row.get(D.kl_by_step)
        if not isinstance(by_step, list):
            continue
        on = step_ranges([v is not None and v >= eps for v in by_step])
        if on and on != [(0, len(by_step) - 1)]:
            text.append(f"Dimension {row[D.index]} carries information at {_ranges_text(on)}.")
    unpaired = report.summary.get(S.swap_unpaired_inputs)
    if unpaired:
        text.append(f"{unpaired} input(s) had no other input of the same valid length and were "
                    "left out of the swap tests.")
    return " ".join(text) if text else None
