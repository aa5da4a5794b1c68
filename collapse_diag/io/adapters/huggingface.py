"""The ``huggingface`` adapter: ``save_pretrained`` folders, one model or several sub-models.

A Hugging Face model folder holds ``config.json`` and its weights
(``model.safetensors``, ``pytorch_model.bin``, or a sharded set named by
``model.safetensors.index.json`` / ``pytorch_model.bin.index.json``). A VAE
built from pretrained transformers, as Optimus (Li et al. 2020,
https://github.com/ChunyuanLI/Optimus) saves it, is a folder of such folders:
``checkpoint-encoder-<step>/`` (a BERT) and ``checkpoint-decoder-<step>/`` (a GPT-2).
A folder holding the sub-models of several steps is refused; a glob as the path's
last part (``out/checkpoint-*-31250``) names one step's folders
(:func:`~collapse_diag.io.checkpoint_kinds.hf_model_folders`), which is how
``track`` reads such a folder step by step.

What is read, and what runs:

* each sub-model's config is built from its ``config.json`` by the config class
  of its ``model_type`` (``transformers.CONFIG_MAPPING``; a plain
  ``PretrainedConfig`` when the type is unknown): the JSON becomes attributes,
  no code;
* a sub-model is built by the ``transformers`` class its ``architectures``
  names (looked up in the ``transformers`` package, never in the folder) and
  its weights are read with ``safetensors`` when present, else ``torch.load``
  with ``weights_only=True``; weights tied to another parameter
  (``lm_head.weight`` = ``wte.weight``) may be absent from the file;
* code shipped in the folder (``auto_map``, ``trust_remote_code``) runs only
  with ``--trust-checkpoint`` (then ``transformers.AutoModel`` loads it).

How the sub-models form one VAE: a factory the user names (``--factory
mypkg:build``), called with one keyword argument per sub-model folder. A
factory parameter matches a folder when it is the folder's name, or one of the
words of the name (``encoder`` matches ``checkpoint-encoder-31250``):

* parameter ``encoder``: receives the sub-model, built and loaded as above;
* parameter ``encoder_config``: receives only the config; the factory builds the
  network (a class of the user's, like Optimus's ``BertForLatentConnector``)
  and the folder's weights are loaded into the returned model's ``encoder``
  attribute afterwards.

``--config cfg.json`` adds keyword arguments. A single model folder without a
factory is built as above and must follow the protocol itself (or through
``--map``). Needs ``transformers`` (``pip install "collapse-diag[transformers]"``).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from collapse_diag.exceptions import CheckpointError
from collapse_diag.io.checkpoint_kinds import (
    HF_WEIGHT_FILES,
    hf_model_folders,
    hf_step_pattern,
    hf_steps,
)
from collapse_diag.io.factory import resolve_factory
from collapse_diag.io.files import (
    MAX_CONFIG_BYTES,
    display_path,
    read_text_limited,
    require_regular_file,
)
from collapse_diag.io.model_building import config_argument, file_sha256, finish, fit_weights
from collapse_diag.io.torch_files import read_torch_file

__all__ = ["folder_sha256", "load_huggingface", "read_hf_weights", "match_roles"]

_CONFIG_SUFFIX = "_config"


def _import_transformers() -> Any:
    try:
        import transformers
    except ImportError as err:
        raise CheckpointError(
            "this is a Hugging Face model folder, and reading it needs transformers: "
            'pip install "collapse-diag[transformers]".'
        ) from err
    return transformers


def _read_json(path: Path) -> dict[str, Any]:
    text = read_text_limited(path, "Hugging Face config", MAX_CONFIG_BYTES, CheckpointError)
    try:
        value = json.loads(text)
    except ValueError as err:
        raise CheckpointError(f"{display_path(path)} is not valid JSON ({err}).") from err
    if not isinstance(value, dict):
        raise CheckpointError(f"{display_path(path)} must hold a JSON object.")
    return value


def _weight_files(folder: Path) -> list[Path]:
    """The weight files of a model folder: safetensors first, shards through their index."""
    for name in HF_WEIGHT_FILES:
        path = folder / name
        if not path.is_file():
            continue
        if not name.endswith(".index.json"):
            return [path]
        weight_map = _read_json(path).get("weight_map")
        if not isinstance(weight_map, dict):
            raise CheckpointError(f"{display_path(path)} has no 'weight_map' object.")
        shards = sorted({str(v) for v in weight_map.values()})
        bad = [s for s in shards if Path(s).name != s or s.startswith(".")]
        if bad:
            raise CheckpointError(f"{display_path(path)} names shard files outside its folder: "
                                  f"{bad[:3]} (a shard is a plain file name).")
        return [folder / s for s in shards]
    raise CheckpointError(f"{display_path(folder)!r} holds no weights: expected one of "
                          f"{list(HF_WEIGHT_FILES)}.")


def read_hf_weights(folder: Path) -> dict[str, torch.Tensor]:
    """The state dict of a model folder: ``safetensors`` files, else ``weights_only`` torch files.

    Raises:
        CheckpointError: a missing or damaged file, safetensors not installed.
    """
    state: dict[str, torch.Tensor] = {}
    for path in _weight_files(folder):
        path = require_regular_file(path, "weights file", CheckpointError)
        if path.suffix == ".safetensors":
            try:
                from safetensors.torch import load_file
            except ImportError as err:
                raise CheckpointError(f"{display_path(path)} needs safetensors: "
                                      'pip install "collapse-diag[transformers]".') from err
            try:
                part = load_file(str(path))
            except Exception as err:  # noqa: BLE001 - safetensors raises its own errors
                raise CheckpointError(f"cannot read {display_path(path)}: {type(err).__name__}: "
                                      f"{str(err)[:200]} (damaged safetensors file?).") from err
        else:
            part = read_torch_file(path, "weights file", False, CheckpointError)
            if not isinstance(part, dict):
                raise CheckpointError(f"{display_path(path)} holds a {type(part).__name__}, "
                                      "not a state dict.")
        state.update(part)
    return state


def _build_config(transformers: Any, raw: dict[str, Any]) -> Any:
    """The config object of a ``config.json``: attributes only, no code."""
    model_type = raw.get("model_type")
    config_class = None
    if isinstance(model_type, str) and model_type in transformers.CONFIG_MAPPING:
        config_class = transformers.CONFIG_MAPPING[model_type]
    return (config_class or transformers.PretrainedConfig).from_dict(dict(raw))


def _with_tied(model: nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` plus the weights tied to one it holds (``lm_head.weight`` = ``wte.weight``)."""
    groups: dict[int, list[str]] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        groups.setdefault(id(param), []).append(name)
    state = dict(state)
    for names in groups.values():
        present = [n for n in names if n in state]
        for name in names:
            if present and name not in state:
                state[name] = state[present[0]]
    return state


