"""Reading and writing checkpoints safely.

The format ``collapse-diag analyze`` reads is a file that
``torch.load(path, weights_only=True)`` can read, holding a dict::

    {"collapse_diag": 1,                         # format version
     "factory": "package.module:callable",       # builds the model: factory(**config)
     "config": {...},                            # plain JSON-like keyword arguments
     "state_dict": {...},                        # the weights
     "data": Tensor | {name: Tensor},            # optional evaluation inputs
     "labels": {name: LongTensor}}               # optional known factors, one value per input

Existing checkpoints that hold only a state dict (under ``state_dict``,
``model_state_dict``, ``model`` or at the top level, with the wrapper prefixes
``module.``/``model.``/``_orig_mod.`` stripped when every key carries them)
load when the user names the factory with ``--factory`` / ``--config``. Files
of other tools (Lightning, pythae, TorchScript) go through an adapter of
:mod:`collapse_diag.adapters`, chosen by ``adapter=`` or auto-detected.

Safety: a checkpoint is untrusted input. Loading never unpickles code
(``weights_only=True``); a fully pickled model loads only with
``trust_checkpoint=True``. A factory *named by the file* is called only if it
is an ``nn.Module`` subclass (the rule lives in :mod:`collapse_diag.factory`);
a factory named by the user is theirs to choose. A damaged file is reported as
damaged, not as unsafe.
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

from collapse_diag.adapters.prefixes import keep_prefix, seen_prefixes, strip_wrapper_prefixes
from collapse_diag.data import Batch, num_examples, validate_data
from collapse_diag.exceptions import CheckpointError, DataError
from collapse_diag.factory import resolve_factory
from collapse_diag.files import (
    MAX_CONFIG_BYTES,
    check_zip_sizes,
    display_path,
    read_text_limited,
    require_regular_file,
)
from collapse_diag.torch_files import read_torch_file

__all__ = [
    "FORMAT_VERSION",
    "LoadedCheckpoint",
    "load_checkpoint",
    "save_checkpoint",
    "resolve_factory",
    "file_sha256",
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
        adapter: The adapter that read the file (:data:`collapse_diag.adapters.ADAPTERS`).
    """

    model: Any
    data: Batch | None
    labels: dict[str, torch.Tensor] | None = None
    path: Path | None = None
    sha256: str = ""
    factory: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    adapter: str = "native"

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


def _read_config(path: Path) -> dict[str, Any]:
    text = read_text_limited(path, "config file", MAX_CONFIG_BYTES, CheckpointError)
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as err:
        raise CheckpointError(
            f"cannot read config file {display_path(path)!r}: not valid JSON ({err})."
        ) from err
    return _check_config(value, f"config file {display_path(path)!r}")


def _find_state_dict(payload: Mapping[str, Any], path: Path,
                     prefix: str | None = None) -> dict[str, torch.Tensor]:
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


def _check_config(config: Any, where: str) -> dict[str, Any]:
    if not isinstance(config, Mapping) or not all(
            isinstance(k, str) and k.isidentifier() for k in config):
        raise CheckpointError(
            f"the model config ({where}) must be a JSON object / dict of keyword arguments "
            f"(names -> values); got {type(config).__name__}"
            + (f" with keys {sorted(map(repr, config))[:5]}" if isinstance(config, Mapping)
               else "") + "."
        )
    return dict(config)


def _fit_weights(model: nn.Module, state: dict, path: Path, factory: str) -> None:
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


def _build_model(factory: str, config: dict, state: dict, path: Path, from_file: bool) -> Any:
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
        _fit_weights(model, state, path, factory)
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


