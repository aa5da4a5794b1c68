"""What every document writer (report, comparison, trajectory) checks and how it writes.

:func:`replace_set` writes a set of documents through
:func:`collapse_diag.io.file_set.replace_files` (written aside, swapped in whole)
and turns a folder that cannot be written into :class:`ReportWriteError`;
:func:`check_dpi` bounds the plots' resolution, declared once in :data:`MAX_DPI`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from collapse_diag.exceptions import ReportWriteError, invalid_parameter
from collapse_diag.io.file_set import replace_files
from collapse_diag.io.files import display_path

__all__ = ["MAX_DPI", "MIN_DPI", "check_dpi", "replace_set"]

#: Lowest and highest resolution of the plots (dots per inch). At 1200 dpi a
#: 8.5 x 6 inch figure is already 10200 x 7200 pixels (290 MB as RGBA).
MIN_DPI, MAX_DPI = 10, 1200


def check_dpi(dpi: object, where: str) -> None:
    """Refuse a ``dpi`` that is not an int in [MIN_DPI, MAX_DPI].

    Raises:
        InvalidParameterError: otherwise.
    """
    if isinstance(dpi, bool) or not isinstance(dpi, int) or not MIN_DPI <= dpi <= MAX_DPI:
        raise invalid_parameter("dpi", where, f"an int in [{MIN_DPI}, {MAX_DPI}]", dpi)


def replace_set(out_dir: str | Path, files: Mapping[str, bytes], members: Iterable[str],
                what: str) -> list[str]:
    """Write ``files`` into ``out_dir`` as one set (see ``replace_files``); stale names back.

    Args:
        out_dir: The output folder.
        files: Relative path -> content.
        members: Every relative path of the set.
        what: The set in the message, e.g. ``"the report"``.

    Raises:
        ReportWriteError: the folder cannot be written; it holds what it held before.
    """
    try:
        return replace_files(out_dir, files, members)
    except OSError as err:
        where = display_path(err.filename) if err.filename else ""
        shown = display_path(out_dir)
        detail = f" ({where})" if where and where.rstrip("/") != shown.rstrip("/") else ""
        raise ReportWriteError(
            f"cannot write {what} into {shown!r}: {err.strerror or err}{detail}; the folder is "
            "left as it was (choose a writable folder with --out)."
        ) from err
