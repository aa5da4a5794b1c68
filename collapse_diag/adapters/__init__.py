"""Adapters: turning checkpoints written by other tools into the model protocol.

A small registry, name -> loader. ``load_checkpoint(path, adapter=NAME)``
(``--adapter NAME`` on the command line) picks one; without it the adapter is
auto-detected where the file says so unambiguously (docs/adapters.md):

* ``native``: the collapse-diag format, or a plain state dict with ``--factory``
  (wrapper prefixes stripped); used when nothing else is detected;
* ``lightning``: a Lightning ``.ckpt`` (``state_dict`` + ``hyper_parameters``, the
  config filtered by the factory's signature); detected when the dict has
  ``state_dict``, ``hyper_parameters`` and ``pytorch-lightning_version``;
* ``pythae``: a pythae model folder; detected when the path is a folder holding
  ``model.pt`` and ``model_config.json``;
* ``torchscript``: a ``torch.jit.save`` archive (needs ``--trust-checkpoint``);
  detected when the zip holds ``constants.pkl`` or ``code/`` entries.

For anything else, :func:`collapse_diag.wrap` maps a model's own methods to the
protocol in code (collapse_diag/adapters/wrap.py).
"""

from __future__ import annotations

import importlib
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from collapse_diag.exceptions import CheckpointError

__all__ = ["ADAPTERS", "detect_adapter", "get_loader", "is_torchscript_archive",
           "is_pythae_folder", "is_lightning_payload"]

#: name -> ``"module:function"`` loading ``(path, **options) -> LoadedCheckpoint``.
ADAPTERS: dict[str, str] = {
    "native": "collapse_diag.adapters.native:load_native",
    "lightning": "collapse_diag.adapters.lightning:load_lightning",
    "pythae": "collapse_diag.adapters.pythae:load_pythae_folder",
    "torchscript": "collapse_diag.adapters.torchscript:load_torchscript",
}
#: Keys every Lightning checkpoint holding a model with saved hyper-parameters has.
LIGHTNING_KEYS = ("state_dict", "hyper_parameters", "pytorch-lightning_version")
#: The two files of a pythae model folder (``model.save(dir)``).
PYTHAE_FILES = ("model.pt", "model_config.json")


def is_pythae_folder(path: Path) -> bool:
    """Whether ``path`` is a folder holding ``model.pt`` and ``model_config.json``."""
    return path.is_dir() and all((path / name).is_file() for name in PYTHAE_FILES)


def is_torchscript_archive(path: Path) -> bool:
    """Whether ``path`` is a TorchScript zip (``constants.pkl`` or ``code/`` entries).

    ``torch.save`` archives hold ``data.pkl`` and ``data/`` only; reading the
    central directory decompresses nothing.
    """
    try:
        if not path.is_file() or not zipfile.is_zipfile(path):
            return False
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (OSError, zipfile.BadZipFile, ValueError):
        return False
    return any(n.endswith("/constants.pkl") or "/code/" in n for n in names)


def is_lightning_payload(payload: Any) -> bool:
    """Whether a loaded checkpoint dict has every key of :data:`LIGHTNING_KEYS`."""
    return isinstance(payload, dict) and all(k in payload for k in LIGHTNING_KEYS)


def detect_adapter(path: Path) -> str:
    """The adapter a path calls for, from the file system alone (Lightning: see the payload)."""
    if is_pythae_folder(path):
        return "pythae"
    if is_torchscript_archive(path):
        return "torchscript"
    return "native"


def get_loader(name: str) -> Callable[..., Any]:
    """The loader registered under ``name``.

    Raises:
        CheckpointError: unknown name (the message lists the registered ones).
    """
    if name not in ADAPTERS:
        raise CheckpointError(f"unknown adapter {name!r}: use one of {sorted(ADAPTERS)} "
                              "(docs/adapters.md).")
    module, function = ADAPTERS[name].split(":")
    return getattr(importlib.import_module(module), function)
