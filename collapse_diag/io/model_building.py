"""Building a model from a checkpoint's parts: the API the native reader and the adapters share.

Every reader (collapse_diag/io/checkpoint.py for the native format, the adapters
under collapse_diag/io/adapters/ for other tools' files) reads a file with
:func:`read_payload`, finds the weights with :func:`find_state_dict`, builds the
model with :func:`build_model` (factory rule: collapse_diag/io/factory.py) and
packs the result with :func:`finish`. This module imports no reader, so the
readers depend on it and never on each other.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from collapse_diag.config.limits import check_json_text, check_nesting
from collapse_diag.exceptions import CheckpointError, DataError
from collapse_diag.io.checkpoint_kinds import is_torchscript_archive
from collapse_diag.io.data import Batch, num_examples, validate_data
from collapse_diag.io.factory import resolve_factory
from collapse_diag.io.files import (
    MAX_CONFIG_BYTES,
    check_zip_sizes,
    display_path,
    read_text_limited,
    require_regular_file,
)
from collapse_diag.io.prefixes import keep_prefix, seen_prefixes, strip_wrapper_prefixes
from collapse_diag.io.torch_files import read_torch_file

__all__ = [
    "FORMAT_VERSION",
    "STATE_DICT_KEYS",
    "LoadedCheckpoint",
    "build_model",
    "check_config",
    "config_argument",
    "file_sha256",
    "find_state_dict",
    "finish",
    "fit_weights",
    "read_config",
    "read_payload",
]

FORMAT_VERSION = 1
STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model")
_FIX_FORMAT = "see docs/model-protocol.md for the checkpoint format"


@dataclass
class LoadedCheckpoint:
    """A loaded checkpoint. Unpacks as ``model, data = load_checkpoint(path)``.

    Attributes:
        model: The rebuilt model (weights loaded, on the CPU, in eval mode).
        data: Evaluation inputs stored in the file, or ``None``.
        labels: Known factors per input (name -> integer Tensor ``[n]``), or ``None``.
        path: The file read.
        sha256: SHA-256 of the file's bytes.
        factory: The factory used, ``"module:callable"``, or ``None`` for a pickled model.
        config: The keyword arguments the factory was called with.
        adapter: The adapter that read the file (:data:`collapse_diag.io.adapters.ADAPTERS`).
        config_source: Where ``config`` came from, in words, when an adapter chose it
            (a Lightning file's ``hyper_parameters``, the folders of a Hugging Face model);
            empty otherwise.
    """

    model: Any
    data: Batch | None
    labels: dict[str, torch.Tensor] | None = None
    path: Path | None = None
    sha256: str = ""
    factory: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    adapter: str = "native"
    config_source: str = ""

    def __iter__(self):
        """Yield ``model`` then ``data``, so the result unpacks as a pair."""
        yield self.model
        yield self.data


def file_sha256(path: str | Path) -> str:
    """SHA-256 hex digest of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _short(value: Any) -> str:
    text = repr(value) if isinstance(value, (int, float, str, bool, type(None))) else (
        f"of type {type(value).__name__}")
    return text if len(text) <= 60 else text[:57] + "..."


def read_config(path: Path) -> dict[str, Any]:
    """Read a JSON config file (size-limited) as the factory's keyword arguments."""
    text = read_text_limited(path, "config file", MAX_CONFIG_BYTES, CheckpointError)
    check_json_text(text, f"config file {display_path(path)!r}", CheckpointError)
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as err:
        raise CheckpointError(
            f"cannot read config file {display_path(path)!r}: not valid JSON ({err})."
        ) from err
    return check_config(value, f"config file {display_path(path)!r}")


def find_state_dict(payload: Mapping[str, Any], path: Path,
                     prefix: str | None = None) -> dict[str, torch.Tensor]:
    """The weights of a checkpoint dict, string-keyed; ``prefix`` kept, else wrappers stripped."""
    state = _state_dict_of(payload)
    if state is None:
        raise CheckpointError(
            f"checkpoint {display_path(path)!r} has no weights: expected a state dict under one of "
            f"{list(STATE_DICT_KEYS)} or at the top level; found keys {sorted(map(str, payload))}."
        )
    state = dict(state)
    if not all(isinstance(k, str) for k in state):
        raise CheckpointError(
            f"the weights in {display_path(path)!r} have non-string names "
            f"{[_short(k) for k in state if not isinstance(k, str)][:5]}: a state dict maps "
            "parameter names to Tensors."
        )
    if prefix:
        return keep_prefix(state, prefix, repr(display_path(path)))
    return strip_wrapper_prefixes(state)


def _state_dict_of(payload: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The state dict of a checkpoint dict: under :data:`STATE_DICT_KEYS`, or the dict itself."""
    state = None
    for key in STATE_DICT_KEYS:
        if isinstance(payload.get(key), Mapping):
            state = payload[key]
            break
    if state is None and payload and all(isinstance(v, torch.Tensor) for v in payload.values()):
        state = payload
    return state


def check_config(config: Any, where: str) -> dict[str, Any]:
    """``config`` as a dict of keyword arguments; ``where`` names its source in the error."""
    if not isinstance(config, Mapping) or not all(
            isinstance(k, str) and k.isidentifier() for k in config):
        raise CheckpointError(
            f"the model config ({where}) must be a JSON object / dict of keyword arguments "
            f"(names -> values); got {type(config).__name__}"
            + (f" with keys {sorted(map(repr, config))[:5]}" if isinstance(config, Mapping)
               else "") + "."
        )
    check_nesting(config, f"the model config ({where})", CheckpointError)
    return dict(config)


def fit_weights(model: nn.Module, state: dict, path: Path, factory: str) -> None:
    """Load ``state`` into ``model`` strictly; every mismatch is one CheckpointError line."""
    shown = display_path(path)
    bad = sorted(str(k) for k, v in state.items() if not isinstance(v, torch.Tensor))
    if bad:
        raise CheckpointError(f"the weights in {shown!r} hold non-Tensor values under "
                              f"{bad[:5]}: a state dict maps names to Tensors.")
    try:
        own = model.state_dict()
    except (Exception, SystemExit):  # noqa: BLE001 - user hooks; load_state_dict will say
        own = {}
    for name, value in state.items():
        target = own.get(name)
        if isinstance(target, torch.Tensor) and (
                target.is_floating_point() != value.is_floating_point()
                or target.is_complex() != value.is_complex()):
            raise CheckpointError(
                f"the weights in {shown!r} do not fit the model built by {factory}: {name!r} "
                f"has dtype {value.dtype}, the model's has {target.dtype}."
            )
    try:
        result = model.load_state_dict(state, strict=False)
    except (Exception, SystemExit) as err:  # noqa: BLE001 - size / dtype mismatches, user hooks
        detail = " ".join(str(err).split())[:400]
        raise CheckpointError(
            f"the weights in {shown!r} do not fit the model built by {factory}: {detail} "
            "(is the config the one used in training?)."
        ) from err
    missing, unexpected = list(result.missing_keys), list(result.unexpected_keys)
    if missing or unexpected:
        parts = ([f"missing keys {missing[:5]}"] if missing else []) + (
            [f"unexpected keys {unexpected[:5]}"] if unexpected else [])
        prefixes = seen_prefixes(state)
        hint = (f"; the file's names start with {prefixes}: keep the model's part with "
                "--state-dict-prefix PREFIX" if unexpected and prefixes else "")
        raise CheckpointError(
            f"the weights in {shown!r} do not fit the model built by {factory}: "
            f"{', '.join(parts)}{hint} (is the config the one used in training?)."
        )


def build_model(factory: str, config: dict, state: dict, path: Path, from_file: bool) -> Any:
    """``factory(**config)`` under the factory rule (``from_file``: named by the file), fitted."""
    build = resolve_factory(factory, from_file=from_file)
    try:
        model = build(**config)
    except (Exception, SystemExit) as err:  # noqa: BLE001 - user factory failure
        first = str(err).splitlines()[0] if str(err) else ""
        raise CheckpointError(
            f"factory {factory}(**config) failed with {type(err).__name__}: {first} "
            "(check --config / the checkpoint's 'config')."
        ) from err
    if isinstance(model, nn.Module):
        fit_weights(model, state, path, factory)
    return model


def _labels(raw: Any, n: int | None, path: Path) -> dict[str, torch.Tensor] | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping) or not all(isinstance(v, torch.Tensor) for v in raw.values()):
        raise DataError(
            f"'labels' in {display_path(path)!r} must be a dict of name -> integer Tensor."
        )
    out = {}
    for name, values in raw.items():
        if (values.dim() != 1 or values.is_floating_point() or values.is_complex()
                or values.dtype == torch.bool or (n is not None and len(values) != n)):
            raise DataError(
                f"labels[{name!r}] in {display_path(path)!r} must be a 1-D integer (not bool) "
                f"Tensor with one value per input ({n}); got dtype {values.dtype}, "
                f"shape {tuple(values.shape)}."
            )
        out[str(name)] = values
    return out


def read_payload(path: str | Path, trust_checkpoint: bool) -> tuple[Path, Any, str]:
    """Check, size-check and ``torch.load`` a checkpoint file: ``(path, payload, sha256)``."""
    raw = path
    if os.path.isdir(raw):
        raise CheckpointError(
            f"checkpoint {display_path(raw)!r} is a folder: give a checkpoint file, a pythae "
            "model folder (holding model.pt and model_config.json) or a Hugging Face "
            "save_pretrained folder (config.json and its weights; docs/adapters.md)."
        )
    path = require_regular_file(raw, "checkpoint", CheckpointError)
    check_zip_sizes(path, "checkpoint", CheckpointError)
    if is_torchscript_archive(path):
        raise CheckpointError(
            f"checkpoint {display_path(path)!r} is a TorchScript archive (torch.jit.save), not a "
            "torch.save file: read it with --adapter torchscript (docs/adapters.md)."
        )
    payload = read_torch_file(path, "checkpoint", trust_checkpoint, CheckpointError)
    return path, payload, file_sha256(path)


def config_argument(config: Mapping[str, Any] | str | Path | None) -> dict[str, Any] | None:
    """A config given by the caller: a dict, a JSON file path, or ``None``."""
    if isinstance(config, (str, Path)):
        return read_config(Path(config))
    return None if config is None else check_config(config, "the config argument")


def finish(model: Any, data: Any, labels: Any, path: Path, sha: str, factory: str | None,
           config: dict[str, Any], adapter: str) -> LoadedCheckpoint:
    """Validate stored data and labels, switch the model to eval mode, pack the result."""
    if data is not None:
        data = validate_data(data, f"the data stored in {display_path(path)!r}")
    labels = _labels(labels, num_examples(data) if data is not None else None, path)
    if isinstance(model, nn.Module):
        model.eval()
    return LoadedCheckpoint(model, data, labels, path, sha, factory, config, adapter)
