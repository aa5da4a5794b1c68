"""Do two models learn the same latent code? MCC after optimal matching, and CCA.

Two models (e.g. the same architecture trained with two seeds) analysed on the
same inputs give posterior means ``a = mu_A(x)`` ``(N, Da)`` and
``b = mu_B(x)`` ``(N, Db)``. Identifiability up to permutation and sign of the
coordinates (Khemakhem et al. 2020) is measured by the *mean correlation
coefficient*::

    C[i, j] = |corr(a_i, b_j)|                      (Pearson, or Spearman on ranks)
    pi      = argmax_pi sum_i C[i, pi(i)]           (Hungarian assignment,
                                                     scipy.optimize.linear_sum_assignment)
    MCC     = mean_i C[i, pi(i)]                    over the min(Da, Db) matched pairs

as in the icebeem code of Khemakhem et al. MCC is 1 exactly when each matched
coordinate is an affine (Pearson) or monotone (Spearman) function of its
partner. The canonical correlations (CCA, scikit-learn) are 1 whenever the two
codes are related by *any* invertible linear map, so ``MCC < 1`` with ``CCA ~ 1``
means "the same subspace, rotated".

References:
    Khemakhem, Kingma, Monti & Hyvarinen (2020), "Variational Autoencoders and
    Nonlinear ICA: A Unifying Framework", AISTATS. Kuhn (1955), "The Hungarian
    method for the assignment problem". Hotelling (1936), "Relations between two
    sets of variates".
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.stats import rankdata

__all__ = ["MatchResult", "abs_correlation", "cca_correlations", "match_latents"]


def abs_correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``|Pearson correlation|`` between every column of ``a`` ``(N, Da)`` and of ``b`` ``(N, Db)``.

    A constant column correlates 0 with everything (instead of NaN).
    """
    a = np.asarray(a, dtype=np.float64) - np.mean(a, axis=0)
    b = np.asarray(b, dtype=np.float64) - np.mean(b, axis=0)
    na, nb = np.linalg.norm(a, axis=0), np.linalg.norm(b, axis=0)
    denom = np.outer(na, nb)
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = np.where(denom > 0, (a.T @ b) / np.where(denom > 0, denom, 1.0), 0.0)
    return np.clip(np.abs(corr), 0.0, 1.0)


def cca_correlations(a: np.ndarray, b: np.ndarray) -> list[float]:
    """Canonical correlations of ``a`` ``(N, Da)`` and ``b`` ``(N, Db)`` (scikit-learn ``CCA``).

    ``min(Da, Db, N - 1)`` components; each correlation is that of the paired
    canonical variates on the same inputs, in decreasing order.
    """
    from sklearn.cross_decomposition import CCA

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    k = min(a.shape[1], b.shape[1], a.shape[0] - 1)
    if k < 1:
        return []
    with warnings.catch_warnings():  # convergence notices on (near-)exact relations
        warnings.simplefilter("ignore")
        u, v = CCA(n_components=k, max_iter=2000, tol=1e-10).fit(a, b).transform(a, b)
    corr = np.diag(abs_correlation(u, v))
    return sorted((float(c) for c in corr), reverse=True)


@dataclass(frozen=True)
class MatchResult:
    """MCC and CCA between two codes.

    Attributes:
        mcc: Mean |Pearson| over the Hungarian-matched pairs.
        mcc_spearman: The same on ranks (|Spearman|), with its own matching.
        matched: ``[column of a, column of b]`` pairs of the Pearson matching.
        pair_correlations: |Pearson| of each matched pair, in ``matched`` order.
        cca: Mean canonical correlation.
        cca_correlations: Every canonical correlation, decreasing.
    """

    mcc: float
    mcc_spearman: float
    matched: list[list[int]]
    pair_correlations: list[float]
    cca: float
    cca_correlations: list[float]


def _hungarian(corr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rows, cols = linear_sum_assignment(corr, maximize=True)
    return rows, cols


def match_latents(a: np.ndarray, b: np.ndarray) -> MatchResult:
    """MCC (Pearson and Spearman) after Hungarian matching, and CCA, between two codes.

    Args:
        a: First code, shape ``(N, Da)``, ``Da >= 1``.
        b: Second code on the same N inputs, shape ``(N, Db)``, ``Db >= 1``.

    Returns:
        A :class:`MatchResult`.

    Raises:
        ValueError: the codes disagree on N, or one has no column.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[0] != b.shape[0] or 0 in a.shape + b.shape:
        raise ValueError(f"codes of shapes {a.shape} and {b.shape} cannot be matched: both "
                         "must be (N, D) with the same N and D >= 1.")
    pearson = abs_correlation(a, b)
    rows, cols = _hungarian(pearson)
    spearman = abs_correlation(rankdata(a, axis=0), rankdata(b, axis=0))
    s_rows, s_cols = _hungarian(spearman)
    cca = cca_correlations(a, b)
    return MatchResult(
        mcc=float(pearson[rows, cols].mean()),
        mcc_spearman=float(spearman[s_rows, s_cols].mean()),
        matched=[[int(i), int(j)] for i, j in zip(rows, cols, strict=True)],
        pair_correlations=[float(c) for c in pearson[rows, cols]],
        cca=float(np.mean(cca)) if cca else float("nan"),
        cca_correlations=cca,
    )
