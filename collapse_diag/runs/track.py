"""``track``: analyse every checkpoint of a training run into its trajectory.

Usage::

    from collapse_diag.render.trajectory import write_trajectory
    from collapse_diag.runs.track import track

    result = track(["runs/vae/"], "trajectory/")      # analyses, cached in trajectory/cache/
    result.trajectory["events"]["verdict_collapsed_step"]
    write_trajectory(result.trajectory, "trajectory/")  # trajectory.json, .md, .html

``track`` returns the trajectory and writes only its cache; the caller writes
the documents, as with ``analyze`` and ``write_report``.

Every checkpoint is analysed on the same inputs (``data``, or else those stored
in the first checkpoint) with the same seed, with the cheap preset of
:mod:`collapse_diag.config.presets` unless ``full=True``. Each checkpoint's report is
cached in ``OUT/cache/`` under a key made of the file's SHA-256, the settings,
the inputs' hash, the factory/config overrides and the collapse-diag and report
schema versions,
and written as soon as it is computed: an interrupted run resumes where it
stopped, and a re-run after new checkpoints appear analyses only those.
"""

from __future__ import annotations

import glob
import hashlib
import json
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from collapse_diag._version import __version__
from collapse_diag.analysis import _data_sha256, analyze
from collapse_diag.config.limits import MAX_REPORT_BYTES, check_json_text
from collapse_diag.config.presets import preset_settings
from collapse_diag.config.settings import Settings
from collapse_diag.exceptions import (
    CheckpointError,
    CollapseDiagError,
    DataError,
    invalid_parameter,
)
from collapse_diag.io.adapters.huggingface import folder_sha256
from collapse_diag.io.checkpoint import file_sha256, load_checkpoint
from collapse_diag.io.checkpoint_kinds import hf_model_folders, hf_step_pattern, hf_steps
from collapse_diag.io.data import Batch, num_examples, validate_data
from collapse_diag.io.files import MAX_CONFIG_BYTES, read_text_limited
from collapse_diag.io.labels import load_labels
from collapse_diag.model.method_map import map_methods, parse_map
from collapse_diag.report.report import SCHEMA_VERSION, write_text_atomic
from collapse_diag.report.schema import TOP_LEVEL_KEY as T
from collapse_diag.runs.trajectory import build_trajectory, read_monitor_log, row_from_report
from collapse_diag.runtime import distributed

__all__ = ["CHECKPOINT_SUFFIXES", "STEP_KEYS", "TRAINER_STATE", "TrackResult",
           "checkpoint_sha256", "checkpoint_step", "find_checkpoints", "hf_checkpoints",
           "order_checkpoints", "track"]

#: File endings taken as checkpoints when a folder is given.
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")
#: Keys of a checkpoint dict read as its step, in this order of preference.
STEP_KEYS = ("step", "global_step", "epoch")
#: The Hugging Face Trainer's state file in a checkpoint folder (its ``global_step``).
TRAINER_STATE = "trainer_state.json"
_NUMBER = re.compile(r"\d+")


@dataclass
class TrackResult:
    """What :func:`track` did.

    Attributes:
        trajectory: The content of trajectory.json.
        analysed: Checkpoints analysed in this run.
        reused: Checkpoints whose cached report was reused.
        notes: Files left out as copies of another checkpoint of the same step.
    """

    trajectory: dict[str, Any]
    analysed: list[Path] = field(default_factory=list)
    reused: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def find_checkpoints(sources: Sequence[str | Path]) -> list[Path]:
    """Expand folders and glob patterns into checkpoints.

    A folder gives its ``*.pt``, ``*.pth``, ``*.ckpt`` files and its Hugging Face
    checkpoints (:func:`hf_checkpoints`); a Hugging Face model folder, or a folder of
    one step's sub-model folders, is itself one checkpoint. A glob gives the files it
    matches and the Hugging Face model folders it matches, one checkpoint per step
    (``out/checkpoint-*-200``: one; ``out/checkpoint-*``: one per step).

    Raises:
        CheckpointError: a source that matches nothing.
    """
    found: dict[Path, None] = {}
    for source in sources:
        text = str(source)
        path = Path(text)
        if path.is_dir():
            matches = hf_checkpoints(path)
            if matches != [path]:  # (a model folder's own .pt files are not checkpoints)
                matches += sorted(p for p in path.iterdir()
                                  if p.is_file() and p.suffix in CHECKPOINT_SUFFIXES)
        elif path.is_file():
            matches = [path]
        elif any(c in text for c in "*?["):  # files; Hugging Face folders by step
            folders = hf_model_folders(path)
            steps = hf_steps(folders)
            matches = (_step_checkpoints(path.parent, steps) if steps
                       else [path] if folders else [])
            matches += sorted(Path(p) for p in glob.glob(text) if Path(p).is_file())
        else:
            matches = []
        if not matches:
            raise CheckpointError(f"{text!r} is no checkpoint file, no folder holding "
                                  f"{'/'.join(CHECKPOINT_SUFFIXES)} files or Hugging Face "
                                  "model folders and no glob matching files: check the path.")
        found.update(dict.fromkeys(matches))
    return list(found)