def fit_folder(module: nn.Module, folder: Path, what: str) -> None:
    """Load a model folder's weights into ``module`` strictly (tied weights may be absent)."""
    fit_weights(module, _with_tied(module, read_hf_weights(folder)), folder, what)


def _build_named(transformers: Any, folder: Path, raw: dict[str, Any], trust: bool) -> Any:
    """The model a folder's ``config.json`` names, with its weights (module docstring)."""
    shown = display_path(folder)
    names = raw.get("architectures") or []
    arch = names[0] if isinstance(names, list) and names and isinstance(names[0], str) else None
    known = arch is not None and isinstance(getattr(transformers, arch, None), type) and \
        issubclass(getattr(transformers, arch), transformers.PreTrainedModel)
    if "auto_map" in raw or not known:
        if not trust:
            why = (f"its config.json maps it to code in the folder (auto_map "
                   f"{sorted(raw['auto_map']) if isinstance(raw.get('auto_map'), dict) else ''})"
                   if "auto_map" in raw else
                   f"its architecture {arch!r} is not a transformers class")
            raise CheckpointError(
                f"cannot build the model in {shown!r}: {why}. Name a factory whose parameter "
                f"'<name>{_CONFIG_SUFFIX}' receives the config and builds the network from your "
                "own code (docs/adapters.md#hugging-face-folders), or pass --trust-checkpoint "
                "to run the folder's code."
            )
        try:
            return transformers.AutoModel.from_pretrained(
                str(folder), trust_remote_code=True, local_files_only=True)
        except (Exception, SystemExit) as err:  # noqa: BLE001 - the folder's own code
            raise CheckpointError(f"transformers could not load {shown!r}: "
                                  f"{type(err).__name__}: {str(err)[:300]}") from err
    model_class = getattr(transformers, arch)
    try:
        model = model_class(_build_config(transformers, raw))
    except (Exception, SystemExit) as err:  # noqa: BLE001 - invalid config values
        raise CheckpointError(f"the config in {shown}/config.json is not a valid {arch}: "
                              f"{type(err).__name__}: {str(err)[:300]}") from err
    fit_folder(model, folder, f"transformers:{arch}")
    return model.eval()


