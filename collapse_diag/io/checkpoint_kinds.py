"""What kind of checkpoint a path holds, decided from the file system or the loaded dict.

Read by the native reader (collapse_diag/io/model_building.py refuses a
TorchScript archive given to ``torch.load``) and by the adapter registry
(collapse_diag/io/adapters/__init__.py) for auto-detection; no code runs.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

__all__ = ["LIGHTNING_KEYS", "PYTHAE_FILES", "detect_adapter", "is_lightning_payload",
           "is_pythae_folder", "is_torchscript_archive"]

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
