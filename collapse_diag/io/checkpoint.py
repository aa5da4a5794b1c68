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
:mod:`collapse_diag.io.adapters`, chosen by ``adapter=`` or auto-detected.

Safety: a checkpoint is untrusted input. Loading never unpickles code
(``weights_only=True``); a fully pickled model loads only with
``trust_checkpoint=True``. A factory *named by the file* is called only if it
is an ``nn.Module`` subclass (the rule lives in :mod:`collapse_diag.io.factory`);
a factory named by the user is theirs to choose. A damaged file is reported as
damaged, not as unsafe.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from collapse_diag.io.adapters import get_loader
from collapse_diag.io.checkpoint_kinds import detect_adapter
from collapse_diag.io.data import Batch, validate_data
from collapse_diag.io.factory import resolve_factory
from collapse_diag.io.model_building import FORMAT_VERSION, LoadedCheckpoint, file_sha256

__all__ = [
    "FORMAT_VERSION",
    "LoadedCheckpoint",
    "load_checkpoint",
    "save_checkpoint",
    "resolve_factory",
    "file_sha256",
]


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
    if adapter is None:
        adapter = detect_adapter(Path(path))
    options = {"factory": factory, "config": config, "trust_checkpoint": trust_checkpoint,
               "state_dict_prefix": state_dict_prefix}
    return get_loader(adapter)(path, **options)


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
