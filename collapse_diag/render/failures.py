"""How a plot or document that fails to render is named in ``report.errors``.

The report writer (:func:`collapse_diag.render.write_report`) isolates such
failures as the analysis isolates a failing diagnostic: the failure is recorded
under ``plot:<name>`` or ``document:<format>`` next to the diagnostics' entries,
the documents name it where the figure would have been, and report.json is
still written (the CLI exits 4, docs/cli.md).
"""

from __future__ import annotations

__all__ = ["RENDER_ERROR_PREFIXES", "error_message", "is_render_error", "render_error_key"]

#: Prefixes of the ``report.errors`` keys of render failures (the others name diagnostics).
RENDER_ERROR_PREFIXES = ("plot:", "document:")


def render_error_key(kind: str, name: str) -> str:
    """The ``report.errors`` key of a failed figure (``kind="plot"``) or document."""
    return f"{kind}:{name}"


def is_render_error(key: str) -> bool:
    """Whether a ``report.errors`` key names a failed plot or document (not a diagnostic)."""
    return key.startswith(RENDER_ERROR_PREFIXES)


def error_message(err: BaseException) -> str:
    """``"Type: message"`` on one line, as diagnostic failures are recorded."""
    return " ".join(f"{type(err).__name__}: {err}".split())
