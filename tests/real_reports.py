"""Reports from real ``analyze`` runs on models whose answers are known by construction.

The render, plot, explanation, table and comparison tests read these instead of
hand-built dicts, so every value they see is one ``analyze`` can write
(tests/conftest.py runs each once per session; ``reports`` hands out copies).
Per-dimension behaviour of :func:`models_for_tests.toy_vae` and the linear models
here: a dimension the encoder writes x into and the decoder weighs 1 is *used*;
decoder weight 0: *ignored*; q = N(0, 1) = prior: *collapsed*; q = N(0.5, 1) for
every x: *uninformative* (KL 0.125, Var mu = 0, signal *weak*).

* ``healthy``: 3 used dimensions, ``num_tokens``, a factor ``sign`` = [x_0 > 0] that
  z_0 encodes (a labelled run: the probes run), a checkpoint entry.
* ``collapsed``: 3 collapsed dimensions (q = prior) and a decoder that ignores z
  (flat likelihood); the same inputs and ``sign`` factor, which z cannot recover.
* ``partial``: 6 dimensions: z0 used (decoder weight 1), z1 undetermined (decoder
  weight 0.03, read with 8 swap inputs only: the interval straddles 0 and the
  threshold), z2 ignored, z3 collapsed, z4 uninformative (weak), z5 used with a
  *noisy* signal (encoder 0.2 x_5, posterior variance 1 > Var mu ~ 0.04); no tokens.
* ``sequential``: the bundled sequence VAE, z [B, 16, 2]: dimension 0 carries x for
  the first 8 steps only, dimension 1 collapsed.
* ``failed``: the decoder raises :data:`FAILURE` for batches over 4 rows, so sensitivity
  and identifiability fail (recorded in ``errors``); information not run; no checkpoint.
* ``kl_only``: ``diagnostics=["kl"]``: KL figures only, no verdict.
* ``lean``: two used dimensions, per-dimension swap off, no MI intervals.
* ``saturated``: an MI estimate at its ceiling log N.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from models_for_tests import LinearVAE, TokenLinearVAE, toy_data, toy_vae

from collapse_diag import analyze
from collapse_diag.report.report import Report

__all__ = ["BUILDERS", "FAILURE", "FAST", "FailsOnLargeBatches", "build_all"]

#: Cheap settings: every diagnostic runs, the whole set costs a few seconds.
FAST: dict[str, Any] = {"seed": 0, "swap_bootstrap": 100, "per_dim_swap_examples": 40,
                        "fisher_bootstrap": 50, "mi_bootstrap": 50, "nll_samples": 10,
                        "nll_examples": 50, "prior_samples": 8}
N = 200


def _inputs() -> tuple[dict[str, torch.Tensor], dict[str, np.ndarray]]:
    """x = z + 0.3 eps (3 coordinates), a token count per input, and ``sign`` = [x_0 > 0]."""
    x = toy_data(3, N, seed=1)
    tokens = torch.from_numpy(np.random.default_rng(0).integers(1, 9, size=N))
    return {"x": x, "n": tokens}, {"sign": (x[:, 0] > 0).numpy().astype(int)}


def _token_model(kinds: str) -> TokenLinearVAE:
    base = toy_vae(kinds)
    return TokenLinearVAE(base.W, base.sigma, base.A, base.lv, base.b)


def healthy() -> Report:
    data, labels = _inputs()
    return analyze(_token_model("uuu"), data, labels=labels,
                   checkpoint={"path": "checkpoints/healthy.pt", "sha256": "c0ffee" * 10 + "abcd"},
                   **FAST)


def collapsed() -> Report:
    """Posterior collapse as Wang et al. (2021) describe it: the decoder ignores z
    (p(x|z) = N(0, 0.25 I)), the encoder equals the prior; the healthy run's inputs (one data
    group in a comparison). Every importance weight is p(x|z) = p(x): the NLL bound is exact
    (computed on every input here, ``nll_examples=None``)."""
    data, labels = _inputs()
    zeros = np.zeros((3, 3))
    model = TokenLinearVAE(zeros, 0.5, zeros, np.zeros(3))
    return analyze(model, data, labels=labels, **{**FAST, "nll_examples": None})


#: The partial model, per dimension: encoder scale, offset, posterior variance, decoder weight.
PARTIAL = {"scale": [0.9, 0.9, 0.9, 0.0, 0.0, 0.2], "offset": [0, 0, 0, 0, 0.5, 0],
           "variance": [0.1, 0.1, 0.1, 1.0, 1.0, 1.0], "weight": [1.0, 0.03, 0.0, 1.0, 1.0, 1.0]}


def partial() -> Report:
    p = PARTIAL
    model = LinearVAE(np.diag(p["weight"]), 0.5, np.diag(p["scale"]), np.log(p["variance"]),
                      p["offset"])
    return analyze(model, toy_data(6, N, seed=1),
                   **{**FAST, "per_dim_swap_examples": 8, "per_dim_swap_max_examples": 8})


def sequential() -> Report:
    from collapse_diag.examples.sequence_vae import build_sequence_vae, sample_inputs

    model = build_sequence_vae()
    return analyze(model, sample_inputs(model, N, seed=1, min_length=12), seed=3, mi_samples=4,
                   swap_bootstrap=50, prior_samples=4, fisher_samples=2, nll_samples=8)


#: The message the failing decoder raises (with characters the documents must escape).
FAILURE = "the decoder cannot take batches over 4 rows <x|y>"


class FailsOnLargeBatches(LinearVAE):
    """Passes check_model's 4-input probe, raises :data:`FAILURE` on every larger batch."""

    def log_likelihood(self, x: Any, z: torch.Tensor) -> torch.Tensor:
        if len(z) > 4:
            raise RuntimeError(FAILURE)
        return super().log_likelihood(x, z)


def failed() -> Report:
    base = toy_vae("uicn")
    model = FailsOnLargeBatches(base.W, base.sigma, base.A, base.lv, base.b)
    return analyze(model, toy_data(4, 120, seed=1),
                   diagnostics=["kl", "activity", "sensitivity", "identifiability"], **FAST)


def kl_only() -> Report:
    return analyze(toy_vae("uu"), toy_data(2, 120, seed=1), diagnostics=["kl"], **FAST)


def lean() -> Report:
    """Two used dimensions; the per-dimension swap off and no MI intervals."""
    return analyze(toy_vae("uu"), toy_data(2, 120, seed=1),
                   **{**FAST, "per_dim_swap_examples": 0, "mi_bootstrap": 0})


def saturated() -> Report:
    """Three used dimensions with posterior variance 1e-4 on 40 inputs: I(x; z) ~ 3 * 0.5 *
    log(1e4) ~ 14 nats, far above the ceiling log 40 ~ 3.7: the MI estimate is saturated."""
    model = LinearVAE(np.eye(3), 0.5, np.eye(3), np.log(np.full(3, 1e-4)))
    return analyze(model, toy_data(3, 40, seed=1),
                   diagnostics=["kl", "activity", "information"], **FAST)


BUILDERS = {"healthy": healthy, "collapsed": collapsed, "partial": partial,
            "sequential": sequential, "failed": failed, "kl_only": kl_only, "lean": lean,
            "saturated": saturated}


def build_all() -> dict[str, Report]:
    """Every report of :data:`BUILDERS`, by name."""
    return {name: build() for name, build in BUILDERS.items()}
