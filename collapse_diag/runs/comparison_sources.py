"""The models a comparison reads: report folders, report.json files, checkpoints, Reports.

A report folder may hold ``encodings.npz`` (``analyze --save-encodings``); it is
checked against the report (same input hash and count) before use. A
checkpoint is analysed here, with the comparison's settings, and its encodings
are kept in memory.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from collapse_diag.exceptions import DataError, invalid_parameter
from collapse_diag.model.encodings import Encodings
from collapse_diag.report.report import Report
from collapse_diag.report.schema import PROVENANCE_KEY as P

__all__ = ["ComparedModel", "load_source"]


@dataclass(frozen=True)
class ComparedModel:
    """One model of a comparison.

    Attributes:
        name: As given by the caller (e.g. the command-line argument).
        report: Its report.
        encodings: Its encoder outputs, or ``None`` when they were not saved.
        source: Where it came from: ``"report"``, ``"checkpoint"`` or ``"library"``.
    """

    name: str
    report: Report
    encodings: Encodings | None = None
    source: str = "library"


def load_source(source: Any, name: str, analyse: dict[str, Any]) -> ComparedModel:
    """One ``compare`` source as a :class:`ComparedModel` (see :func:`collapse_diag.compare`).

    Args:
        source: A report folder, a report.json path, a checkpoint path, a Report,
            a ``(Report, Encodings)`` pair or a ComparedModel.
        name: Its name in the comparison.
        analyse: Keyword arguments of :func:`_analyse_checkpoint` for checkpoints.

    Raises:
        InvalidParameterError: an object of another type.
        DataError: a missing path, or encodings that do not belong to the report.
    """
    from collapse_diag.report.encodings_file import ENCODINGS_FILE, load_encodings

    if isinstance(source, ComparedModel):
        return source
    if isinstance(source, Report):
        return ComparedModel(name, source)
    if isinstance(source, tuple) and len(source) == 2 and isinstance(source[0], Report):
        return ComparedModel(name, source[0], source[1])
    if not isinstance(source, (str, Path)):
        raise invalid_parameter("sources", "compare", "report folders, report.json files, "
                                "checkpoints, Reports or (Report, Encodings) pairs", source)
    path = Path(source)
    if _checkpoint_folder(path):  # a pythae or Hugging Face folder, or a step's glob
        return _analyse_checkpoint(path, name, **analyse)
    if not path.exists() and any(c in str(source) for c in "*?["):
        raise DataError(f"{str(source)!r} matches no file (the pattern reached compare as it "
                        "is): check the pattern, or name the report folders / checkpoints.")
    if path.is_dir() or path.suffix == ".json":
        report_path = path / "report.json" if path.is_dir() else path
        report = Report.from_json(report_path)
        npz = report_path.parent / ENCODINGS_FILE
        encodings = None
        if npz.exists():  # a FIFO or folder there is refused by load_encodings, not skipped
            encodings, data_hash = load_encodings(npz)
            if data_hash != (report.provenance or {}).get(P.data_sha256, data_hash) or \
                    encodings.n_examples != report.n_examples:
                raise DataError(f"{str(npz)!r} does not belong to {str(report_path)!r} (other "
                                "inputs): rerun `collapse-diag analyze --save-encodings`.")
        return ComparedModel(name, report, encodings, "report")
    if not path.exists():
        raise DataError(f"{str(path)!r} does not exist: pass report folders (from "
                        "`collapse-diag analyze`) or checkpoints.")
    return _analyse_checkpoint(path, name, **analyse)


def _checkpoint_folder(path: Path) -> bool:
    """A folder (or a glob of Hugging Face folders) that holds a model, not a report."""
    from collapse_diag.io.checkpoint_kinds import detect_adapter

    return (not (path / "report.json").exists()
            and detect_adapter(path) in ("huggingface", "pythae"))


def _analyse_checkpoint(path: Path, name: str, data: Any = None, labels: Any = None,
                        load: dict[str, Any] | None = None, method_map: Any = None,
                        show_progress: bool = False,
                        settings: dict[str, Any] | None = None) -> ComparedModel:
    """Load and analyse one checkpoint; ``load``: keyword arguments of ``load_checkpoint``."""
    from collapse_diag.analysis import analyze, model_info
    from collapse_diag.config.settings import Settings
    from collapse_diag.io.checkpoint import load_checkpoint
    from collapse_diag.io.data import load_data
    from collapse_diag.model.method_map import map_methods
    from collapse_diag.report.encodings_file import load_encodings

    loaded = load_checkpoint(path, **(load or {}))
    if method_map:
        loaded.model = map_methods(loaded.model, method_map)
    if data is not None:
        inputs = load_data(data, loaded.model) if isinstance(data, (str, Path)) else data
    elif loaded.data is not None:
        inputs = loaded.data
    else:
        raise DataError(f"checkpoint {str(path)!r} holds no 'data': pass the evaluation inputs "
                        "(--data FILE).")
    settings = settings or {}
    # Encodings [N, T, D] of sequential latents are not compared yet: none are kept for them.
    device = Settings.from_kwargs("compare", **settings).device
    keep = not model_info(loaded.model, inputs, device).sequential
    with tempfile.TemporaryDirectory() as tmp:
        npz = Path(tmp) / "encodings.npz"
        report = analyze(loaded, None if data is None else inputs, labels=labels,
                         checkpoint={"path": str(path), "sha256": loaded.sha256,
                                     "adapter": loaded.adapter},
                         show_progress=show_progress, save_encodings=npz if keep else None,
                         **settings)
        # torchrun: rank 0 alone writes the file (analyze); the other ranks write nothing
        # and go without the encodings (they print and write nothing either).
        encodings = load_encodings(npz)[0] if keep and npz.is_file() else None
    return ComparedModel(name, report, encodings, "checkpoint")