def hf_checkpoints(folder: Path) -> list[Path]:
    """The Hugging Face checkpoints a folder holds, one per training step.

    * the folder is a ``save_pretrained`` model folder, or holds the sub-model folders
      of one step (Optimus's ``checkpoint-encoder-100/`` and ``checkpoint-decoder-100/``):
      the folder itself;
    * it holds the sub-model folders of several steps (``checkpoint-encoder-100/``,
      ``checkpoint-decoder-100/``, ``checkpoint-encoder-200/``, ...): one glob per step
      naming that step's folders (``FOLDER/checkpoint-*-100``), which the loader reads
      as one checkpoint; a step with a single model folder (the Trainer's
      ``checkpoint-100/``) is that folder;
    * a single model folder inside it (one Trainer ``checkpoint-100/``): that folder;
    * its sub-folders that are none of these but hold sub-model folders (a
      ``checkpoint-100/`` with ``encoder/`` and ``decoder/`` inside): each of them.

    Only names are listed (no file is read). ``[]`` when there are none.
    """
    folders = hf_model_folders(folder)
    steps = hf_steps(folders) if "" not in folders else {}
    if folders and not steps:  # one model, one step's sub-models, or one Trainer folder
        return [folder] if "" in folders or len(folders) > 1 else list(folders.values())
    found = _step_checkpoints(folder, steps)
    try:
        children = sorted(c for c in folder.iterdir() if c.is_dir() and c.name not in folders)
    except OSError:
        children = []
    return found + [c for c in children if hf_model_folders(c)]


def _step_checkpoints(base: Path, steps: Mapping[int, list[str]]) -> list[Path]:
    """One checkpoint per step of ``base``'s sub-model folders.

    That step's glob (:func:`~collapse_diag.io.checkpoint_kinds.hf_step_pattern`), or its
    one folder.
    """
    return [base / hf_step_pattern(names, step) for step, names in steps.items()]


def checkpoint_sha256(path: Path) -> str:
    """SHA-256 of a checkpoint file, or of a Hugging Face checkpoint's configs and weights.

    The ``checkpoint.sha256`` its report records.
    """
    folders = hf_model_folders(path) if not path.is_file() else {}
    return folder_sha256(folders) if folders else file_sha256(path)


def checkpoint_step(path: str | Path) -> tuple[int | None, str | None]:
    """The training step of a checkpoint and where it was read.

    The step is the first of :data:`STEP_KEYS` found in the checkpoint dict (read
    with ``weights_only=True``: nothing is unpickled), else a Hugging Face Trainer
    folder's ``global_step`` (its ``trainer_state.json``), else the last number in the
    file or folder name (``epoch=3-step=1200.ckpt`` -> 1200, ``checkpoint-*-200`` -> 200).

    Returns:
        ``(step, "key name" | "trainer_state.json" | "name")``, or ``(None, None)``
        when there is none.
    """
    path = Path(path)
    if not path.is_file():
        step = _trainer_step(path)
        if step is not None:
            return step, TRAINER_STATE
        numbers = _NUMBER.findall(path.name)
        return (int(numbers[-1]), "name") if numbers else (None, None)
    payload = None
    for mmap in (True, False):  # mmap reads only what is needed; old-format files need False
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
            break
        except Exception:  # noqa: BLE001 - unreadable here: the name may still tell
            continue
    if isinstance(payload, Mapping):
        for key in STEP_KEYS:
            value = payload.get(key)
            if isinstance(value, torch.Tensor) and value.numel() == 1:
                value = value.item()
            if isinstance(value, int) and not isinstance(value, bool):
                return int(value), key
    numbers = _NUMBER.findall(path.stem)
    return (int(numbers[-1]), "name") if numbers else (None, None)


