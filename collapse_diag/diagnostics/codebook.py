"""Codebook usage of a vector-quantised latent: histogram, perplexity, dead codes, exact MI.

Pure functions of the code maps ``codes`` (int ``(N, L)``: N inputs, L positions,
indices into a codebook of K entries). The encoder is deterministic, so the
information the codes carry about x (over the analysed inputs, uniform weights) is
exactly their entropy, no density estimate (Cover & Thomas 2006, eq. 2.41 with
H(c|x) = 0):

* usage ``p_k = n_k / (N L)`` over every position; entropy ``H = -sum_k p_k log p_k``
  and perplexity ``exp(H)`` (the number of equally used codes with the same entropy;
  van den Oord et al. 2017 report it for VQ-VAEs), against K;
* used codes (``n_k > 0``) and dead codes (``n_k = 0``). A code never seen in
  ``n = N L`` draws has usage below ``1 - alpha^(1/n)`` at confidence ``1 - alpha``
  (treating the draws as independent; the rule of three, Hanley & Lippman-Hand 1983),
  and a code used at the uniform rate 1/K is seen with probability ``1 - alpha`` after
  ``ceil(log(alpha) / log(1 - 1/K))`` draws: that many draws / L inputs are needed
  before "dead" says more than "not seen yet";
* per position l: ``I(x; c_l) = H(c_l)`` (at most ``min(log K, log N)``);
* the whole code map: ``I(x; c) = H(c)``, the entropy of the distinct code maps (at
  most ``min(L log K, log N)``: N inputs cannot show more).

**Codebook collapse** (Kaiser et al. 2018; Roy et al. 2018; Dhariwal et al. 2020):
a few codes carry the data, the rest of the codebook is dead. The rule here: the
perplexity is below :data:`CODEBOOK_COLLAPSE_SHARE` of K, decided only when the
draws could show more (``N L >= CODEBOOK_COLLAPSE_SHARE * K``; else undetermined).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["CODEBOOK_COLLAPSE_SHARE", "CodebookFigures", "codebook_figures", "entropy"]

#: Codebook collapse: the usage perplexity is below this share of the codebook size K.
CODEBOOK_COLLAPSE_SHARE = 0.1


def entropy(counts: np.ndarray, axis: int = -1) -> np.ndarray:
    """Entropy in nats of the empirical distribution of ``counts`` along ``axis`` (0 log 0 = 0)."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum(axis=axis, keepdims=True)
    p = np.divide(counts, total, out=np.zeros_like(counts), where=total > 0)
    logs = np.log(p, out=np.zeros_like(p), where=p > 0)
    return -(p * logs).sum(axis=axis)


@dataclass(frozen=True)
class CodebookFigures:
    """The usage figures of one set of code maps (module docstring)."""

    counts: np.ndarray
    entropy: float
    perplexity: float
    used: int
    dead: int
    dead_usage_bound: float
    inputs_for_dead: int
    position_entropy: np.ndarray
    position_used: np.ndarray
    map_entropy: float
    map_ceiling: float
    position_ceiling: float
    collapse: bool | None


def codebook_figures(codes: np.ndarray, classes: int, alpha: float) -> CodebookFigures:
    """Usage, perplexity, dead codes and exact MI of code maps (module docstring).

    Args:
        codes: Codebook indices, int ``(N, L)``, each in ``[0, classes)``.
        classes: K, the codebook size.
        alpha: Error of the dead-code statements (confidence ``1 - alpha``).
    """
    codes = np.asarray(codes, dtype=np.int64)
    n, positions = codes.shape
    counts = np.bincount(codes.ravel(), minlength=classes)
    h = float(entropy(counts))
    draws = n * positions
    offsets = codes + classes * np.arange(positions)[None, :]
    per_position = np.bincount(offsets.ravel(), minlength=classes * positions).reshape(
        positions, classes)
    _, map_counts = np.unique(codes, axis=0, return_counts=True)
    need = (1 if classes == 1 else
            math.ceil(math.log(alpha) / math.log1p(-1.0 / classes)))
    perplexity = math.exp(h)
    decidable = draws >= CODEBOOK_COLLAPSE_SHARE * classes
    return CodebookFigures(
        counts=counts,
        entropy=h,
        perplexity=perplexity,
        used=int((counts > 0).sum()),
        dead=int((counts == 0).sum()),
        dead_usage_bound=float(-math.expm1(math.log(alpha) / draws)),
        inputs_for_dead=int(math.ceil(need / positions)),
        position_entropy=entropy(per_position),
        position_used=(per_position > 0).sum(axis=1),
        map_entropy=float(entropy(map_counts)),
        map_ceiling=min(positions * math.log(classes), math.log(n)),
        position_ceiling=min(math.log(classes), math.log(n)),
        collapse=(perplexity < CODEBOOK_COLLAPSE_SHARE * classes) if decidable else None,
    )
