"""The ``lightning`` adapter: a Lightning ``.ckpt`` file, read without importing Lightning.

A Lightning checkpoint is a ``torch.save`` dict; the keys used here are
``state_dict`` (the LightningModule's weights) and ``hyper_parameters`` (what
``save_hyperparameters()`` recorded: the LightningModule's ``__init__``
arguments). The VAE the analysis needs is usually an attribute of the module
(``self.model = VAE(...)``), so:

* the factory is the VAE's class, named by the user (``--factory``): the file
  names only the LightningModule, whose import would pull in Lightning;
* the config is ``hyper_parameters`` restricted to the arguments the factory
  accepts (by its signature: ``lr``, ``batch_size`` and the like are dropped;
  a factory taking ``**kwargs`` gets them all); ``--config`` overrides it;
* the weights are those named with ``--state-dict-prefix`` (``model.`` for
  ``self.model``), stripped of it; without it the wrapper prefixes every name
  carries are stripped (collapse_diag/io/prefixes.py).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from collapse_diag.exceptions import CheckpointError
from collapse_diag.io.checkpoint_kinds import LIGHTNING_KEYS, is_lightning_payload
from collapse_diag.io.factory import resolve_factory
from collapse_diag.io.files import display_path
from collapse_diag.io.model_building import (
    build_model,
    check_config,
    config_argument,
    find_state_dict,
    finish,
    read_payload,
)

__all__ = ["load_lightning", "from_payload", "factory_arguments", "fitting_config"]


def factory_arguments(build: Any, hyper_parameters: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of ``hyper_parameters`` that ``build`` accepts as keyword arguments.

    Args:
        build: The factory (a class or function).
        hyper_parameters: The checkpoint's ``hyper_parameters``.

    Returns:
        Those entries whose name is a parameter of ``build`` (all of them if
        ``build`` takes ``**kwargs``).
    """
    try:
        params = inspect.signature(build).parameters.values()
    except (TypeError, ValueError):
        return dict(hyper_parameters)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return dict(hyper_parameters)
    names = {p.name for p in params if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                                  inspect.Parameter.KEYWORD_ONLY)}
    return {k: v for k, v in hyper_parameters.items() if k in names}


def fitting_config(hyper: Mapping[str, Any], factory: str, key: str,
                   shown: str) -> tuple[dict[str, Any], str]:
    """``(config, source)``: the entries of a checkpoint's ``key`` dict the factory accepts.

    ``source`` says so in words for the report (``checkpoint.config_source``),
    naming the entries dropped.
    """
    config = check_config(factory_arguments(resolve_factory(factory), hyper),
                          f"the {key} of {shown!r}")
    dropped = sorted(str(k) for k in hyper if k not in config)
    return config, (f"the checkpoint's {key}, as they fit the factory's signature"
                    + (f" (dropped {dropped[:10]})" if dropped else ""))


def from_payload(payload: Mapping[str, Any], path: Path, sha: str, factory: str | None,
                 config: dict[str, Any] | None, prefix: str | None) -> Any:
    """Build the model of an already read Lightning checkpoint dict.

    Returns:
        A :class:`~collapse_diag.io.checkpoint.LoadedCheckpoint` (adapter ``lightning``).
    """
    shown = display_path(path)
    if factory is None:
        hyper = payload.get("hyper_parameters")
        names = sorted(map(str, hyper))[:10] if isinstance(hyper, Mapping) else []
        raise CheckpointError(
            f"checkpoint {shown!r} is a Lightning checkpoint (weights under 'state_dict', "
            f"hyper_parameters {names}): "
            "name the class of the VAE inside the LightningModule with --factory module:Class "
            "(and its attribute with --state-dict-prefix, e.g. model.); docs/adapters.md."
        )
    source = ""
    if config is None:
        hyper = payload.get("hyper_parameters") or {}
        if not isinstance(hyper, Mapping):
            raise CheckpointError(f"'hyper_parameters' of {shown!r} is a "
                                  f"{type(hyper).__name__}, not a dict: pass --config cfg.json.")
        config, source = fitting_config(hyper, factory, "hyper_parameters", shown)
    state = find_state_dict(payload, path, prefix)
    model = build_model(factory, config, state, path, from_file=False)
    loaded = finish(model, payload.get("data"), payload.get("labels"), path, sha, factory,
                    config, "lightning")
    loaded.config_source = source
    return loaded


def load_lightning(path: str | Path, factory: str | None = None, config: Any = None,
                   trust_checkpoint: bool = False, state_dict_prefix: str | None = None) -> Any:
    """The ``lightning`` adapter (``--adapter lightning``): see the module docstring."""
    config = config_argument(config)
    path, payload, sha = read_payload(path, trust_checkpoint)
    if not isinstance(payload, Mapping) or "state_dict" not in payload or not (
            is_lightning_payload(payload) or "hyper_parameters" in payload or config):
        keys = sorted(map(str, payload))[:30] if isinstance(payload, Mapping) else []
        raise CheckpointError(
            f"checkpoint {display_path(path)!r} is not a Lightning checkpoint: it lacks "
            f"{[k for k in LIGHTNING_KEYS if k not in keys]} (keys {keys}); drop --adapter "
            "lightning or pass --config."
        )
    return from_payload(payload, path, sha, factory, config, state_dict_prefix)
