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
  detected when the zip holds ``constants.pkl`` or ``code/`` entries;
* ``huggingface``: ``save_pretrained`` folders (one model, or sub-models such as
  Optimus's encoder and decoder joined by a factory); detected when the folder,
  or a folder inside it, holds ``config.json`` and the weights.

For anything else, :func:`collapse_diag.wrap` maps a model's own methods to the
protocol in code (collapse_diag/model/wrap.py).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from collapse_diag.exceptions import CheckpointError

__all__ = ["ADAPTERS", "get_loader"]

#: name -> ``"module:function"`` loading ``(path, **options) -> LoadedCheckpoint``.
ADAPTERS: dict[str, str] = {
    "native": "collapse_diag.io.adapters.native:load_native",
    "lightning": "collapse_diag.io.adapters.lightning:load_lightning",
    "pythae": "collapse_diag.io.adapters.pythae:load_pythae_folder",
    "torchscript": "collapse_diag.io.adapters.torchscript:load_torchscript",
    "huggingface": "collapse_diag.io.adapters.huggingface:load_huggingface",
}


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
