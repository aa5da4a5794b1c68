"""The ``native`` adapter: the collapse-diag format, or a plain state dict with a factory.

The format is described in :mod:`collapse_diag.io.checkpoint` and
docs/model-protocol.md. A dict that is a Lightning checkpoint is handed to
:mod:`collapse_diag.io.adapters.lightning` (auto-detection by its keys).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

from collapse_diag.exceptions import CheckpointError
from collapse_diag.io.adapters.lightning import fitting_config, from_payload
from collapse_diag.io.checkpoint_kinds import is_lightning_payload
from collapse_diag.io.files import display_path
from collapse_diag.io.model_building import (
    _FIX_FORMAT,
    FORMAT_VERSION,
    STATE_DICT_KEYS,
    LoadedCheckpoint,
    _short,
    build_model,
    check_config,
    config_argument,
    find_state_dict,
    finish,
    read_payload,
)

__all__ = ["CONFIG_KEYS", "load_native"]

#: Keys under which training scripts store the model's arguments: with a factory named by
#: the user and no --config, the first one holding a dict is the config, filtered by the
#: factory's signature (as a Lightning file's hyper_parameters).
CONFIG_KEYS = ("hparams", "hyper_parameters", "config", "model_config", "model_args", "args")


def load_native(
    path: str | Path,
    factory: str | None = None,
    config: Mapping[str, Any] | str | Path | None = None,
    trust_checkpoint: bool = False,
    state_dict_prefix: str | None = None,
) -> LoadedCheckpoint:
    """The ``native`` adapter: the collapse-diag format or a plain state dict (+ factory)."""
    config = config_argument(config)
    path, payload, sha = read_payload(path, trust_checkpoint)
    shown = display_path(path)
    if is_lightning_payload(payload):
        return from_payload(payload, path, sha, factory, config, state_dict_prefix)
    model: Any = None
    used_factory = factory
    used_config: dict[str, Any] = dict(config or {})
    data = labels = None
    source = ""
    if isinstance(payload, nn.Module):
        model = payload
    elif isinstance(payload, Mapping):
        data, labels = payload.get("data"), payload.get("labels")
        if "collapse_diag" in payload:
            version = payload["collapse_diag"]
            if type(version) is not int or version != FORMAT_VERSION:
                raise CheckpointError(
                    f"checkpoint {shown!r} has format version {_short(version)}; "
                    f"this collapse-diag reads version {FORMAT_VERSION}."
                )
            missing = [k for k in ("factory", "state_dict") if k not in payload]
            if missing and factory is None:
                raise CheckpointError(
                    f"checkpoint {shown!r} lacks the key(s) {missing}; {_FIX_FORMAT}."
                )
            if config is None and payload.get("config") is not None:
                used_config = check_config(payload["config"], f"the 'config' of {shown!r}")
        if isinstance(payload.get("model"), nn.Module):
            model = payload["model"]  # only reachable with trust_checkpoint
        else:
            from_file = factory is None
            if factory is not None and config is None and "collapse_diag" not in payload:
                used_config, source = _stored_config(payload, factory, shown)
            used_factory = factory or payload.get("factory")
            if used_factory is None:
                raise CheckpointError(_not_in_format(payload, shown))
            state = find_state_dict(payload, path, state_dict_prefix)
            model = build_model(used_factory, used_config, state, path, from_file)
    else:
        raise CheckpointError(
            f"checkpoint {shown!r} holds a {type(payload).__name__}, not a dict or "
            f"a model; {_FIX_FORMAT}."
        )
    loaded = finish(model, data, labels, path, sha, used_factory, used_config, "native")
    loaded.config_source = source
    return loaded


def _stored_config(payload: Mapping[str, Any], factory: str,
                   shown: str) -> tuple[dict[str, Any], str]:
    """The first dict under :data:`CONFIG_KEYS` that gives keyword arguments, else ``{}``."""
    for key in CONFIG_KEYS:
        if isinstance(payload.get(key), Mapping) and payload[key]:
            try:
                return fitting_config(payload[key], factory, key, shown)
            except CheckpointError:  # names that are not keyword arguments: not a config
                continue
    return {}, ""


def _not_in_format(payload: Mapping[str, Any], shown: str) -> str:
    """The message for a dict without a factory: every key (up to 30), and where weights are."""
    keys = sorted(map(str, payload))
    listed = keys[:30] + ([f"... {len(keys) - 30} more"] if len(keys) > 30 else [])
    where = next((k for k in STATE_DICT_KEYS if isinstance(payload.get(k), Mapping)), None)
    weights = f"its weights are under {where!r}; " if where else ""
    return (f"checkpoint {shown!r} is not in the collapse-diag format (no 'collapse_diag' key; "
            f"keys {listed}): {weights}pass --factory module:callable (and --config cfg.json) "
            f"to build the model from its state dict; {_FIX_FORMAT}.")
