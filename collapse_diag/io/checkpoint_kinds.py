"""What kind of checkpoint a path holds, decided from the file system or the loaded dict.

Read by the native reader (collapse_diag/io/model_building.py refuses a
TorchScript archive given to ``torch.load``) and by the adapter registry
(collapse_diag/io/adapters/__init__.py) for auto-detection; no code runs.
"""

from __future__ import annotations

import fnmatch
import os
import re
import zipfile
from pathlib import Path
from typing import Any

__all__ = ["HF_WEIGHT_FILES", "LIGHTNING_KEYS", "PYTHAE_FILES", "detect_adapter",
           "hf_model_folders", "hf_step_of", "hf_step_pattern", "hf_steps",
           "is_lightning_payload", "is_pythae_folder",
           "is_torchscript_archive"]

#: Keys every Lightning checkpoint holding a model with saved hyper-parameters has.
LIGHTNING_KEYS = ("state_dict", "hyper_parameters", "pytorch-lightning_version")
#: The two files of a pythae model folder (``model.save(dir)``).
PYTHAE_FILES = ("model.pt", "model_config.json")
#: The weight files of a Hugging Face ``save_pretrained`` folder, in the order they are preferred.
HF_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                   "pytorch_model.bin.index.json")
_GLOB = re.compile(r"[*?\[]")
_STEP_SUFFIX = re.compile(r"[-_](\d+)$")


def is_pythae_folder(path: Path) -> bool:
    """Whether ``path`` is a folder holding ``model.pt`` and ``model_config.json``."""
    return path.is_dir() and all((path / name).is_file() for name in PYTHAE_FILES)


def _is_hf_model_folder(path: Path) -> bool:
    return (path.is_dir() and (path / "config.json").is_file()
            and any((path / name).is_file() for name in HF_WEIGHT_FILES))


def hf_model_folders(path: Path) -> dict[str, Path]:
    """The Hugging Face model folders of ``path``: ``{"": path}`` or its sub-model folders.

    A model folder holds ``config.json`` and one of :data:`HF_WEIGHT_FILES`
    (``save_pretrained``); a folder that is none but holds such folders (Optimus's
    ``checkpoint-encoder-*`` and ``checkpoint-decoder-*``) gives them by name. A path
    whose last part is a glob pattern (``out/checkpoint-*-31250``: one step of an
    Optimus output folder that holds several) gives the model folders of its parent
    that the pattern matches. Only names are listed; nothing is read.
    """
    if _is_hf_model_folder(path):
        return {"": path}
    if path.is_dir():
        folder, pattern = path, "*"
    elif _GLOB.search(path.name) and path.parent.is_dir():
        folder, pattern = path.parent, path.name
    else:
        return {}
    try:
        children = sorted(c for c in folder.iterdir() if fnmatch.fnmatchcase(c.name, pattern))
    except OSError:
        return {}
    return {child.name: child for child in children if _is_hf_model_folder(child)}


def hf_step_of(name: str) -> int | None:
    """The training step a sub-model folder's name ends with, after a ``-`` or ``_``.

    ``checkpoint-encoder-31250`` -> 31250; ``None`` without one (``encoder``, ``gpt2``).
    """
    found = _STEP_SUFFIX.search(name)
    return int(found.group(1)) if found else None


def hf_steps(folders: dict[str, Path]) -> dict[int, list[str]]:
    """Sub-model folder names by the step their names end with, when of two or more steps.

    ``{}`` otherwise: one step's sub-models, or a name without a step.
    """
    steps: dict[int, list[str]] = {}
    for name in folders:
        step = hf_step_of(name)
        if step is None:
            return {}
        steps.setdefault(step, []).append(name)
    return dict(sorted(steps.items())) if len(steps) > 1 else {}


def hf_step_pattern(names: list[str], step: int) -> str:
    """The glob naming one step's sub-model folders: their common prefix, ``*``, ``-<step>``.

    ``checkpoint-encoder-200`` and ``checkpoint-decoder-200`` -> ``checkpoint-*-200``; a
    step of one folder is that folder's name.
    """
    if len(names) == 1:
        return names[0]
    prefix = os.path.commonprefix(names)
    tails = {_STEP_SUFFIX.search(name).group(0) for name in names}  # "-200" (or "_200")
    return f"{prefix}*{tails.pop() if len(tails) == 1 else f'[-_]{step}'}"


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
    if hf_model_folders(path):
        return "huggingface"
    return "native"