def _words(name: str) -> set[str]:
    return set(re.split(r"[^A-Za-z0-9]+", name.lower())) - {""}


def match_roles(folders: dict[str, Path], parameters: list[str], where: str) -> dict[str, str]:
    """Which factory parameter receives which sub-model folder: parameter -> folder name.

    A parameter ``p`` (or ``p_config``) matches a folder named ``p`` or whose
    name has ``p`` among its words (split at anything not a letter or digit).

    Raises:
        CheckpointError: a folder matched by no parameter or by several, or a
            parameter matching several folders.
    """
    matches: dict[str, str] = {}
    for folder in folders:
        hits = [p for p in parameters
                if p.removesuffix(_CONFIG_SUFFIX).lower() in _words(folder) | {folder.lower()}]
        if len(hits) != 1:
            raise CheckpointError(
                f"the sub-model folder {folder!r} of {where} matches "
                f"{'no parameter' if not hits else f'the parameters {hits}'} of the factory "
                f"(parameters {parameters}): name a parameter after a word of the folder's "
                f"name, e.g. 'encoder' or 'encoder{_CONFIG_SUFFIX}' "
                "(docs/adapters.md#hugging-face-folders)."
            )
        if hits[0] in matches:
            raise CheckpointError(
                f"the factory parameter {hits[0]!r} matches the folders "
                f"{[matches[hits[0]], folder]} of {where}: keep one sub-model of each kind in "
                "the folder given (e.g. one step's encoder and decoder)."
            )
        matches[hits[0]] = folder
    return matches


def folder_sha256(folders: dict[str, Path]) -> str:
    """SHA-256 over the names and SHA-256 of every config and weight file, in name order."""
    digest = hashlib.sha256()
    for name in sorted(folders):
        folder = folders[name]
        for path in [folder / "config.json", *_weight_files(folder)]:
            digest.update(f"{name}/{path.name}:{file_sha256(path)}\n".encode())
    return digest.hexdigest()


def _call_factory(spec: str, kwargs: dict[str, Any]) -> Any:
    build = resolve_factory(spec, from_file=False)
    try:
        return build(**kwargs)
    except (Exception, SystemExit) as err:  # noqa: BLE001 - user factory failure
        first = str(err).splitlines()[0] if str(err) else ""
        raise CheckpointError(f"factory {spec}(...) failed with {type(err).__name__}: {first} "
                              "(docs/adapters.md#hugging-face-folders).") from err


