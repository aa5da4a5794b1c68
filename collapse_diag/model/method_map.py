"""A method map: the protocol from a model's own methods, named in strings (``--map``).

Most glue people write is a rename: the model *has* an encoder and a
likelihood, under other names or with another return shape. A map names them::

    collapse-diag analyze run.ckpt --map encode=encode_stats:mu_std \
                                   --map log_likelihood=-recon_loss:sum

    model = collapse_diag.map_methods(model, {"encode": "vae.encoder:dist",
                                              "log_likelihood": "-nll"})

One entry per protocol method, ``NAME=[-]ATTRIBUTE[:FORM]``:

* ``ATTRIBUTE`` is a method of the model, a dotted path for one held inside it
  (``vae.encode``, ``model.encoder``); it is called with the protocol's
  arguments (``encode(x)``, ``log_likelihood(x, z)``, ``prior(x)``,
  ``num_tokens(x)``, ``tokenize(lines)``).
* ``encode`` / ``prior`` forms: what the method returns, turned into
  ``(mu, logvar)``: ``mu_logvar`` (default), ``mu_std``, ``mu_log_std``,
  ``mu_var`` (a tuple or list whose first two items are those), ``dist`` (a
  ``torch.distributions.Normal``, or ``Independent`` of one), ``dict`` (a
  mapping with a mean under ``mu``/``mean``/``loc`` and one of ``logvar``/
  ``log_var`` (log-variance), ``std``/``scale`` or ``log_std``/``log_scale``).
* ``log_likelihood`` forms, the reduction of what it returns: ``sum``
  (default: summed over every dimension but the batch's, so ``[batch]``,
  per-token ``[batch, T]`` and per-pixel values all work) or ``mean`` (a mean
  per token: multiplied by ``num_tokens(x)``). A leading ``-`` says the method
  returns a loss / negative log-likelihood, so its value is negated.

Every map is checked when it is built (known names and forms, attributes that
exist and are callable) and recorded: the wrapped model's ``method_map`` is
stored in the report's ``provenance.method_map``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from collapse_diag.exceptions import InvalidParameterError, ProtocolError
from collapse_diag.model.wrap import Wrapped, wrap

__all__ = ["ENCODER_FORMS", "LIKELIHOOD_FORMS", "MAPPABLE", "map_methods", "parse_map"]

#: The protocol methods a map may name.
MAPPABLE = ("encode", "log_likelihood", "prior", "num_tokens", "tokenize")
#: Return forms of ``encode`` / ``prior``.
ENCODER_FORMS = ("mu_logvar", "mu_std", "mu_log_std", "mu_var", "dist", "dict")
#: Reductions of ``log_likelihood``.
LIKELIHOOD_FORMS = ("sum", "mean")
_MEAN_KEYS = ("mu", "mean", "loc")
_SPREAD_KEYS = {"logvar": "logvar", "log_var": "logvar", "std": "std", "scale": "std",
                "log_std": "log_std", "log_scale": "log_std", "var": "var"}


def parse_map(entries: Mapping[str, str] | list[str] | tuple[str, ...]) -> dict[str, str]:
    """``["encode=enc:mu_std", ...]`` (or a dict) as ``{protocol name: spec}``, checked.

    Raises:
        InvalidParameterError: an entry without ``=``, an unknown name or form, a repeat.
    """
    if isinstance(entries, Mapping):
        pairs = [(str(k), str(v)) for k, v in entries.items()]
    else:
        pairs = []
        for entry in entries:
            name, sep, spec = str(entry).partition("=")
            if not sep or not name.strip() or not spec.strip():
                raise _bad(entry, "NAME=[-]ATTRIBUTE[:FORM], e.g. encode=encode_stats:mu_std")
            pairs.append((name.strip(), spec.strip()))
    out: dict[str, str] = {}
    for name, spec in pairs:
        if name not in MAPPABLE:
            raise _bad(name, f"one of {', '.join(MAPPABLE)}")
        if name in out:
            raise _bad(name, "each protocol method mapped once")
        negate, attribute, form = _split(spec)
        forms = (ENCODER_FORMS if name in ("encode", "prior") else
                 LIKELIHOOD_FORMS if name == "log_likelihood" else ())
        if form is not None and form not in forms:
            raise _bad(spec, f"a form of {name} from {', '.join(forms) or 'none'}")
        if negate and name != "log_likelihood":
            raise _bad(spec, "a leading '-' only for log_likelihood (a loss to negate)")
        if not attribute or not all(p.isidentifier() for p in attribute.split(".")):
            raise _bad(spec, "an attribute name or dotted path")
        out[name] = spec
    return out


def _bad(value: Any, expected: str) -> InvalidParameterError:
    return InvalidParameterError(f"The 'map' parameter of map_methods must be {expected}. "
                                 f"Got {value!r} instead.")


def _split(spec: str) -> tuple[bool, str, str | None]:
    negate = spec.startswith("-")
    attribute, _, form = spec.lstrip("-").partition(":")
    return negate, attribute.strip(), form.strip() or None


def _resolve(model: Any, path: str) -> Callable[..., Any]:
    target = model
    for part in path.split("."):
        if part.startswith("__") or not hasattr(target, part):
            raise ProtocolError(f"the method map names {path!r}, but {type(target).__name__} has "
                                f"no attribute {part!r}: check the name (--map NAME=ATTRIBUTE).")
        target = getattr(target, part)
    if not callable(target):
        raise ProtocolError(f"the method map names {path!r}, which is not callable.")
    return target


def _gaussian(out: Any, form: str, method: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mu, logvar)`` from what an encoder / prior returned, read as ``form``."""
    if form == "dist":
        base = getattr(out, "base_dist", out)
        loc, scale = getattr(base, "loc", None), getattr(base, "scale", None)
        if not isinstance(loc, torch.Tensor) or not isinstance(scale, torch.Tensor):
            raise ProtocolError(f"{method} was mapped with form 'dist' but returned "
                                f"{type(out).__name__}, not a Normal (or Independent Normal).")
        return loc, 2.0 * torch.log(scale)
    if form == "dict":
        if not isinstance(out, Mapping):
            raise ProtocolError(f"{method} was mapped with form 'dict' but returned "
                                f"{type(out).__name__}.")
        mean = next((out[k] for k in _MEAN_KEYS if k in out), None)
        spread = next(((k, out[k]) for k in _SPREAD_KEYS if k in out), None)
        if mean is None or spread is None:
            raise ProtocolError(f"{method} returned a dict with keys {sorted(map(str, out))}: "
                                f"expected a mean under {list(_MEAN_KEYS)} and a spread under "
                                f"{list(_SPREAD_KEYS)}.")
        return mean, _logvar(spread[1], _SPREAD_KEYS[spread[0]])
    if not isinstance(out, (tuple, list)) or len(out) < 2:
        raise ProtocolError(f"{method} was mapped with form {form!r} (a tuple (mean, spread)) "
                            f"but returned {type(out).__name__}.")
    return out[0], _logvar(out[1], form.removeprefix("mu_"))


