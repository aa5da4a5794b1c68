"""How much a decoder's output changes with z: pure functions of decoded outputs.

Token outputs (a text decoder, greedy decoding)::

    token change     = mean_j lev(y(z_j), y(z_bar)) / max(|y(z_j)|, |y(z_bar)|)
    differ fraction  = #{j : y(z_j) != y(z_bar)} / M
    distinct-n       = |{n-grams of y(z_1..z_M)}| / #(n-grams of y(z_1..z_M))

with z_j ~ q(z) = mean_x q(z|x) the aggregate posterior, z_bar its mean and lev
the token-level Levenshtein distance. The token change is the share of tokens
that change (a near-tie flipping one word of a sentence counts 1/length, not 1:
greedy decoding turns tiny logit differences into word changes); its interval is
a percentile bootstrap over the codes. The differ fraction's interval is the
exact (Clopper-Pearson) binomial one. distinct-n (Li et al. 2016) is a point
figure: it falls as M grows for any decoder, so it is compared at equal M only.

Continuous outputs (the decoder's mean g(z))::

    variance ratio = sum_p Var_j g_p(z_j) / sum_p Var_j x_{i_j, p}

the variance of the decoder's mean across the codes, relative to the variance of
the inputs the codes were drawn from (pairs (x_{i_j}, z_j), z_j ~ q(z|x_{i_j})).
By the law of total variance it is about the share of the data's variance that the
decoder's mean explains through z: 0 when the decoder ignores z. Its interval is a
percentile bootstrap over the pairs.

References:
    Li, Galley, Brockett, Gao & Dolan (2016), "A Diversity-Promoting Objective
    Function for Neural Conversation Models", NAACL. Clopper & Pearson (1934),
    "The use of confidence or fiducial limits illustrated in the case of the
    binomial", Biometrika. Efron & Tibshirani (1993), "An Introduction to the Bootstrap".
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy import stats

__all__ = ["differ_fraction", "distinct_n", "token_change", "token_distance", "variance_ratio"]


def token_distance(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    """Levenshtein distance between two token sequences over the longer length (0 if both empty).

    One pair of :func:`token_change`.
    """
    return float(token_change([a], b)[0])


def token_change(rows: Sequence[tuple[int, ...]], reference: tuple[int, ...]) -> np.ndarray:
    """Levenshtein distance of each row to ``reference`` over the longer length, ``(M,)``.

    Wagner & Fischer (1974) dynamic programme, one row of the table per token of
    ``reference``, for all M rows at once (rows padded to the longest; column j of the
    table depends only on columns <= j, so the padding never reaches a row's answer at
    its own length). Within a table row the insertion recurrence
    ``c_j = min(a_j, c_{j-1} + 1)`` is a running minimum: ``c_j - j = min_{k<=j} (a_k - k)``.
    O(|reference| M L) in numpy, L the longest row. The mean over rows is the figure; a
    row and a reference both empty have distance 0.
    """
    m = len(rows)
    lengths = np.fromiter((len(row) for row in rows), dtype=np.int64, count=m)
    width = int(lengths.max(initial=0))
    tokens = np.full((m, width), -1, dtype=np.int64)
    for i, row in enumerate(rows):  # the padding, not the distance: O(M L) copies
        tokens[i, :len(row)] = row
    steps = np.arange(width + 1)
    table = np.broadcast_to(steps, (m, width + 1)).astype(np.int64)
    for i, token in enumerate(reference, 1):
        best = np.empty_like(table)
        best[:, 0] = i
        np.minimum(table[:, :-1] + (tokens != token), table[:, 1:] + 1, out=best[:, 1:])
        table = np.minimum.accumulate(best - steps, axis=1) + steps
    longer = np.maximum(lengths, len(reference))
    distance = table[np.arange(m), lengths].astype(np.float64)
    return np.divide(distance, longer, out=np.zeros(m), where=longer > 0)


def differ_fraction(rows: Sequence[tuple[int, ...]], reference: tuple[int, ...],
                    confidence: float) -> tuple[float, tuple[float, float], int]:
    """Fraction of ``rows`` that differ from ``reference``, with its exact interval.

    Args:
        rows: The M decoded token sequences.
        reference: The decode at the aggregate posterior's mean.
        confidence: Level of the Clopper-Pearson interval.

    Returns:
        ``(fraction, (low, high), count)``.
    """
    m = len(rows)
    k = sum(row != reference for row in rows)
    ci = stats.binomtest(k, m).proportion_ci(confidence_level=confidence, method="exact")
    return k / m, (float(ci.low), float(ci.high)), int(k)


def distinct_n(rows: Sequence[tuple[int, ...]], n: int) -> float | None:
    """Distinct n-grams over all n-grams of ``rows`` (Li et al. 2016); ``None`` without any."""
    grams = [row[i:i + n] for row in rows for i in range(len(row) - n + 1)]
    return len(set(grams)) / len(grams) if grams else None


def variance_ratio(outputs: np.ndarray, inputs: np.ndarray, resamples: int, confidence: float,
                   generator: torch.Generator) -> tuple[float | None, tuple[float, float] | None]:
    """Sum of per-coordinate variances of ``outputs`` over those of ``inputs``, with interval.

    Args:
        outputs: Decoder means g(z_j), ``(M, P)``.
        inputs: The paired inputs x_{i_j}, ``(M, P)``.
        resamples: Bootstrap resamples of the M pairs (0: no interval).
        confidence: Level of the percentile interval.
        generator: Seeded CPU generator (the resample indices).

    Returns:
        ``(ratio, (low, high))``; ``(None, None)`` when the inputs do not vary.
    """
    g, x = np.asarray(outputs, np.float64), np.asarray(inputs, np.float64)

    def spread(a: np.ndarray) -> float:  # sum_p Var_j a_jp
        return a.var(axis=0).sum()

    total = spread(x)
    if not total > 0:
        return None, None
    ratio = float(spread(g) / total)
    if resamples == 0:
        return ratio, None
    m = len(g)
    index = torch.randint(m, (resamples, m), generator=generator).numpy()
    counts = np.zeros((resamples, m))
    np.add.at(counts, (np.arange(resamples)[:, None], index), 1.0)
    weights = counts / m  # (B, M): sum_p Var = E||a||^2 - ||E a||^2 under the weights

    def weighted(a: np.ndarray) -> np.ndarray:
        return weights @ (a * a).sum(axis=1) - ((weights @ a) ** 2).sum(axis=1)

    num, den = weighted(g), weighted(x)
    keep = den > 0
    replicates = num[keep] / den[keep]
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(replicates, [tail, 100 - tail])
    return ratio, (float(low), float(high))