def load_huggingface(path: str | Path, factory: str | None = None, config: Any = None,
                     trust_checkpoint: bool = False,
                     state_dict_prefix: str | None = None) -> Any:
    """The ``huggingface`` adapter: see the module docstring.

    Returns:
        A :class:`~collapse_diag.io.checkpoint.LoadedCheckpoint` (adapter ``huggingface``,
        no data; ``sha256`` over every config and weight file; ``config`` the factory's
        keyword arguments, sub-models given as ``"folder:<name>"``).

    Raises:
        CheckpointError: not such a folder, transformers missing, code in the folder
            without trust, a factory that does not name the sub-models, weights that
            do not fit.
    """
    folder = Path(path)
    shown = display_path(folder)
    if state_dict_prefix:
        raise CheckpointError(f"--state-dict-prefix does not apply to the Hugging Face folder "
                              f"{shown!r}: each sub-model folder holds its own weights.")
    folders = hf_model_folders(folder)
    if not folders:
        raise CheckpointError(
            f"{shown!r} is not a Hugging Face model folder: it must hold config.json and one of "
            f"{list(HF_WEIGHT_FILES)} (save_pretrained), or folders that do.")
    steps = hf_steps(folders) if "" not in folders else {}
    if steps:
        last = max(steps)
        raise CheckpointError(
            f"{shown!r} holds the model folders of {len(steps)} training steps "
            f"({', '.join(f'{s:,}' for s in steps)}): name one step's folders with a quoted "
            f"glob, e.g. '{display_path(folder / hf_step_pattern(steps[last], last))}', or run "
            f"collapse-diag track on the folder to analyse every step "
            "(docs/adapters.md#hugging-face-folders).")
    extra = config_argument(config) or {}
    transformers = _import_transformers()
    raws = {name: _read_json(sub / "config.json") for name, sub in folders.items()}
    sha = folder_sha256(folders)
    if factory is None:
        if "" not in folders:
            raise CheckpointError(
                f"{shown!r} holds the sub-models {sorted(folders)}: name a factory that joins "
                "them into one VAE with --factory module:callable, its parameters named after "
                "them (docs/adapters.md#hugging-face-folders).")
        model = _build_named(transformers, folder, raws[""], trust_checkpoint)
        arch = (raws[""].get("architectures") or ["AutoModel"])[0]
        return finish(model, None, None, folder, sha, f"transformers:{arch}", extra,
                      "huggingface")
    build = resolve_factory(factory, from_file=False)
    try:
        parameters = [p.name for p in inspect.signature(build).parameters.values()
                      if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    except (TypeError, ValueError):
        parameters = []
    roles = match_roles({n or folder.name: p for n, p in folders.items()},
                        [p for p in parameters if p not in extra], repr(shown))
    kwargs = dict(extra)
    recorded = dict(extra)
    by_name = {n or folder.name: n for n in folders}
    for parameter, name in roles.items():
        key = by_name[name]
        if parameter.endswith(_CONFIG_SUFFIX) and parameter != name:
            kwargs[parameter] = _build_config(transformers, raws[key])
        else:
            kwargs[parameter] = _build_named(transformers, folders[key], raws[key],
                                             trust_checkpoint)
        recorded[parameter] = f"folder:{name}"
    model = _call_factory(factory, kwargs)
    for parameter, name in roles.items():
        if not (parameter.endswith(_CONFIG_SUFFIX) and parameter != name):
            continue
        attribute = parameter.removesuffix(_CONFIG_SUFFIX)
        module = getattr(model, attribute, None)
        if not isinstance(module, nn.Module):
            raise CheckpointError(
                f"the model built by {factory} has no sub-module {attribute!r} to load the "
                f"weights of the folder {name!r} into: keep the network built from "
                f"{parameter} as model.{attribute}.")
        fit_folder(module, folders[by_name[name]], f"{factory} ({attribute})")
    loaded = finish(model, None, None, folder, sha, factory, recorded, "huggingface")
    loaded.config_source = "sub-model folders: " + ", ".join(
        f"{p} = {n}" for p, n in sorted(roles.items()))
    return loaded