def _trainer_step(folder: Path) -> int | None:
    """``global_step`` of a Hugging Face Trainer checkpoint folder's ``trainer_state.json``."""
    state = folder / TRAINER_STATE
    if not state.is_file():
        return None
    try:
        text = read_text_limited(state, TRAINER_STATE, MAX_CONFIG_BYTES)
        value = json.loads(text).get("global_step")
    except (OSError, ValueError, AttributeError, CollapseDiagError):
        return None
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def _natural_key(path: Path) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def order_checkpoints(paths: Sequence[Path], order: str = "step",
                      notes: list[str] | None = None) -> list[tuple[int, Path]]:
    """``(step, path)`` pairs in training order.

    Two files of the same step are one checkpoint when they hold the same bytes, or
    when one is Lightning's ``last*.ckpt`` copy of the other (``ModelCheckpoint(
    save_last=True)``): the other is kept and a sentence saying so is appended to
    ``notes``.

    Args:
        paths: The checkpoint files.
        order: ``"step"`` (the step of :func:`checkpoint_step`) or ``"name"``
            (natural order of the file names; the step is then the position 0, 1, ...).
        notes: Receives one sentence per file left out as a duplicate.

    Raises:
        InvalidParameterError: an unknown ``order``.
        CheckpointError: a checkpoint without a step, or two different ones with the
            same step.
    """
    if order == "name":
        return list(enumerate(sorted(paths, key=_natural_key)))
    if order != "step":
        raise invalid_parameter("order", "track", "'step' or 'name'", order)
    pairs: dict[int, Path] = {}
    for path in paths:
        step, _ = checkpoint_step(path)
        if step is None:
            raise CheckpointError(f"cannot tell the step of {str(path)!r}: it has no "
                                  f"{'/'.join(STEP_KEYS)} key and no number in its name; "
                                  "pass --order name to order the files by name.")
        if step in pairs:
            kept, dropped = _one_of(pairs[step], path, step)
            if notes is not None:
                notes.append(f"{str(dropped)!r} is a copy of step {step:,} "
                             f"({str(kept)!r}): analysed once.")
            pairs[step] = kept
            continue
        pairs[step] = path
    return sorted(pairs.items())


def _is_last_copy(path: Path) -> bool:
    return path.suffix == ".ckpt" and path.stem.split("-v")[0] == "last"


def _one_of(a: Path, b: Path, step: int) -> tuple[Path, Path]:
    """``(kept, dropped)`` of two files of one step, or a CheckpointError if both count."""
    if _is_last_copy(a) != _is_last_copy(b):
        return (b, a) if _is_last_copy(a) else (a, b)
    if checkpoint_sha256(a) == checkpoint_sha256(b):
        first, second = sorted((a, b), key=_natural_key)
        return first, second
    raise CheckpointError(f"{str(a)!r} and {str(b)!r} both have step {step:,} and hold "
                          "different weights: pass only one of them, or --order name.")


def _cache_key(sha: str, settings: Settings, data_sha: str, overrides: Mapping[str, Any]) -> str:
    fields = dict(checkpoint=sha, settings=settings.to_dict(), data=data_sha,
                  overrides=overrides, collapse_diag=__version__, report_schema=SCHEMA_VERSION)
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()


def _read_cache(path: Path) -> dict[str, Any] | None:
    if not path.is_file():  # missing, or not a regular file (a FIFO would block the read)
        return None
    try:
        text = read_text_limited(path, "cached report", MAX_REPORT_BYTES)
        check_json_text(text, "cached report")
        payload = json.loads(text)
    except (OSError, ValueError):  # DataError is a ValueError
        return None  # unreadable or half-written by an interrupted run: analyse again
    return payload if isinstance(payload, dict) and T.summary in payload else None


def _bar(items: list, show: bool) -> Any:
    return tqdm(items, desc="checkpoints", unit="checkpoint", file=sys.stderr, leave=False,
                disable=not (show and sys.stderr.isatty()))


