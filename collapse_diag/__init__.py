"""collapse-diag: whether, where and why a trained VAE suffers posterior collapse.

Library use::

    import collapse_diag
    loaded = collapse_diag.load_checkpoint("ckpt.pt")     # model, stored data, labels, file
    report = collapse_diag.analyze(loaded, seed=0)
    print(report.summary["verdict"], report.summary["verdict_reason"])
    report.write_json("report.json")
    comparison = collapse_diag.compare(["runs/seed0", "runs/seed1"])   # report folders
    collapse_diag.write_comparison(comparison, "comparison/")

Importing the package imports neither torch nor matplotlib: every name below
except ``__version__`` and the exceptions is loaded on first use (PEP 562), so
``collapse-diag --help`` starts in a fraction of a second.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from collapse_diag._version import __version__
from collapse_diag.exceptions import (
    CheckpointError,
    CollapseDiagError,
    DataError,
    DiagnosticError,
    InvalidParameterError,
    ProtocolError,
)

if TYPE_CHECKING:  # for type checkers and IDEs only; nothing is imported at run time
    from collapse_diag.analysis import analyze
    from collapse_diag.config.settings import Settings
    from collapse_diag.io.checkpoint import LoadedCheckpoint, load_checkpoint, save_checkpoint
    from collapse_diag.model.encodings import Encodings
    from collapse_diag.model.method_map import map_methods
    from collapse_diag.model.protocol import ModelInfo, check_model
    from collapse_diag.model.wrap import wrap
    from collapse_diag.render import render_directory, write_report
    from collapse_diag.report.report import Report

__all__ = [
    "__version__",
    "analyze",
    "check_model",
    "load_checkpoint",
    "save_checkpoint",
    "write_report",
    "render_directory",
    "compare",
    "write_comparison",
    "Comparison",
    "wrap",
    "map_methods",
    "LoadedCheckpoint",
    "Encodings",
    "ModelInfo",
    "Report",
    "Settings",
    "CollapseDiagError",
    "CheckpointError",
    "ProtocolError",
    "DataError",
    "InvalidParameterError",
    "DiagnosticError",
]

_LAZY = {
    "analyze": ("collapse_diag.analysis", "analyze"),
    "write_report": ("collapse_diag.render", "write_report"),
    "render_directory": ("collapse_diag.render", "render_directory"),
    "check_model": ("collapse_diag.model.protocol", "check_model"),
    "ModelInfo": ("collapse_diag.model.protocol", "ModelInfo"),
    "load_checkpoint": ("collapse_diag.io.checkpoint", "load_checkpoint"),
    "save_checkpoint": ("collapse_diag.io.checkpoint", "save_checkpoint"),
    "LoadedCheckpoint": ("collapse_diag.io.checkpoint", "LoadedCheckpoint"),
    "Encodings": ("collapse_diag.model.encodings", "Encodings"),
    "Report": ("collapse_diag.report.report", "Report"),
    "Settings": ("collapse_diag.config.settings", "Settings"),
    "compare": ("collapse_diag.runs.comparison", "compare"),
    "Comparison": ("collapse_diag.runs.comparison", "Comparison"),
    "write_comparison": ("collapse_diag.render.comparison", "write_comparison"),
    "wrap": ("collapse_diag.model.wrap", "wrap"),
    "map_methods": ("collapse_diag.model.method_map", "map_methods"),
}


def __getattr__(name: str) -> Any:
    """Import the heavy names (torch, the diagnostics, plotting) on first use (PEP 562)."""
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module 'collapse_diag' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
