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
``model_state_dict``, ``model`` or at the top level, with ``module.``/``model.``
prefixes stripped) load when the user names the factory with ``--factory`` /
``--config``.

Safety: a checkpoint is untrusted input. Loading never unpickles code
(``weights_only=True``); a fully pickled model loads only with
``trust_checkpoint=True``. A factory *named by the file* is called only if it
is an ``nn.Module`` subclass or a plain function of a package outside the
standard library and outside the libraries that can load or run code (so a
file cannot make us call ``os.system``); a factory named by the user is theirs to choose.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import pickle
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from collapse_diag.data import Batch, num_examples, validate_data
from collapse_diag.exceptions import CheckpointError, DataError

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
STRIPPED_PREFIXES = ("module.", "model.")
# Top-level packages whose functions a checkpoint may not name as its factory:
# they load files, run code or start processes.
_UNSAFE_FACTORY_PACKAGES = frozenset({
    "torch", "numpy", "scipy", "pandas", "sklearn", "joblib", "dill", "cloudpickle",
    "click", "IPython", "setuptools", "pip", "pkg_resources", "matplotlib", "seaborn",
    "collapse_diag_cli", "tqdm", "builtins",
})
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
    """

    model: Any
    data: Batch | None
    labels: dict[str, torch.Tensor] | None = None
    path: Path | None = None
    sha256: str = ""
    factory: str | None = None
    config: dict[str, Any] = field(default_factory=dict)

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


def _is_safe_factory(target: Any) -> bool:
    if inspect.isclass(target):
        return issubclass(target, nn.Module)
    if not inspect.isfunction(target):
        return False  # builtins, partials, callable instances
    module = getattr(target, "__module__", "") or ""
    top = module.split(".")[0]
    if top == "collapse_diag":
        return module.startswith("collapse_diag.examples")
    return top not in _UNSAFE_FACTORY_PACKAGES and top not in sys.stdlib_module_names


def resolve_factory(spec: str, from_file: bool = False) -> Callable[..., Any]:
    """Import ``"package.module:callable"`` (the current directory is on the import path).

    Args:
        spec: ``module:attribute``; the attribute may be dotted (``Class.build``).
        from_file: The name came from the (untrusted) checkpoint file: only model
            classes and model-building functions of user packages are accepted.

    Returns:
        The callable.

    Raises:
        CheckpointError: malformed spec, module not importable, attribute missing,
            not callable, or unsafe for a name taken from the file.
    """
    if not isinstance(spec, str) or spec.count(":") != 1 or not all(spec.split(":")):
        raise CheckpointError(
            f"factory {spec!r} is not of the form 'package.module:callable' "
            "(e.g. 'models:build_vae')."
        )
    module_name, attr_path = spec.split(":")
    cwd = str(Path.cwd())
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as err:  # noqa: BLE001 - import errors of user code take many forms
        raise CheckpointError(
            f"factory module {module_name!r} cannot be imported ({type(err).__name__}: {err}): "
            "install the package that defines the model, or run from the folder holding "
            f"{module_name.replace('.', '/')}.py."
        ) from err
    for part in attr_path.split("."):
        if not hasattr(target, part):
            raise CheckpointError(f"factory {spec!r}: module {module_name!r} has no {attr_path!r}.")
        target = getattr(target, part)
    if not callable(target):
        raise CheckpointError(f"factory {spec!r} is not callable.")
    if from_file and not _is_safe_factory(target):
        raise CheckpointError(
            f"the checkpoint names factory {spec!r}, which is neither an nn.Module class nor a "
            "model-building function of a user package; refusing to call it. If you trust "
            "the file, pass --trust-checkpoint, or name the factory yourself with --factory."
        )
    return target


def _torch_load(path: Path, trust: bool) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "weights only" not in str(err).lower():
            raise CheckpointError(
                f"cannot read checkpoint {str(path)!r}: it is corrupt or not a torch file ({err})."
            ) from err
        if not trust:
            raise CheckpointError(
                f"checkpoint {str(path)!r} contains pickled Python objects, which can run code "
                "when loaded; refusing. Save a state dict in the collapse-diag format instead "
                "(docs/model-protocol.md), or pass --trust-checkpoint if you trust the file."
            ) from err
    except Exception as err:  # noqa: BLE001 - a damaged file fails in many ways
        raise CheckpointError(
            f"cannot read checkpoint {str(path)!r}: it is truncated, corrupt or not a torch "
            f"file ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})."
        ) from err
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001 - arbitrary unpickling failure
        raise CheckpointError(f"cannot unpickle trusted checkpoint {str(path)!r}: {err}") from err


def _find_state_dict(payload: Mapping[str, Any], path: Path) -> dict[str, torch.Tensor]:
    state = None
    for key in STATE_DICT_KEYS:
        if isinstance(payload.get(key), Mapping):
            state = payload[key]
            break
    if state is None and payload and all(isinstance(v, torch.Tensor) for v in payload.values()):
        state = payload
    if state is None:
        raise CheckpointError(
            f"checkpoint {str(path)!r} has no weights: expected a state dict under one of "
            f"{list(STATE_DICT_KEYS)} or at the top level; found keys {sorted(map(str, payload))}."
        )
    state = dict(state)
    for prefix in STRIPPED_PREFIXES:
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def _build_model(factory: str, config: Any, state: dict, path: Path, from_file: bool) -> Any:
    if not isinstance(config, Mapping) or not all(isinstance(k, str) for k in config):
        raise CheckpointError(
            f"the model config must be a dict of keyword arguments; got {type(config).__name__}."
        )
    build = resolve_factory(factory, from_file=from_file)
    try:
        model = build(**config)
    except Exception as err:  # noqa: BLE001 - user factory failure
        raise CheckpointError(
            f"factory {factory}(**config) failed with {type(err).__name__}: {err} "
            "(check --config / the checkpoint's 'config')."
        ) from err
    if isinstance(model, nn.Module):
        result = model.load_state_dict(state, strict=False)
        missing, unexpected = list(result.missing_keys), list(result.unexpected_keys)
        if missing or unexpected:
            raise CheckpointError(
                f"the weights in {str(path)!r} do not fit the model built by {factory}: "
                f"missing keys {missing[:5]}, unexpected keys {unexpected[:5]} "
                "(is the config the one used in training?)."
            )
    return model


def _labels(raw: Any, n: int | None, path: Path) -> dict[str, torch.Tensor] | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping) or not all(isinstance(v, torch.Tensor) for v in raw.values()):
        raise DataError(f"'labels' in {str(path)!r} must be a dict of name -> integer Tensor.")
    out = {}
    for name, values in raw.items():
        if values.dim() != 1 or values.is_floating_point() or (n is not None and len(values) != n):
            raise DataError(
                f"labels[{name!r}] in {str(path)!r} must be a 1-D integer Tensor with one value "
                f"per input ({n}); got dtype {values.dtype}, shape {tuple(values.shape)}."
            )
        out[str(name)] = values
    return out


def load_checkpoint(
    path: str | Path,
    factory: str | None = None,
    config: Mapping[str, Any] | str | Path | None = None,
    trust_checkpoint: bool = False,
) -> LoadedCheckpoint:
    """Load a model (and its evaluation inputs) from a checkpoint, safely.

    Args:
        path: The checkpoint file.
        factory: ``"module:callable"`` that builds the model; overrides the file's.
            Needed for files that hold only a state dict.
        config: Keyword arguments for the factory (a dict or a JSON file path);
            overrides the file's.
        trust_checkpoint: Allow unpickling arbitrary objects (a fully pickled model).
            Only for files you trust: unpickling can run any code.

    Returns:
        A :class:`LoadedCheckpoint` (unpacks as ``model, data``).

    Raises:
        CheckpointError: missing/truncated/unsafe file, wrong keys, bad factory,
            weights that do not fit.
        DataError: stored ``data`` or ``labels`` malformed.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist: check the path.")
    if isinstance(config, (str, Path)):
        try:
            config = json.loads(Path(config).read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise CheckpointError(f"cannot read config file {str(config)!r}: {err}") from err
    payload = _torch_load(path, trust_checkpoint)
    sha = file_sha256(path)
    model: Any = None
    used_factory = factory
    used_config: dict[str, Any] = dict(config or {})
    data = labels = None
    if isinstance(payload, nn.Module):
        model = payload
    elif isinstance(payload, Mapping):
        data, labels = payload.get("data"), payload.get("labels")
        if "collapse_diag" in payload:
            if payload["collapse_diag"] != FORMAT_VERSION:
                raise CheckpointError(
                    f"checkpoint {str(path)!r} has format version {payload['collapse_diag']!r}; "
                    f"this collapse-diag reads version {FORMAT_VERSION}."
                )
            missing = [k for k in ("factory", "state_dict") if k not in payload]
            if missing and factory is None:
                raise CheckpointError(
                    f"checkpoint {str(path)!r} lacks the key(s) {missing}; {_FIX_FORMAT}."
                )
            if config is None:
                used_config = dict(payload.get("config") or {})
        if isinstance(payload.get("model"), nn.Module):
            model = payload["model"]  # only reachable with trust_checkpoint
        else:
            from_file = factory is None
            used_factory = factory or payload.get("factory")
            if used_factory is None:
                raise CheckpointError(
                    f"checkpoint {str(path)!r} is not in the collapse-diag format (no "
                    f"'collapse_diag' key; keys {sorted(map(str, payload))[:8]}): pass "
                    "--factory module:callable (and --config cfg.json) to build the model "
                    f"from its state dict; {_FIX_FORMAT}."
                )
            state = _find_state_dict(payload, path)
            model = _build_model(used_factory, used_config, state, path, from_file)
    else:
        raise CheckpointError(
            f"checkpoint {str(path)!r} holds a {type(payload).__name__}, not a dict or a model; "
            f"{_FIX_FORMAT}."
        )
    if data is not None:
        data = validate_data(data, f"the data stored in {str(path)!r}")
    labels = _labels(labels, num_examples(data) if data is not None else None, path)
    if isinstance(model, nn.Module):
        model.eval()
    return LoadedCheckpoint(model, data, labels, path, sha, used_factory, used_config)


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
