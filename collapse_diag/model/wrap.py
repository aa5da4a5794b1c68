"""``collapse_diag.wrap``: give any model the protocol, in code, without editing its class.

Example (a model whose encoder returns three values and whose decoder has its own name)::

    import collapse_diag

    model = collapse_diag.wrap(
        my_model,
        encode=lambda m, x: m.encoder(x)[:2],                       # -> (mu, logvar)
        log_likelihood=lambda m, x, z: -m.recon_loss(x, m.decoder(z)),  # -> [batch]
    )
    report = collapse_diag.analyze(model, x, seed=0)

Each function receives the wrapped object first, then the protocol's
arguments. The result is an ``nn.Module`` holding the object (when it is one),
so ``.to(device)``, ``.eval()`` and ``parameters()`` (for the dtype of the
inputs) reach it. Optional methods exist only when given, as the protocol
requires.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from collapse_diag.exceptions import invalid_parameter

__all__ = ["wrap", "Wrapped"]

_OPTIONAL = ("prior", "num_tokens", "tokenize", "latent_mask", "generate", "detokenize")


class Wrapped(nn.Module):
    """A model seen through user-given protocol functions (built by :func:`wrap`).

    Attributes:
        inner: The wrapped object.
    """

    def __init__(self, inner: Any, functions: dict[str, Callable[..., Any]]) -> None:
        super().__init__()
        if isinstance(inner, nn.Module):
            self.inner = inner
        else:
            object.__setattr__(self, "inner", inner)
        object.__setattr__(self, "_functions", dict(functions))

    def encode(self, x: Any) -> Any:
        """``encode(inner, x)`` -> ``(mu, logvar)``."""
        return self._functions["encode"](self.inner, x)

    def log_likelihood(self, x: Any, z: Any) -> Any:
        """``log_likelihood(inner, x, z)`` -> Tensor ``[batch]``."""
        return self._functions["log_likelihood"](self.inner, x, z)


def _method(name: str) -> Callable[..., Any]:
    def call(self: Wrapped, *args: Any) -> Any:
        return self._functions[name](self.inner, *args)

    call.__name__ = name
    call.__doc__ = f"``{name}(inner, ...)`` as given to :func:`wrap`."
    return call


def wrap(obj: Any, *, encode: Callable[..., Any], log_likelihood: Callable[..., Any],
         prior: Callable[..., Any] | None = None, num_tokens: Callable[..., Any] | None = None,
         tokenize: Callable[..., Any] | None = None,
         latent_mask: Callable[..., Any] | None = None,
         generate: Callable[..., Any] | None = None,
         detokenize: Callable[..., Any] | None = None) -> Wrapped:
    """Wrap ``obj`` so that it follows the model protocol (docs/model-protocol.md).

    Args:
        obj: The model (usually an ``nn.Module``).
        encode: ``encode(obj, x) -> (mu, logvar)``, each ``[batch, latent_dim]``.
        log_likelihood: ``log_likelihood(obj, x, z) -> Tensor[batch]``, log p(x|z).
        prior: Optional ``prior(obj, x) -> (mu, logvar)``.
        num_tokens: Optional ``num_tokens(obj, x) -> Tensor[batch]``.
        tokenize: Optional ``tokenize(obj, lines) -> x``.
        latent_mask: Optional ``latent_mask(obj, x) -> Tensor[batch, T]`` (sequential latents).
        generate: Optional ``generate(obj, z) -> Tensor[batch, ...]``: token ids or the
            decoder's mean (What the decoder makes of z).
        detokenize: Optional ``detokenize(obj, ids) -> list[str]``.

    Returns:
        A :class:`Wrapped` ``nn.Module`` with exactly the given methods.

    Raises:
        InvalidParameterError: a function that is not callable.
    """
    functions = {"encode": encode, "log_likelihood": log_likelihood, "prior": prior,
                 "num_tokens": num_tokens, "tokenize": tokenize, "latent_mask": latent_mask,
                 "generate": generate, "detokenize": detokenize}
    for name, function in functions.items():
        if function is not None and not callable(function):
            raise invalid_parameter(name, "wrap", "a callable taking the wrapped object first",
                                    function)
    given = {k: v for k, v in functions.items() if v is not None}
    for name in ("encode", "log_likelihood"):
        if name not in given:
            raise invalid_parameter(name, "wrap", "a callable", None)
    extra = {name: _method(name) for name in _OPTIONAL if name in given}
    cls = type("Wrapped", (Wrapped,), extra) if extra else Wrapped
    return cls(obj, given)
