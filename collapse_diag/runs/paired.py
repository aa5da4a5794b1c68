"""Paired differences of NLL, -ELBO and KL between two models analysed on the same inputs.

Two models analysed on the same inputs (same ``provenance.data_sha256``) and the same
seed share the likelihood diagnostic's subsample (collapse_diag/diagnostics/likelihood.py
draws it from the seed and N alone), and their reports keep the per-input figures
(``distributions.nll_inputs``, ``nll_per_input``, ``neg_elbo_per_input`` and
``kl_per_input``). Much of the spread of an NLL over inputs is the inputs' own
difficulty, shared by both models; the difference per input removes it::

    d_i = f_a(x_i) - f_b(x_i)                  (i over the inputs both reports hold)
    mean = mean_i d_i  (= mean_i f_a - mean_i f_b on those inputs)
    se_paired   = std_i(d_i) / sqrt(n)
    se_unpaired = sqrt(var_i(f_a) / n + var_i(f_b) / n)   (shown for contrast)
    interval    = mean +/- t_{n-1, (1 + confidence) / 2} * se       (Student t)

A model is ranked below the other only where the paired interval excludes 0 (``lower``
names it); otherwise ``lower`` is ``None``: the inputs cannot tell the two apart. The
unpaired interval is what comparing the two reports' ``nll ± nll_se`` amounts to;
the paired one is narrower by the factor ``se_unpaired / se_paired`` (with
correlation rho between the models' per-input figures, about ``1 / sqrt(1 - rho)``).

``kl`` pairs ``kl_per_input`` over every analysed input (the two reports' inputs are
the same when their data hashes and counts are); ``nll`` and ``neg_elbo`` pair the
subsample positions both reports hold (all of them when both used the same seed and
``nll_examples``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats

from collapse_diag.report.report import Report
from collapse_diag.report.schema import DISTRIBUTION_KEY as X
from collapse_diag.report.schema import SUMMARY_KEY as S
from collapse_diag.report.schema import TOP_LEVEL_KEY as T

__all__ = ["PAIRED_FIGURES", "paired_difference", "paired_entry"]

#: Figure name in a paired entry (the summary figure it pairs) -> (its per-input
#: distribution, where its inputs are listed (``None``: all N analysed inputs, in order)).
PAIRED_FIGURES: dict[str, tuple[str, str | None]] = {
    S.nll: (X.nll_per_input, X.nll_inputs),
    S.neg_elbo: (X.neg_elbo_per_input, X.nll_inputs),
    S.kl: (X.kl_per_input, None),
}


def paired_difference(a: Sequence[float], b: Sequence[float], confidence: float = 0.95
                      ) -> dict[str, Any]:
    """Mean of ``a - b`` with paired and unpaired standard errors and Student-t intervals.

    Args:
        a: Per-input figures of model a, shape ``(n,)``.
        b: The same inputs' figures of model b, shape ``(n,)``.
        confidence: Level of the intervals, in (0, 1).

    Returns:
        ``{"n", "mean", "se", "ci", "se_unpaired", "ci_unpaired", "narrowing"}``; the
        standard errors and intervals are ``None`` for n < 2, ``narrowing`` (unpaired over
        paired width) is ``None`` when the paired one is 0.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    n = len(a)
    out: dict[str, Any] = {"n": n, "mean": float((a - b).mean()) if n else None,
                           "se": None, "ci": None, "se_unpaired": None, "ci_unpaired": None,
                           "narrowing": None}
    if n < 2:
        return out
    t = float(stats.t.ppf((1 + confidence) / 2, n - 1))
    se = float((a - b).std(ddof=1) / math.sqrt(n))
    se_u = float(math.sqrt((a.var(ddof=1) + b.var(ddof=1)) / n))
    mean = out["mean"]
    out.update(se=se, ci=[mean - t * se, mean + t * se], se_unpaired=se_u,
               ci_unpaired=[mean - t * se_u, mean + t * se_u],
               narrowing=se_u / se if se > 0 else None)
    return out


def _figures(report: Report, values_key: str, inputs_key: str | None
             ) -> dict[int, float] | None:
    values = report.distributions.get(values_key)
    if not isinstance(values, list) or not values:
        return None
    inputs = (report.distributions.get(inputs_key) if inputs_key is not None
              else list(range(len(values))))
    if not isinstance(inputs, list) or len(inputs) != len(values):
        return None
    return {int(i): float(v) for i, v in zip(inputs, values) if v is not None}


def paired_entry(name_a: str, a: Report, name_b: str, b: Report,
                 confidence: float = 0.95) -> dict[str, Any] | str:
    """The paired differences ``a - b`` of every :data:`PAIRED_FIGURES`, or why there are none.

    The two reports must come from the same inputs (the caller checks the data hash);
    each figure pairs the inputs both reports hold. A figure either report lacks is
    left out.

    Returns:
        ``{"a", "b", "confidence", "<figure>": {... :func:`paired_difference` ..., "lower"}}``
        with ``lower`` the name of the model whose figure is lower where the paired interval
        excludes 0 (else ``None``); or a sentence saying why nothing can be paired.
    """
    if a.n_examples != b.n_examples:
        return "their reports hold different numbers of inputs"
    entry: dict[str, Any] = {"a": name_a, "b": name_b, "confidence": confidence}
    for figure, (values_key, inputs_key) in PAIRED_FIGURES.items():
        fa, fb = _figures(a, values_key, inputs_key), _figures(b, values_key, inputs_key)
        if fa is None or fb is None:
            continue
        common = sorted(set(fa) & set(fb))
        diff = paired_difference([fa[i] for i in common], [fb[i] for i in common], confidence)
        ci = diff["ci"]
        diff["lower"] = (None if ci is None or ci[0] <= 0 <= ci[1]
                         else name_a if ci[1] < 0 else name_b)
        entry[figure] = diff
    if len(entry) == 3:
        return ("their reports keep no per-input NLL, -ELBO or KL (written before "
                f"distributions.{X.nll_per_input}, or without the likelihood and kl diagnostics; "
                f"{T.distributions} holds them from this version on)")
    return entry
