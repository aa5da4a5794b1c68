"""Small models whose diagnostic answers are known by construction or in closed form.

Shared by the decoder-side and verdict tests (importable by other test modules).
Every model computes in float64 so that batch-size invariance holds to 1e-9.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from collapse_diag.config.settings import Settings
from collapse_diag.diagnostics.activity import activity_diagnostic
from collapse_diag.diagnostics.identifiability import (
    IdentifiabilityResult,
    identifiability_diagnostic,
)
from collapse_diag.diagnostics.kl import kl_diagnostic
from collapse_diag.diagnostics.sensitivity import SensitivityResult, sensitivity_diagnostic
from collapse_diag.diagnostics.verdict import VerdictResult, decide_verdict
from collapse_diag.model.encodings import Encodings, encode_all
from collapse_diag.model.protocol import ModelInfo, check_model
from collapse_diag.runtime.rng import generator_for

__all__ = [
    "LinearVAE",
    "TokenLinearVAE",
    "NoZDecoderVAE",
    "NaNDecoderVAE",
    "PriorVAE",
    "exact_linear_gaussian",
    "sample_linear_data",
    "toy_vae",
    "toy_data",
    "encoder_side",
    "Analysis",
    "analyze_toy",
]


def _t(a: Any) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a, dtype=np.float64))


class LinearVAE(nn.Module):
    """q(z|x) = N(A x + b, diag(exp(logvar))); p(x|z) = N(W z, sigma^2 I).

    Args:
        W: Decoder weights ``(P, D)``; a zero column makes the decoder ignore that dimension.
        sigma: Observation noise std.
        A: Encoder weights ``(D, P)``.
        logvar: Posterior log-variance ``(D,)`` (the same for every input).
        offset: Encoder bias ``(D,)`` (default 0).
    """

    def __init__(self, W: Any, sigma: float, A: Any, logvar: Any, offset: Any = None) -> None:
        super().__init__()
        self.register_buffer("W", _t(W))
        self.register_buffer("A", _t(A))
        self.register_buffer("lv", _t(logvar))
        self.register_buffer("b", _t(np.zeros(len(logvar)) if offset is None else offset))
        self.sigma = float(sigma)

    def _x(self, x: Any) -> torch.Tensor:
        return x["x"] if isinstance(x, dict) else x

    def encode(self, x: Any) -> tuple[torch.Tensor, torch.Tensor]:
        v = self._x(x)
        return v @ self.A.T + self.b, self.lv.expand(v.shape[0], -1)

    def log_likelihood(self, x: Any, z: torch.Tensor) -> torch.Tensor:
        v = self._x(x)
        r = v - z @ self.W.T
        const = 0.5 * v.shape[1] * math.log(2 * math.pi * self.sigma**2)
        return -0.5 * (r**2).sum(-1) / self.sigma**2 - const


class TokenLinearVAE(LinearVAE):
    """:class:`LinearVAE` on dict inputs ``{"x": (N, P), "n": (N,)}`` with ``num_tokens = n``."""

    def num_tokens(self, x: dict[str, torch.Tensor]) -> torch.Tensor:
        return x["n"]


class NoZDecoderVAE(LinearVAE):
    """Decoder that never touches z (no autograd path from z): log p(x|z) = log N(x; 0, sigma^2)."""

    def log_likelihood(self, x: Any, z: torch.Tensor) -> torch.Tensor:
        return super().log_likelihood(x, torch.zeros_like(z))


class NaNDecoderVAE(LinearVAE):
    """Decoder returning NaN for every row whose first code coordinate is positive."""

    def log_likelihood(self, x: Any, z: torch.Tensor) -> torch.Tensor:
        out = super().log_likelihood(x, z)
        return torch.where(z[:, 0] > 0, torch.full_like(out, float("nan")), out)


class PriorVAE(LinearVAE):
    """:class:`LinearVAE` with a learned prior N(prior_mean, exp(prior_logvar)) per input."""

    def __init__(self, *args: Any, prior_mean: Any, prior_logvar: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.register_buffer("pm", _t(prior_mean))
        self.register_buffer("plv", _t(prior_logvar))

    def prior(self, x: Any) -> tuple[torch.Tensor, torch.Tensor]:
        n = self._x(x).shape[0]
        return self.pm.expand(n, -1), self.plv.expand(n, -1)


def exact_linear_gaussian(scales: Any, sigma: float, obs_dim: int, seed: int = 0) -> LinearVAE:
    """Linear Gaussian VAE p(z) = N(0, I), x = W z + sigma eps, with its exact posterior.

    ``W = Q diag(scales)`` with Q ``(obs_dim, D)`` orthonormal columns, so W^T W =
    diag(scales^2) and the exact posterior covariance
    Sigma = (I + W^T W / sigma^2)^-1 is diagonal; its mean is Sigma W^T x / sigma^2.
    """
    s = np.asarray(scales, dtype=np.float64)
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((obs_dim, len(s))))
    w = q * s
    post_var = 1.0 / (1.0 + s**2 / sigma**2)
    a = (post_var[:, None] * w.T) / sigma**2
    return LinearVAE(w, sigma, a, np.log(post_var))


def sample_linear_data(model: LinearVAE, n: int, seed: int = 0) -> torch.Tensor:
    """x = W z + sigma eps with z, eps standard normal (numpy, seeded), ``(n, P)`` float64."""
    rng = np.random.default_rng(seed)
    w = model.W.numpy()
    z = rng.standard_normal((n, w.shape[1]))
    return torch.from_numpy(z @ w.T + model.sigma * rng.standard_normal((n, w.shape[0])))


def toy_vae(kinds: str, sigma: float = 0.5) -> LinearVAE:
    """Per-dimension behaviour by construction, one letter per dimension (x has D coordinates).

    ``u`` used (encoder 0.9 x_d, posterior var 0.1; decoder weight 1), ``i`` ignored
    (encoded, decoder weight 0), ``c`` collapsed (q = N(0, 1) = prior, decoder weight 1),
    ``n`` uninformative (q = N(0.5, 1) for every x: KL 0.125, Var[mu] = 0),
    ``z`` used by the encoder, decoder weight 0 (alias of ``i``).
    """
    scale = np.array([{"u": 0.9, "i": 0.9, "z": 0.9}.get(k, 0.0) for k in kinds])
    offset = np.array([0.5 if k == "n" else 0.0 for k in kinds])
    logvar = np.array([math.log(0.1) if k in "uiz" else 0.0 for k in kinds])
    weight = np.array([0.0 if k in "iz" else 1.0 for k in kinds])
    return LinearVAE(np.diag(weight), sigma, np.diag(scale), logvar, offset)


def toy_data(dim: int, n: int, seed: int = 0) -> torch.Tensor:
    """x = z + 0.3 eps, z and eps standard normal, ``(n, dim)`` float64."""
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.standard_normal((n, dim)) + 0.3 * rng.standard_normal((n, dim)))


def encoder_side(enc: Encodings, settings: Settings) -> tuple[Any, Any]:
    """KL and activity results, as ``analyze`` computes them."""
    return (kl_diagnostic(enc, eps=settings.kl_eps),
            activity_diagnostic(enc, threshold=settings.active_threshold))


@dataclass
class Analysis:
    """Everything the decoder-side tests look at."""

    enc: Encodings
    info: ModelInfo
    sens: SensitivityResult
    ident: IdentifiabilityResult
    verdict: VerdictResult


def analyze_toy(model: nn.Module, data: Any, settings: Settings, seed: int = 0) -> Analysis:
    """Encoder pass, sensitivity, identifiability and verdict, as ``analyze`` would run them."""
    model.eval()
    info = check_model(model, data)
    enc = encode_all(model, data, info, settings.batch_size)
    sens = sensitivity_diagnostic(model, data, enc, info, settings,
                                  generator_for(seed, "sensitivity"))
    ident = identifiability_diagnostic(model, data, enc, info, settings,
                                       generator_for(seed, "identifiability"),
                                       reconstruction=sens.reconstruction)
    kl, activity = encoder_side(enc, settings)
    return Analysis(enc, info, sens, ident, decide_verdict(kl, activity, sens, ident, settings))
