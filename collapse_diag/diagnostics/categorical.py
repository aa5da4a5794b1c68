"""KL, exact MI and usage of categorical latents (Gumbel-softmax, dVAE): pure functions.

Inputs are normalised log-probabilities ``log q(c_d = k | x)`` ``(N, D, K)`` of D
categorical variables with K classes, and the prior's ``log p(c_d = k)`` (same shape,
or ``None`` for the uniform prior 1/K). Over the analysed inputs (uniform weights):

* ``KL_d(x) = sum_k q_k (log q_k - log p_k)``: closed form, per input and variable;
* the aggregate posterior of a categorical is a categorical,
  ``qbar_d(k) = (1/N) sum_i q(c_d = k | x_i)``, so ``I(x; c_d) = (1/N) sum_i
  KL(q(c_d | x_i) || qbar_d)`` is exact, no density estimate (Hoffman & Johnson 2016:
  ``mean KL_d = I(x; c_d) + KL(qbar_d || p_d)``), at most ``min(log K, log N)``;
* usage perplexity ``exp(H(qbar_d))``: how many classes the variable uses, against K;
* the whole code ``c = (c_1 .. c_D)``: ``q(c|x) = prod_d q(c_d|x)`` and its aggregate is a
  categorical over the K^D joint states, so ``I(x; c)`` is exact too, by enumeration,
  when ``K^D <= MAX_JOINT_STATES`` (else not computed); at most ``log N``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp

__all__ = ["MAX_JOINT_STATES", "CategoricalFigures", "categorical_figures"]

#: Largest number K^D of joint states whose MI is computed by enumeration.
MAX_JOINT_STATES = 4096
#: Negative KL rounding (|value| < this) is set to 0, as for Gaussians (diagnostics/kl.py).
_ROUNDING = 1e-12


@dataclass(frozen=True)
class CategoricalFigures:
    """Per-variable and whole-code figures of categorical latents (module docstring).

    Attributes:
        kl_per_input: KL_d(x_i) ``(N, D)``, nats.
        kl: Mean over inputs per variable ``(D,)``.
        mi: I(x; c_d) ``(D,)``, nats, exact.
        perplexity: exp(H(qbar_d)) ``(D,)``.
        joint_mi: I(x; c) of the whole code, exact, or ``None`` (too many joint states).
        mi_ceiling: ``log N`` (no figure over N inputs exceeds it).
    """

    kl_per_input: np.ndarray
    kl: np.ndarray
    mi: np.ndarray
    perplexity: np.ndarray
    joint_mi: float | None
    mi_ceiling: float


def _kl(log_q: np.ndarray, log_p: np.ndarray) -> np.ndarray:
    q = np.exp(log_q)
    out = np.where(q > 0, q * (log_q - log_p), 0.0).sum(axis=-1)
    return np.where((out < 0) & (out > -_ROUNDING), 0.0, out)


def _joint_mi(log_q: np.ndarray) -> float | None:
    n, dims, classes = log_q.shape
    if classes**dims > MAX_JOINT_STATES:
        return None
    states = np.stack(np.unravel_index(np.arange(classes**dims), (classes,) * dims), axis=1)
    joint = log_q[:, np.arange(dims)[None, :], states].sum(axis=-1)  # (N, S)
    aggregate = logsumexp(joint, axis=0) - math.log(n)
    return float(np.maximum(_kl(joint, aggregate[None, :]), 0.0).mean())


def categorical_figures(log_q: np.ndarray, log_p: np.ndarray | None = None
                        ) -> CategoricalFigures:
    """KL, exact MI and usage perplexity per variable, and the whole code's exact MI.

    Args:
        log_q: ``log q(c_d = k | x_i)``, normalised over k, ``(N, D, K)``.
        log_p: ``log p(c_d = k)`` per input ``(N, D, K)``, or ``None`` (uniform).
    """
    log_q = np.asarray(log_q, dtype=np.float64)
    n, _, classes = log_q.shape
    prior = np.full_like(log_q, -math.log(classes)) if log_p is None else np.asarray(log_p)
    kl = _kl(log_q, prior)
    aggregate = logsumexp(log_q, axis=0) - math.log(n)  # (D, K)
    mi = _kl(log_q, aggregate[None]).mean(axis=0)
    p = np.exp(aggregate)
    h = -(p * np.where(p > 0, aggregate, 0.0)).sum(axis=-1)
    return CategoricalFigures(kl_per_input=kl, kl=kl.mean(axis=0), mi=mi,
                              perplexity=np.exp(h), joint_mi=_joint_mi(log_q),
                              mi_ceiling=math.log(n))