def load_checkpoint(
    path: str | Path,
    factory: str | None = None,
    config: Mapping[str, Any] | str | Path | None = None,
    trust_checkpoint: bool = False,
    adapter: str | None = None,
    state_dict_prefix: str | None = None,
) -> LoadedCheckpoint:
    """Load a model (and its evaluation inputs) from a checkpoint, safely.

    Args:
        path: The checkpoint file (or a pythae model folder).
        factory: ``"module:callable"`` that builds the model; overrides the file's.
            Needed for files that hold only a state dict, and for Lightning files.
        config: Keyword arguments for the factory (a dict or a JSON file path);
            overrides the file's (and a Lightning file's ``hyper_parameters``).
        trust_checkpoint: Allow unpickling arbitrary objects (a fully pickled model),
            cloudpickled pythae networks, and TorchScript archives.
            Only for files you trust: unpickling can run any code.
        adapter: Name of the adapter that reads the file (docs/adapters.md):
            ``native``, ``lightning``, ``pythae``, ``torchscript``; ``None``
            auto-detects it.
        state_dict_prefix: Keep only the weights whose names start with this
            prefix, stripped of it (e.g. ``"model."`` for a LightningModule's
            ``self.model``); ``None`` strips the wrapper prefixes every name carries.

    Returns:
        A :class:`LoadedCheckpoint` (unpacks as ``model, data``).

    Raises:
        CheckpointError: missing/truncated/unsafe file, wrong keys, bad factory,
            weights that do not fit.
        DataError: stored ``data`` or ``labels`` malformed.
    """
    from collapse_diag.adapters import detect_adapter, get_loader

    if adapter is None:
        adapter = detect_adapter(Path(path))
    options = {"factory": factory, "config": config, "trust_checkpoint": trust_checkpoint,
               "state_dict_prefix": state_dict_prefix}
    return get_loader(adapter)(path, **options)


def read_payload(path: str | Path, trust_checkpoint: bool) -> tuple[Path, Any, str]:
    """Check, size-check and ``torch.load`` a checkpoint file: ``(path, payload, sha256)``."""
    from collapse_diag.adapters import is_torchscript_archive

    raw = path
    if os.path.isdir(raw):
        raise CheckpointError(
            f"checkpoint {display_path(raw)!r} is a folder: give a checkpoint file, or a pythae "
            "model folder (holding model.pt and model_config.json; docs/adapters.md)."
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


def _config_argument(config: Mapping[str, Any] | str | Path | None) -> dict[str, Any] | None:
    if isinstance(config, (str, Path)):
        return _read_config(Path(config))
    return None if config is None else _check_config(config, "the config argument")


def finish(model: Any, data: Any, labels: Any, path: Path, sha: str, factory: str | None,
           config: dict[str, Any], adapter: str) -> LoadedCheckpoint:
    """Validate stored data and labels, switch the model to eval mode, pack the result."""
    if data is not None:
        data = validate_data(data, f"the data stored in {display_path(path)!r}")
    labels = _labels(labels, num_examples(data) if data is not None else None, path)
    if isinstance(model, nn.Module):
        model.eval()
    return LoadedCheckpoint(model, data, labels, path, sha, factory, config, adapter)


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    factory: str,
    config: Mapping[str, Any],
    data: Batch | None = None,
    labels: Mapping[str, torch.Tensor] | None = None,
    step: int | None = None,
) -> Path:
    """Save a model in the collapse-diag checkpoint format (readable with ``weights_only=True``).

    Args:
        path: Where to write.
        model: The trained model (its ``state_dict`` is saved, not its code).
        factory: ``"module:callable"`` such that ``factory(**config)`` rebuilds it.
        config: Plain JSON-like keyword arguments for the factory.
        data: Optional evaluation inputs (Tensor or dict of Tensors).
        labels: Optional known factors, name -> integer Tensor with one value per input.
        step: Optional training step, stored under ``step`` (``collapse-diag track``
            orders checkpoints by it).

    Returns:
        The path written.
    """
    payload: dict[str, Any] = {
        "collapse_diag": FORMAT_VERSION,
        "factory": factory,
        "config": json.loads(json.dumps(dict(config))),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    # clone: torch.save writes a view's whole underlying storage, not just the view
    if data is not None:
        data = validate_data(data, "data")
        payload["data"] = (data.clone() if isinstance(data, torch.Tensor)
                           else {k: v.clone() for k, v in data.items()})
    if labels is not None:
        payload["labels"] = {str(k): torch.as_tensor(v).clone() for k, v in labels.items()}
    if step is not None:
        payload["step"] = int(step)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(payload, path)
    return path
