"""Opening the files a user names: regular files only, bounded reads, printable names.

Every file collapse-diag reads (checkpoint, ``--config``, ``--data``,
report.json) goes through :func:`require_regular_file` first, so a FIFO, a
device or a directory is refused at once instead of blocking a read forever.
Reads of a size claimed *by the file* (a zip member's uncompressed size, an
``.npy`` header's shape) are checked against the file's real size or
:data:`MAX_UNPACKED_BYTES` before anything is allocated.
"""

from __future__ import annotations

import os
import stat
import zipfile
from pathlib import Path

from collapse_diag.exceptions import CollapseDiagError, DataError

__all__ = [
    "MAX_CONFIG_BYTES",
    "MAX_UNPACKED_BYTES",
    "display_path",
    "require_regular_file",
    "read_text_limited",
    "split_field_selector",
    "MAX_LOG_BYTES",
    "check_zip_sizes",
]

#: Largest ``--config`` JSON file read (bytes).
MAX_CONFIG_BYTES = 16 * 2**20
#: Largest total uncompressed size a zip-based file (.pt, .npz) may claim (bytes).
MAX_UNPACKED_BYTES = 32 * 2**30
#: Largest monitor log (JSONL) ``track`` reads.
MAX_LOG_BYTES = 2**30


def display_path(path: str | os.PathLike) -> str:
    """The path as printable text: bytes that are not UTF-8 become backslash escapes.

    File names on POSIX are bytes; Python decodes undecodable ones to lone
    surrogates, which cannot be printed or written as UTF-8.
    """
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def require_regular_file(path: str | os.PathLike, what: str,
                         error: type[CollapseDiagError] = DataError, fix: str = "") -> Path:
    """Check that ``path`` names an existing regular file (after following links).

    Args:
        path: The file.
        what: How to call it in the message, e.g. ``"checkpoint"``.
        error: The exception class to raise.
        fix: Extra advice appended to the "does not exist" message.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        error: missing, a directory, a FIFO/socket/device, or unreadable.
    """
    raw = os.fspath(path)
    shown = display_path(raw)
    if isinstance(raw, str) and raw.endswith(os.sep) or isinstance(raw, bytes) and \
            raw.endswith(os.sep.encode()):
        raise error(f"{what} {shown!r} ends with '{os.sep}', so it names a folder: "
                    "give the path of a file.")
    try:
        mode = os.stat(raw).st_mode
    except FileNotFoundError:
        raise error(f"{what} {shown!r} does not exist: check the path.{fix}") from None
    except OSError as err:
        raise error(f"cannot open {what} {shown!r}: {err.strerror}.") from err
    if stat.S_ISDIR(mode):
        raise error(f"{what} {shown!r} is a folder, not a file: give the path of a file.")
    if not stat.S_ISREG(mode):
        raise error(f"{what} {shown!r} is not a regular file (a FIFO, socket or device); "
                    "refusing to read it: copy the contents to a file first.")
    if not os.access(raw, os.R_OK):
        raise error(f"cannot read {what} {shown!r}: permission denied.")
    return Path(raw)


def read_text_limited(path: Path, what: str, limit: int,
                      error: type[CollapseDiagError] = DataError) -> str:
    """Read a UTF-8 text file of at most ``limit`` bytes (checked before reading)."""
    require_regular_file(path, what, error)
    size = path.stat().st_size
    if size > limit:
        raise error(f"{what} {display_path(path)!r} is {size} bytes; at most {limit} are read.")
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise error(f"{what} {display_path(path)!r} is not UTF-8 text ({err.reason} at "
                    f"byte {err.start}).") from err


def split_field_selector(path: str | os.PathLike) -> tuple[str | os.PathLike, list[str] | None]:
    """``FILE:name1,name2`` -> ``(FILE, [names])`` when FILE exists and the whole path does not.

    The selector of ``--labels`` and ``--data`` for files holding named fields
    (a ``.jsonl`` line's keys, a table's columns); any other path comes back as it is.
    """
    text = os.fspath(path)
    head, sep, tail = text.rpartition(":")
    if sep and head and tail and not os.path.exists(text) and os.path.exists(head):
        return head, [n.strip() for n in tail.split(",") if n.strip()]
    return path, None


def check_zip_sizes(path: Path, what: str, error: type[CollapseDiagError] = DataError) -> None:
    """Refuse a zip-based file whose members claim more than :data:`MAX_UNPACKED_BYTES`.

    A file that is not a zip archive is left to its reader. Reading the central
    directory costs one seek; nothing is decompressed.
    """
    try:
        if not zipfile.is_zipfile(path):
            return
        with zipfile.ZipFile(path) as archive:
            claimed = sum(info.file_size for info in archive.infolist())
    except (OSError, zipfile.BadZipFile, ValueError):
        return  # a damaged archive: its reader gives the precise message
    if claimed > MAX_UNPACKED_BYTES:
        raise error(
            f"{what} {display_path(path)!r} claims {claimed} bytes once unpacked, more than the "
            f"limit of {MAX_UNPACKED_BYTES} (collapse_diag.io.files.MAX_UNPACKED_BYTES); it is "
            "damaged or a decompression bomb."
        )
