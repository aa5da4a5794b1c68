"""The ``torchscript`` adapter: a ``torch.jit.save`` archive of a model with the protocol.

The model must export the protocol methods (``@torch.jit.export`` on
``encode`` and ``log_likelihood``, and on ``prior`` / ``num_tokens`` when it
has them; ``tokenize`` takes Python strings and is usually not scriptable).

What loading runs: ``torch.jit.load`` unpickles no Python objects (its
unpickler builds only Tensors and TorchScript values) and imports no Python
module, but the archive holds *code*: the TorchScript of every method, which
runs in the TorchScript interpreter whenever the model is called. That code
can only call operators registered with torch, yet the archive is parsed by
C++ code that is not hardened against hostile files. So collapse-diag loads a
TorchScript archive only with ``--trust-checkpoint`` (``trust_checkpoint=True``),
as it does a pickled model (docs/adapters.md). Such an archive carries no
evaluation inputs: pass ``--data``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from collapse_diag.exceptions import CheckpointError
from collapse_diag.io.checkpoint_kinds import is_torchscript_archive
from collapse_diag.io.files import display_path, require_regular_file
from collapse_diag.io.model_building import file_sha256, finish

__all__ = ["load_torchscript"]


def load_torchscript(path: str | Path, factory: str | None = None, config: Any = None,
                     trust_checkpoint: bool = False,
                     state_dict_prefix: str | None = None) -> Any:
    """Load a TorchScript archive with ``torch.jit.load`` (only when trusted).

    Returns:
        A :class:`~collapse_diag.io.checkpoint.LoadedCheckpoint` (adapter ``torchscript``,
        no data, no factory).

    Raises:
        CheckpointError: not trusted, not a TorchScript archive, or the archive fails to load.
    """
    path = require_regular_file(path, "checkpoint", CheckpointError)
    shown = display_path(path)
    unused = [name for name, value in (("--factory", factory), ("--config", config),
                                       ("--state-dict-prefix", state_dict_prefix)) if value]
    if unused:
        raise CheckpointError(f"{', '.join(unused)} cannot be used with the TorchScript archive "
                              f"{shown!r}: the archive holds the model itself.")
    if not is_torchscript_archive(path):
        raise CheckpointError(f"checkpoint {shown!r} is not a TorchScript archive (no "
                              "constants.pkl or code/ entries): drop --adapter torchscript.")
    if not trust_checkpoint:
        raise CheckpointError(
            f"checkpoint {shown!r} is a TorchScript archive: loading it with torch.jit.load runs "
            "the TorchScript code it holds (in the TorchScript interpreter; no Python pickle); "
            "pass --trust-checkpoint if you trust the file (docs/adapters.md)."
        )
    try:
        model = torch.jit.load(str(path), map_location="cpu")
    except (Exception, SystemExit) as err:  # noqa: BLE001 - a damaged archive fails in many ways
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise CheckpointError(f"cannot load the TorchScript archive {shown!r}: "
                              f"{type(err).__name__}: {first}") from err
    return finish(model, None, None, path, file_sha256(path), None, {}, "torchscript")
