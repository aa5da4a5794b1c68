"""The duck-typed model protocol and its up-front check.

A model needs no base class of ours. It must have::

    encode(x) -> (mu, logvar)          Tensors [batch, latent_dim]: q(z|x) = N(mu, exp(logvar))
    log_likelihood(x, z) -> Tensor[batch]   log p(x|z), summed over the observation

and may have::

    prior(x) -> (mu, logvar)           learned / conditional Gaussian prior (default N(0, I))
    num_tokens(x) -> Tensor[batch]     size of each observation (for per-token figures)
    tokenize(lines) -> x               turns text lines into a batch (for ``--data file.txt``)

:func:`check_model` validates all of this once, on one small batch, and names
the method, the expected and the actual value, and a fix. The ``call_*``
helpers are the checked calls every diagnostic goes through.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from collapse_diag.data import Batch, num_examples, take
from collapse_diag.exceptions import DiagnosticError, ProtocolError

__all__ = [
    "ModelInfo",
    "check_model",
    "call_encode",
    "call_prior",
    "call_log_likelihood",
    "call_num_tokens",
]

_DOCS = "see docs/model-protocol.md"


@dataclass(frozen=True)
class ModelInfo:
    """What :func:`check_model` learned about a model.

    Attributes:
        latent_dim: Size of z.
        dtype: Floating dtype of the encoder output; z is fed back in this dtype.
        has_prior: The model defines ``prior(x)``.
        has_num_tokens: The model defines ``num_tokens(x)``.
        has_tokenize: The model defines ``tokenize(lines)``.
    """

    latent_dim: int
    dtype: torch.dtype
    has_prior: bool
    has_num_tokens: bool
    has_tokenize: bool


def _require_method(model: Any, name: str, signature: str) -> None:
    if not callable(getattr(model, name, None)):
        raise ProtocolError(
            f"the model ({type(model).__name__}) has no method {name}: add "
            f"`def {signature}` ({_DOCS})."
        )


def _check_pair(out: Any, method: str, batch: int, latent_dim: int | None) -> tuple:
    if not (isinstance(out, (tuple, list)) and len(out) == 2):
        raise ProtocolError(
            f"{method} must return a pair (mu, logvar) of Tensors [batch, latent_dim]; "
            f"got {type(out).__name__}. Return `mu, logvar` ({_DOCS})."
        )
    for name, t in zip(("mu", "logvar"), out):
        _check_tensor(t, f"{method} {name}", (batch, latent_dim), floating=True)
    if out[0].shape != out[1].shape:
        raise ProtocolError(
            f"{method} returned mu of shape {tuple(out[0].shape)} but logvar of shape "
            f"{tuple(out[1].shape)}: both must be [batch, latent_dim]."
        )
    return out[0], out[1]


def _check_tensor(
    t: Any,
    what: str,
    shape: tuple[int | None, ...],
    floating: bool,
    error: type[Exception] = ProtocolError,
) -> None:
    names = ("batch", "latent_dim")
    expected = "[" + ", ".join(
        names[i] if s is None else f"{names[i]}={s}" for i, s in enumerate(shape)
    ) + "]"
    if not isinstance(t, torch.Tensor):
        raise error(f"{what} must be a Tensor {expected}; got {type(t).__name__}.")
    if t.dim() != len(shape) or any(s is not None and s != a for s, a in zip(shape, t.shape)):
        raise error(
            f"{what} must have shape {expected}; got {tuple(t.shape)}. "
            "Keep the batch dimension first and reduce everything else."
        )
    if floating and not t.is_floating_point():
        raise error(f"{what} must be a floating-point Tensor; got dtype {t.dtype}.")
    if not bool(torch.isfinite(t).all()):
        bad = int((~torch.isfinite(t)).sum())
        raise error(
            f"{what} contains {bad} NaN/Inf value(s): check the model's weights and "
            "numerics (e.g. clamp logvar, use log-softmax) before analysing it."
        )


def call_encode(model: Any, x: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """``model.encode(x)``, checked: a finite pair of Tensors ``[batch, latent_dim]``."""
    return _check_pair(model.encode(x), "encode(x)", num_examples(x), None)


def call_prior(model: Any, x: Batch, latent_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``model.prior(x)``, checked like :func:`call_encode`."""
    return _check_pair(model.prior(x), "prior(x)", num_examples(x), latent_dim)


def call_log_likelihood(model: Any, x: Batch, z: torch.Tensor) -> torch.Tensor:
    """``model.log_likelihood(x, z)``, checked: finite, shape ``[batch]``.

    Raises:
        DiagnosticError: the decoder returned a wrong shape or NaN/Inf during a
            diagnostic (the up-front :func:`check_model` raises ProtocolError instead).
    """
    out = model.log_likelihood(x, z)
    _check_tensor(
        out, "log_likelihood(x, z)", (z.shape[0],), floating=True, error=DiagnosticError
    )
    return out


def call_num_tokens(model: Any, x: Batch) -> torch.Tensor:
    """``model.num_tokens(x)``, checked: shape ``[batch]``, positive."""
    out = model.num_tokens(x)
    _check_tensor(out, "num_tokens(x)", (num_examples(x),), floating=False)
    if bool((out <= 0).any()):
        raise ProtocolError("num_tokens(x) must be positive for every example.")
    return out


def check_model(model: Any, batch: Batch) -> ModelInfo:
    """Validate the model protocol once, on a small batch, before any diagnostic runs.

    Calls every method the model defines on (at most 4 examples of) ``batch``
    under ``torch.no_grad()`` and checks types, shapes, dtypes and finiteness.

    Args:
        model: The model to check.
        batch: Inputs (Tensor or dict of Tensors) on the model's device.

    Returns:
        A :class:`ModelInfo` describing the model.

    Raises:
        ProtocolError: naming the method, what was expected, what came back and a fix.
    """
    _require_method(model, "encode", "encode(self, x) -> (mu, logvar)")
    _require_method(model, "log_likelihood", "log_likelihood(self, x, z) -> Tensor[batch]")
    small = take(batch, slice(0, min(4, num_examples(batch))))
    n = num_examples(small)
    try:
        with torch.no_grad():
            mu, _ = call_encode(model, small)
            latent_dim = int(mu.shape[1])
            if latent_dim == 0:
                raise ProtocolError("encode(x) returned latent_dim 0: z must have a dimension.")
            has_prior = callable(getattr(model, "prior", None))
            if has_prior:
                call_prior(model, small, latent_dim)
            try:
                call_log_likelihood(model, small, mu)
            except DiagnosticError as err:
                raise ProtocolError(str(err)) from err
            has_num_tokens = callable(getattr(model, "num_tokens", None))
            if has_num_tokens:
                call_num_tokens(model, small)
    except ProtocolError:
        raise
    except Exception as err:  # noqa: BLE001 - a crash inside the user's model
        raise ProtocolError(
            f"calling the model on a batch of {n} example(s) failed with "
            f"{type(err).__name__}: {err} (the model must accept the data as stored; {_DOCS})"
        ) from err
    return ModelInfo(
        latent_dim=latent_dim,
        dtype=mu.dtype,
        has_prior=has_prior,
        has_num_tokens=has_num_tokens,
        has_tokenize=callable(getattr(model, "tokenize", None)),
    )
