"""The error hierarchy of collapse-diag.

Every error a user can cause derives from :class:`CollapseDiagError` *and* from
the matching built-in (``ValueError``, ``TypeError``, ``RuntimeError``), so an
existing ``except ValueError`` still catches it (the scikit-learn convention).
Each class carries the CLI exit code it maps to.
"""

from __future__ import annotations

__all__ = [
    "CollapseDiagError",
    "CheckpointError",
    "ProtocolError",
    "DataError",
    "InvalidParameterError",
    "DiagnosticError",
    "ReportWriteError",
    "EXIT_OK",
    "EXIT_COLLAPSED",
    "EXIT_USAGE",
    "EXIT_UNUSABLE",
    "EXIT_DIAGNOSTIC_FAILED",
]

#: Exit codes of the ``collapse-diag`` command (documented in ``--help`` and docs/cli.md).
EXIT_OK = 0
EXIT_COLLAPSED = 1
EXIT_USAGE = 2
EXIT_UNUSABLE = 3
EXIT_DIAGNOSTIC_FAILED = 4


class CollapseDiagError(Exception):
    """Base class of every error collapse-diag raises on purpose."""

    exit_code: int = EXIT_UNUSABLE


class CheckpointError(CollapseDiagError, ValueError):
    """The checkpoint file is missing, unreadable, unsafe or in the wrong format."""

    exit_code = EXIT_UNUSABLE


class ProtocolError(CollapseDiagError, TypeError):
    """The model does not follow the encoder/decoder protocol (see docs/model-protocol.md)."""

    exit_code = EXIT_UNUSABLE


class DataError(CollapseDiagError, ValueError):
    """The evaluation inputs are missing, empty or malformed."""

    exit_code = EXIT_UNUSABLE


class InvalidParameterError(CollapseDiagError, ValueError):
    """A setting is out of range or of the wrong type."""

    exit_code = EXIT_USAGE


class DiagnosticError(CollapseDiagError, RuntimeError):
    """A diagnostic could not be computed (for example the decoder returned NaN)."""

    exit_code = EXIT_DIAGNOSTIC_FAILED


class ReportWriteError(CollapseDiagError, OSError):
    """A report, comparison or trajectory could not be written (the folder is left as it was)."""

    exit_code = EXIT_UNUSABLE


def invalid_parameter(name: str, where: str, expected: str, got: object) -> InvalidParameterError:
    """Build the one message template used for every bad parameter.

    Args:
        name: Parameter name.
        where: The function or command that received it.
        expected: What it must be, e.g. ``"an int >= 1"``.
        got: The value received.

    Returns:
        An :class:`InvalidParameterError` to raise.
    """
    return InvalidParameterError(
        f"The '{name}' parameter of {where} must be {expected}. Got {got!r} instead."
    )