def track(
    sources: Sequence[str | Path],
    out_dir: str | Path = "collapse-diag-trajectory",
    *,
    data: Batch | None = None,
    labels: Mapping[str, Any] | str | Path | None = None,
    full: bool = False,
    order: str = "step",
    factory: str | None = None,
    config: Mapping[str, Any] | str | Path | None = None,
    trust_checkpoint: bool = False,
    adapter: str | None = None,
    state_dict_prefix: str | None = None,
    method_map: Mapping[str, str] | Sequence[str] | None = None,
    show_progress: bool = False,
    **settings: Any,
) -> TrackResult:
    """Analyse each checkpoint (or read a monitor log) into a trajectory.

    Args:
        sources: Checkpoint files, folders or glob patterns; or one ``.jsonl``
            monitor log (:class:`~collapse_diag.runs.monitor.CollapseMonitor`).
        out_dir: Folder whose ``cache/`` keeps each checkpoint's report (resumable runs).
        data: Evaluation inputs (default: those stored in the first checkpoint).
        labels: Known factors of ``data`` (a dict, or a labels file; used by the probes
            under ``full``).
        full: Run the full analysis instead of the cheap preset.
        order: ``"step"`` or ``"name"`` (see :func:`order_checkpoints`).
        factory: ``module:callable`` building the model (see ``load_checkpoint``).
        config: Factory keyword arguments (dict or JSON file).
        trust_checkpoint: Allow unpickling (only for files you trust).
        adapter: The adapter reading the checkpoints (``None``: auto-detected).
        state_dict_prefix: Keep only the weights with this prefix (see ``load_checkpoint``).
        method_map: A method map for every checkpoint's model
            (:func:`~collapse_diag.model.method_map.map_methods`).
        show_progress: One progress bar over the checkpoints on stderr.
        **settings: :class:`~collapse_diag.config.settings.Settings` fields overriding the preset.

    Returns:
        A :class:`TrackResult`.

    Raises:
        CheckpointError: a missing/unsafe checkpoint, or steps that cannot be told.
        DataError: no inputs to analyse, or an unreadable monitor log.
        InvalidParameterError: a bad setting or option.
    """
    logs = [s for s in sources if str(s).endswith(".jsonl")]
    if logs and len(sources) > 1:
        raise invalid_parameter("sources", "track", "checkpoints, or one monitor log (.jsonl) "
                                "alone", [str(s) for s in sources])
    if logs:
        rows, logged, preset = read_monitor_log(sources[0])
        return TrackResult(build_trajectory(rows, settings=logged, source="monitor",
                                            preset=preset))
    kwargs = preset_settings(full, settings)
    cfg = Settings.from_kwargs("track", **kwargs)
    notes: list[str] = []
    ordered = order_checkpoints(find_checkpoints(sources), order, notes)
    load = {"factory": factory, "config": config, "trust_checkpoint": trust_checkpoint,
            "adapter": adapter, "state_dict_prefix": state_dict_prefix}
    data, labels = _inputs(ordered[0][1], data, labels, load)
    rows, analysed, reused = _analyse_each(ordered, Path(out_dir) / "cache", data, labels,
                                           load, method_map, cfg, kwargs, show_progress)
    trajectory = build_trajectory(rows, settings=cfg.to_dict(), source="checkpoints",
                                  preset="full" if full else "cheap",
                                  data_sha256=_data_sha256(data))
    return TrackResult(trajectory, analysed, reused, notes)


def _inputs(first_path: Path, data: Batch | None, labels: Mapping[str, Any] | str | Path | None,
            load: Mapping[str, Any]) -> tuple[Batch, Mapping[str, Any] | None]:
    """The inputs every checkpoint is analysed on (default: the first's) and their labels."""
    if data is None:
        first = load_checkpoint(first_path, **load)
        if first.data is None:
            raise DataError(f"the first checkpoint {str(first_path)!r} holds no 'data': pass "
                            "the evaluation inputs with --data FILE.")
        data, labels = first.data, first.labels if labels is None else labels
    data = validate_data(data, "the data")
    if isinstance(labels, (str, Path)):
        labels = load_labels(labels, num_examples(data))
    return data, labels


def _analyse_each(ordered: list[tuple[int, Path]], cache_dir: Path, data: Batch,
                  labels: Mapping[str, Any] | None, load: Mapping[str, Any],
                  method_map: Mapping[str, str] | Sequence[str] | None, cfg: Settings,
                  kwargs: dict[str, Any], show_progress: bool
                  ) -> tuple[list[dict[str, Any]], list[Path], list[Path]]:
    """One trajectory row per checkpoint: its cached report, or a new analysis (then cached).

    The cache key covers the file, the settings, the inputs and labels and everything
    that changes which model is built from the file (factory, config, adapter, prefix,
    method map). ``load``: the loader's keyword arguments.
    """
    config = load["config"]
    overrides = dict(load, trust_checkpoint=None,
                     methods=parse_map(method_map) if method_map else None,
                     config=config if isinstance(config, Mapping)
                     else (file_sha256(config) if config else None),
                     labels=_data_sha256({str(k): torch.as_tensor(np.asarray(v))
                                          for k, v in labels.items()}) if labels else None)
    data_sha = _data_sha256(data)
    rows, analysed, reused = [], [], []
    cache_dir.mkdir(parents=True, exist_ok=True)
    # torchrun: join the job now, so that rank 0 alone shows the bar and writes the cache
    # (every rank reads a step's cache before the analysis of that step, which no rank can
    # finish alone, so rank 0's writes never change another rank's choice).
    distributed.setup(torch.device(cfg.device))
    main = distributed.is_main()
    for step, path in _bar(ordered, show_progress and main):
        sha = checkpoint_sha256(path)
        cache = cache_dir / f"{_cache_key(sha, cfg, data_sha, overrides)}.json"
        report = _read_cache(cache)
        if report is None:
            loaded = load_checkpoint(path, **load)
            model = map_methods(loaded.model, method_map) if method_map else loaded.model
            report = analyze(model, data, labels=labels,
                             checkpoint={"path": str(path), "sha256": sha},
                             **kwargs).to_dict()
            if main:
                write_text_atomic(cache, json.dumps(report, allow_nan=False) + "\n")
            analysed.append(path)
        else:
            reused.append(path)
        rows.append(row_from_report(report, step, {"path": str(path), "sha256": sha}))
    return rows, analysed, reused