def _logvar(spread: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "logvar":
        return spread
    if kind == "std":
        return 2.0 * torch.log(spread)
    if kind == "log_std":
        return 2.0 * spread
    return torch.log(spread)  # var


def map_methods(model: Any, mapping: Mapping[str, str] | list[str]) -> Wrapped:
    """``model`` seen through a method map (module docstring); unmapped methods are its own.

    Args:
        model: The loaded model.
        mapping: ``{protocol name: spec}`` or ``["name=spec", ...]``.

    Returns:
        A :class:`~collapse_diag.model.wrap.Wrapped` model with ``method_map`` set.

    Raises:
        InvalidParameterError: a malformed map.
        ProtocolError: an attribute the model does not have or that is not callable.
    """
    specs = parse_map(mapping)
    functions: dict[str, Callable[..., Any]] = {}
    for name in (*MAPPABLE, "latent_mask"):
        if name in specs:
            negate, attribute, form = _split(specs[name])
            functions[name] = _mapped(name, _resolve(model, attribute), negate, form, functions)
        elif callable(getattr(model, name, None)):
            functions[name] = _own(name)
    for name in ("encode", "log_likelihood"):
        if name not in functions:
            raise ProtocolError(f"the model has no {name} and the method map names none: add "
                                f"--map {name}=ATTRIBUTE (docs/adapters.md#method-map).")
    wrapped = wrap(model, **functions)
    object.__setattr__(wrapped, "method_map", dict(specs))
    return wrapped


def _own(name: str) -> Callable[..., Any]:
    return lambda inner, *args: getattr(inner, name)(*args)


def _mapped(name: str, method: Callable[..., Any], negate: bool, form: str | None,
            functions: Mapping[str, Callable[..., Any]]) -> Callable[..., Any]:
    """The protocol function of one map entry; ``functions``: all of them (num_tokens)."""
    shown = f"{name} (mapped)"
    if name in ("encode", "prior"):
        return lambda inner, *args: _gaussian(method(*args), form or "mu_logvar", shown)
    if name == "log_likelihood":
        sign = -1.0 if negate else 1.0

        def log_likelihood(inner: Any, x: Any, z: torch.Tensor) -> torch.Tensor:
            out = method(x, z)
            if not isinstance(out, torch.Tensor) or out.dim() == 0:
                raise ProtocolError(f"{shown} must return a Tensor with a batch dimension; "
                                    f"got {type(out).__name__} {tuple(getattr(out, 'shape', ()))}.")
            total = out.reshape(out.shape[0], -1).sum(dim=1) if out.dim() > 1 else out
            if form == "mean":
                if "num_tokens" not in functions:
                    raise ProtocolError(f"{shown} is a mean per token (form 'mean'), which "
                                        "needs num_tokens(x) to be turned into a sum.")
                total = total * functions["num_tokens"](inner, x).to(total.dtype)
            return sign * total

        return log_likelihood
    return lambda inner, *args: method(*args)

