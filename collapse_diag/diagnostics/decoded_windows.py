"""What the decoder makes of z, per time window (sequential latents): does it read z late?

The decoded diagnostic (collapse_diag/diagnostics/decoded_outputs.py) varies the whole
code. For sequential latents ``[T, D]`` this module varies it in one time window at a
time, the windows of the window-swap diagnostic
(:func:`~collapse_diag.diagnostics.window_swap.time_windows`: ``min(swap_windows, T)``
consecutive windows ``[floor(k T / W), floor((k + 1) T / W))``). For window w the code
is the mean of q(z) per step, z_bar, except at the window's steps, which come from the
M seeded q(z) draws z_j of the whole-code figure::

    z_j^(w)[t] = z_j[t]  for t in w,   z_bar[t] otherwise

and the diversity of the M decodes is measured as for the whole code, against the decode
at z_bar: tokens, the mean share of tokens that change (percentile-bootstrap interval);
continuous outputs, sum_p Var_j g_p(z_j^(w)) / sum_p Var_j x_p (the same inputs as the
whole-code ratio). A decoder that does not read z in window w decodes every z_j^(w) as
it decodes z_bar: exactly 0. A decoder that reads z only early in the sequence shows
diversity in the early windows and 0 in the late ones, the decoded counterpart of
``swap_delta_by_window``.

The view: for each window, the codes of the section's "other inputs" (mu(x_j)) put into
z_bar at the window's steps only, decoded.

Cost: W M more rows of ``generate`` (sharded under ``torchrun`` like the whole-code ones)
and W ``decoded_examples`` rows for the view.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from collapse_diag.diagnostics.estimators.diversity import token_change, variance_ratio
from collapse_diag.diagnostics.estimators.statistics import bootstrap_ci
from collapse_diag.diagnostics.window_swap import time_windows
from collapse_diag.report.schema import DIVERSITY_WINDOW_KEY as K

__all__ = ["window_codes", "window_diversity", "window_views"]


def window_codes(z_bar: np.ndarray, codes: np.ndarray, window: tuple[int, int]) -> np.ndarray:
    """``codes`` ``(M, T, D)`` at the window's steps, ``z_bar`` ``(T, D)`` elsewhere."""
    out = np.repeat(z_bar[None], len(codes), axis=0)
    out[:, window[0]:window[1]] = codes[:, window[0]:window[1]]
    return out


def window_diversity(kind: str, codes: np.ndarray, z_bar: np.ndarray, swap_windows: int,
                     tokens: Callable[[np.ndarray], list[tuple[int, ...]]],
                     outputs: Callable[[np.ndarray], np.ndarray],
                     reference: tuple[int, ...] | None, inputs: np.ndarray | None,
                     resamples: int, confidence: float, generator: Any
                     ) -> list[dict[str, Any]]:
    """Diversity per time window (module docstring), one entry per window.

    Args:
        kind: ``tokens`` or ``continuous``.
        codes: The M q(z) draws ``(M, T, D)`` of the whole-code figure.
        z_bar: The mean of q(z) per step ``(T, D)``.
        swap_windows: The setting: ``min(swap_windows, T)`` windows.
        tokens: Codes -> token rows, all M gathered (sharded under torchrun).
        outputs: Codes -> decoder means ``(M, P)``, all M gathered (sharded).
        reference: Tokens: the decode at z_bar.
        inputs: Continuous: the inputs the codes were drawn from ``(M, P)``, or ``None``
            (not comparable with the outputs: no ratio).
        resamples: Bootstrap resamples (``decoded_bootstrap``).
        confidence: The interval's level.
        generator: The diagnostic's generator (its bootstrap draws, window by window).

    Returns:
        ``[{"start", "stop", "output_diversity", "output_diversity_ci"}]``.
    """
    out = []
    for window in time_windows(codes.shape[1], swap_windows):
        varied = window_codes(z_bar, codes, window)
        if kind == "tokens":
            change = token_change(tokens(varied), reference or ())
            ci = bootstrap_ci(change, resamples, confidence, generator)
            value: float | None = float(change.mean())
            interval = None if np.isnan(ci[0]) else [float(ci[0]), float(ci[1])]
        elif inputs is None:
            value, interval = None, None
        else:
            value, ci2 = variance_ratio(outputs(varied), inputs, resamples, confidence,
                                        generator)
            interval = None if ci2 is None else list(ci2)
        out.append({K.start: int(window[0]), K.stop: int(window[1]), K.output_diversity: value,
                    K.output_diversity_ci: interval})
    return out


def window_views(z_bar: np.ndarray, mu_other: np.ndarray, others: np.ndarray,
                 swap_windows: int, decode: Callable[[np.ndarray], list[Any]]
                 ) -> list[dict[str, Any]]:
    """Per window, the other inputs' codes put into z_bar at its steps, decoded.

    Args:
        z_bar: The mean of q(z) per step ``(T, D)``.
        mu_other: The shown other inputs' codes mu(x_j) ``(S, T, D)``.
        others: Their input indices ``(S,)``.
        swap_windows: The setting.
        decode: Codes -> one shown value per code (text, or pixels as lists).

    Returns:
        ``[{"start", "stop", "inputs", "decoded"}]``, one per window.
    """
    windows = time_windows(z_bar.shape[0], swap_windows)
    stacked = np.concatenate([window_codes(z_bar, mu_other, w) for w in windows])
    decoded = decode(stacked)
    s = len(mu_other)
    return [{K.start: int(lo), K.stop: int(hi), "inputs": [int(j) for j in others],
             "decoded": decoded[k * s:(k + 1) * s]} for k, (lo, hi) in enumerate(windows)]
