"""Reading a file written by ``torch.save`` without running code from it.

One function, :func:`read_torch_file`, used for checkpoints and for ``--data``
``.pt`` files. It reads with ``weights_only=True`` and, when that fails, tells
the two causes apart:

* the file is **damaged** (truncated, bytes flipped): its pickle stream does
  not parse to its ``STOP`` opcode (checked with :mod:`pickletools`, which only
  parses opcodes and builds nothing);
* the file is intact but holds **pickled Python objects** (or pickle features
  the weights-only reader does not support): loading it could run code, so it
  is refused unless the caller trusts it.

Before ``torch.load`` runs, two checks that cost one read of the file: every
member of a zip-format file must match its CRC-32 (flipped bytes inside a
weight tensor are *corrupt*, not silently analysed), and the pickle stream must
not describe objects whose building or hashing would not finish
(:mod:`collapse_diag.io.pickle_scan`).
"""

from __future__ import annotations

import pickle
import pickletools
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from collapse_diag.exceptions import CollapseDiagError
from collapse_diag.io.files import display_path
from collapse_diag.io.pickle_scan import scan, too_costly

__all__ = ["read_torch_file", "pickle_is_intact"]

#: Largest legacy (non-zip) file whose pickle stream is scanned to classify a failure.
_SCAN_LIMIT = 256 * 2**20


def pickle_is_intact(path: Path) -> bool:
    """Whether the file's pickle stream parses to its STOP opcode (a damaged one does not).

    The pickle is the ``*/data.pkl`` member of a zip file, or the file itself
    (legacy format). Only opcodes are parsed; nothing is built.
    """
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                names = [n for n in archive.namelist() if n.endswith("data.pkl")]
                if not names:
                    return False
                raw = archive.read(names[0])
        else:
            if path.stat().st_size > _SCAN_LIMIT:
                return True  # too big to scan: report what torch said
            raw = path.read_bytes()
        ops = [op.name for op, _, _ in pickletools.genops(raw)]
    except Exception:  # noqa: BLE001 - any parse failure means the stream is damaged
        return False
    return bool(ops) and ops[-1] == "STOP"


def read_torch_file(path: Path, what: str, trust: bool,
                    error: type[CollapseDiagError]) -> Any:
    """``torch.load`` a file safely; every failure is one line of ``error``.

    Args:
        path: The file (already checked to be a regular file).
        what: Its role in messages, e.g. ``"checkpoint"`` or ``"data file"``.
        trust: Allow unpickling arbitrary objects when the weights-only read fails.
        error: Exception class to raise.

    Returns:
        The loaded object.

    Raises:
        error: damaged file, pickled objects without ``trust``, or an unpickling failure.
    """
    with warnings.catch_warnings():  # the error below says it all, in one line
        warnings.filterwarnings("ignore", message="Detected pickle protocol")
        return _read(path, what, trust, error)


def _pickle_stream(path: Path) -> bytes | None:
    """The pickle stream of a torch file after its CRC check; ``None`` when it is not read.

    Raises:
        zipfile.BadZipFile: a member does not match its CRC-32.
    """
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()  # reads every member, checks its CRC-32
            if bad is not None:
                raise zipfile.BadZipFile(f"member {bad!r} does not match its CRC-32")
            names = [n for n in archive.namelist() if n.endswith("data.pkl")]
            return archive.read(names[0]) if names else None
    return path.read_bytes() if path.stat().st_size <= _SCAN_LIMIT else None


def _check_before_load(path: Path, what: str, error: type[CollapseDiagError]) -> None:
    """Refuse a corrupt zip member or a pickle whose objects would cost too much to build."""
    shown = display_path(path)
    try:
        raw = _pickle_stream(path)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
        raise error(f"cannot read {what} {shown!r}: it is corrupt ({err}); save it again or "
                    "copy it again.") from err
    if raw is None:
        return
    try:
        reason = too_costly(scan(raw))
    except Exception:  # noqa: BLE001 - a stream that does not parse: torch.load classifies it
        return
    if reason:
        raise error(f"cannot read {what} {shown!r}: {reason}; it is damaged or crafted, "
                    "refusing to load it.")


def _read(path: Path, what: str, trust: bool, error: type[CollapseDiagError]) -> Any:
    shown = display_path(path)
    _check_before_load(path, what, error)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        text = str(err)
        unsafe = "weights only" in text.lower() and ("GLOBAL" in text or pickle_is_intact(path))
        if not unsafe:
            raise error(
                f"cannot read {what} {shown!r}: it is truncated or corrupt (its pickle "
                "stream does not parse); save it again or copy it again."
            ) from err
        if not trust:
            hint = (", or pass --trust-checkpoint if you trust the file"
                    if what == "checkpoint" else "")
            raise error(
                f"{what} {shown!r} contains pickled Python objects, which can run code when "
                "loaded; refusing. Save plain Tensors / a state dict instead "
                f"(docs/model-protocol.md){hint}."
            ) from err
    except (Exception, SystemExit) as err:  # noqa: BLE001 - a damaged file fails in many ways
        first = str(err).splitlines()[0] if str(err) else ""
        raise error(
            f"cannot read {what} {shown!r}: it is truncated, corrupt or not a torch "
            f"file ({type(err).__name__}: {first})."
        ) from err
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except (Exception, SystemExit) as err:  # noqa: BLE001 - arbitrary unpickling failure
        first = str(err).splitlines()[0] if str(err) else ""
        raise error(
            f"cannot unpickle trusted {what} {shown!r}: {type(err).__name__}: {first}"
        ) from err
