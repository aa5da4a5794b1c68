"""Coverage of the per-dimension swap intervals on linear Gaussian VAEs with closed-form truths.

Shared by tests/test_swap_coverage.py (a cheap run) and
benchmarks/bench_swap_coverage.py (the full sweep). For the
:class:`~models_for_tests.LinearVAE` ``q(z|x) = N(A x + b, diag(v))``,
``p(x|z) = N(W z, sigma^2 I)`` on Gaussian data ``x ~ N(0, C)``, the mean
per-dimension swap delta (z'_d drawn for an independent input) is, with a_d the
d-th row of A and w_d the d-th column of W::

    E[delta_d] = (||w_d||^2 a_d^T C a_d + a_d^T C w_d - w_d^T W A C a_d) / sigma^2

(derivation in :func:`linear_swap_truth`); for the exact posterior of
:func:`~models_for_tests.exact_linear_gaussian` it is ``||w_d||^2 / sigma^2``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
from models_for_tests import LinearVAE, exact_linear_gaussian, sample_linear_data

from collapse_diag.config.settings import Settings
from collapse_diag.diagnostics.sensitivity import sensitivity_diagnostic
from collapse_diag.model.encodings import encode_all
from collapse_diag.model.protocol import check_model
from collapse_diag.runtime.rng import generator_for

__all__ = ["ISSUE_TRUTHS", "Coverage", "issue_model", "linear_swap_truth", "swap_coverage"]

#: The per-dimension swap effects of issue 29's model (nats), 8 dimensions.
ISSUE_TRUTHS = (5.31, 3.13, 1.57, 0.62, 0.0, 0.0, 0.0, 0.0)


def issue_model(truths: tuple[float, ...] = ISSUE_TRUTHS, sigma: float = 1.0,
                obs_dim: int = 10) -> LinearVAE:
    """Exact-posterior linear Gaussian VAE whose swap effects are ``truths``.

    ``W = Q diag(s)`` with orthonormal Q and ``s_d = sigma sqrt(truth_d)``, so
    ``||w_d||^2 / sigma^2 = truth_d``; its data are ``x = W z + sigma eps``
    (:func:`~models_for_tests.sample_linear_data`), ``C = W W^T + sigma^2 I``.
    """
    return exact_linear_gaussian(sigma * np.sqrt(np.asarray(truths, float)), sigma=sigma,
                                 obs_dim=obs_dim, seed=0)


def linear_swap_truth(model: LinearVAE, cov: np.ndarray) -> np.ndarray:
    """Closed-form E[delta_d] per dimension for data ``x ~ N(0, cov)``, shape ``(D,)``.

    With r = x - W z and e = z'_d - z_d: ``delta_d = (e^2 ||w_d||^2 - 2 e w_d^T r)
    / (2 sigma^2)``. z' is independent of (x, z) with the marginal of z, so
    ``E[e^2] = 2 Var z_d = 2 (a_d^T C a_d + v_d)`` and
    ``E[e w_d^T r] = -Cov(z_d, w_d^T r) = -(a_d^T C w_d - w_d^T W (A C a_d + v_d 1_d))``.
    The v_d terms cancel, leaving the formula of the module docstring.
    """
    w, a = model.W.numpy(), model.A.numpy()
    norms = (w**2).sum(axis=0)
    aca = np.einsum("dp,pq,dq->d", a, cov, a)
    acw = np.einsum("dp,pq,qd->d", a, cov, w)
    wwaca = np.einsum("pd,pe,ef,fq,dq->d", w, w, a, cov, a)
    return (norms * aca + acw - wwaca) / model.sigma**2


@dataclass(frozen=True)
class Coverage:
    """Outcome of :func:`swap_coverage` at one round-1 size.

    Attributes:
        first: Round-1 size (``per_dim_swap_examples``).
        runs: Independent analyses.
        estimate_miss: Runs where some estimate interval missed its truth.
        decision_miss: Runs where some decision interval missed its truth.
        outside_estimate: Runs where some estimate fell outside its estimate interval.
        outside_decision: Runs where some estimate fell outside its decision interval.
    """

    first: int
    runs: int
    estimate_miss: int
    decision_miss: int
    outside_estimate: int
    outside_decision: int

    def rate(self, count: int) -> float:
        """``count / runs``."""
        return count / self.runs

    def mc_error(self, alpha: float) -> float:
        """Binomial standard error of a rate alpha over ``runs``: sqrt(alpha (1 - alpha) / runs)."""
        return math.sqrt(alpha * (1 - alpha) / self.runs)


def swap_coverage(model: LinearVAE, truth: np.ndarray, n: int, first: int, seeds: range,
                  settings: Settings | None = None) -> Coverage:
    """Analyse ``len(seeds)`` fresh data sets of ``n`` inputs; count interval failures.

    Seed s draws the data with ``sample_linear_data(model, n, 10_000 + s)`` and runs
    the sensitivity diagnostic with ``generator_for(s, "sensitivity")`` and
    ``per_dim_swap_examples = first`` (whole-vector bootstrap off: not measured here).
    """
    cfg = dataclasses.replace(settings or Settings(), swap_bootstrap=0,
                              per_dim_swap_examples=first)
    model.eval()
    counts = np.zeros(4, dtype=int)
    for seed in seeds:
        data = sample_linear_data(model, n, seed=10_000 + seed)
        info = check_model(model, data)
        enc = encode_all(model, data, info, cfg.batch_size)
        res = sensitivity_diagnostic(model, data, enc, info, cfg,
                                     generator_for(seed, "sensitivity"))
        est, (low, high) = res.dim_swap_delta, res.dim_swap_estimate_ci.T
        pd = res.per_dim
        counts += [not np.all((low <= truth) & (truth <= high)),
                   not np.all((pd.low <= truth) & (truth <= pd.high)),
                   not np.all((low <= est) & (est <= high)),
                   not np.all((pd.low <= est) & (est <= pd.high))]
    return Coverage(first, len(seeds), *(int(c) for c in counts))
