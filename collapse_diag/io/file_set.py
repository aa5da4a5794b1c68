"""Replacing the files of a report as a set: written aside, then swapped in whole.

A report is several files that must agree (report.json, report.md, report.html,
the PNGs under plots/; a comparison's or a trajectory's own). Writing them one
after the other into the output folder leaves, after a failure, a signal or a
partial ``--format``, new files beside old ones that contradict them.
:func:`replace_files` instead

1. writes every new file into a temporary folder beside the output folder
   (``.<name>.collapse-diag-staging-*``; inside it when the parent is not
   writable or on another file system, so that every move is a rename);
2. with SIGINT, SIGTERM and SIGHUP deferred (a signal arriving then is raised
   again once the swap is done), moves the earlier members of the set aside, then
   moves the new ones in; if a move fails (an unwritable ``plots/``, a file
   where a folder belongs), every move made so far is undone and the error is
   raised, so the earlier report stays whole;
3. deletes the earlier members and the staging folder.

A run killed with SIGKILL (or the OOM killer) cannot clean up: its staging folder
stays. The next run writing to the same folder removes the staging folders whose
process (same host, its pid in the name) no longer runs.

Members of the set that this run does not write are *stale*: they are removed
(they would describe another run) and their names returned.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import tempfile
import threading
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

__all__ = ["STAGING_MARK", "replace_files", "signals_deferred"]

#: Part of the name of a staging folder (a run killed with SIGKILL leaves one behind; the
#: next run writing to the same folder on the same host removes it).
STAGING_MARK = ".collapse-diag-staging-"
#: The signals deferred while a set is swapped in (the ones the CLI turns into an exit).
DEFERRED_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP")
                         if hasattr(signal, name))


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Inside the block, SIGINT, SIGTERM and SIGHUP are recorded; each is raised again after.

    Python runs signal handlers in the main thread between bytecodes, whichever
    thread the operating system delivered the signal to (so blocking it with
    ``pthread_sigmask`` in this thread would not be enough): the handlers are
    swapped for one that records the signal, and the block's end restores them
    and raises each recorded signal, so its own handler (Ctrl-C's
    KeyboardInterrupt, the CLI's exit, the default termination) runs once the
    block is done. Outside the main thread no handler can interrupt the block.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    previous = {number: signal.signal(number, lambda signum, frame: pending.append(signum))
                for number in DEFERRED_SIGNALS}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, signal.SIG_DFL if handler is None else handler)
        for number in dict.fromkeys(pending):
            signal.raise_signal(number)


def _host() -> str:
    """This machine's name with every character but letters and digits as ``_``."""
    return "".join(c if c.isalnum() else "_" for c in socket.gethostname()) or "host"


def _owner() -> str:
    """This process in a staging folder's name: ``<host>-<pid>-``."""
    return f"{_host()}-{os.getpid()}-"


def _staging_dir(out: Path) -> Path:
    """A new empty folder beside ``out`` on the same file system, else inside ``out``.

    Named ``.<name>.collapse-diag-staging-<host>-<pid>-*`` (``.collapse-diag-staging-...``
    inside ``out``), so that a later run can tell one its owner left behind.
    """
    target = out.resolve()
    try:
        if target.parent.stat().st_dev == target.stat().st_dev:
            return Path(tempfile.mkdtemp(prefix=f".{target.name}{STAGING_MARK}{_owner()}",
                                         dir=target.parent))
    except OSError:
        pass  # the parent is not writable: stage inside the folder itself
    return Path(tempfile.mkdtemp(prefix=f"{STAGING_MARK}{_owner()}", dir=target))


def _remove_abandoned(out: Path) -> list[Path]:
    """Remove the staging folders of ``out`` whose process is gone (killed by SIGKILL).

    Only folders named by this host (``<host>-<pid>-``) whose pid no longer runs: a
    folder of another machine sharing the file system, or of a live process, is left
    alone. POSIX only (elsewhere probing a pid could end that process). Returns them.
    """
    if os.name != "posix":
        return []
    target = out.resolve()
    patterns = [(target.parent, f".{target.name}{STAGING_MARK}{_host()}-"),
                (target, f"{STAGING_MARK}{_host()}-")]
    removed = []
    for folder, prefix in patterns:
        try:
            candidates = [p for p in folder.iterdir() if p.name.startswith(prefix)]
        except OSError:
            continue
        for path in candidates:
            pid = path.name[len(prefix):].split("-", 1)[0]
            if pid.isdigit() and not _running(int(pid)) and path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
    return removed


def _running(pid: int) -> bool:
    """Whether a process with this pid exists (POSIX: signal 0 probes without sending)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # someone else's process, or a pid we cannot probe: keep its folder
    return True


def _depth_first(members: Iterable[str]) -> list[str]:
    """Nested members first, so that a failing subfolder stops the swap before any top file."""
    return sorted(dict.fromkeys(members), key=lambda m: (-m.count("/"), m))


def replace_files(out_dir: str | Path, files: Mapping[str, bytes],
                  members: Iterable[str]) -> list[str]:
    """Write ``files`` into ``out_dir`` as one set, replacing the earlier ``members``.

    Args:
        out_dir: The output folder (created if needed).
        files: Relative path (``"report.md"``, ``"plots/kl.png"``) -> content.
        members: Every relative path that belongs to the set (files or folders,
            e.g. ``"models"`` whose files are ``"models/a/report.json"``); the earlier
            ones are replaced, and those this run does not write are removed.

    Returns:
        The stale members removed, sorted.

    Raises:
        OSError: a file could not be written or moved; ``out_dir`` then holds
            exactly what it held before.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = list(dict.fromkeys([*members, *files]))
    tops = [m for m in names if not any(m.startswith(f"{p}/") for p in names)]
    _remove_abandoned(out)
    stage = _staging_dir(out)
    try:
        new = stage / "new"
        for name, data in files.items():
            path = new / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            os.chmod(path, 0o666 & ~_umask())
        old = [m for m in _depth_first(tops) if os.path.lexists(out / m)]
        _swap(out, stage, _depth_first(files), old)
        return sorted(m for m in old if m not in files
                      and not any(f.startswith(f"{m}/") for f in files))
    finally:
        with signals_deferred():  # a signal now would leave the staging folder behind
            shutil.rmtree(stage, ignore_errors=True)


def _swap(out: Path, stage: Path, new: list[str], old: list[str]) -> None:
    """Move ``old`` members of ``out`` to ``stage/old``, then ``stage/new`` into ``out``."""
    moves: list[tuple[Path, Path]] = []
    with signals_deferred():
        try:
            for name in old:
                _move(out / name, stage / "old" / name, moves)
            for name in new:
                _move(stage / "new" / name, out / name, moves)
        except OSError:
            for source, target in reversed(moves):
                with contextlib.suppress(OSError):
                    os.replace(target, source)
            raise
        for name in old:  # a folder left empty by the stale files it held
            parent = (out / name).parent
            if parent != out and not os.path.lexists(out / name):
                with contextlib.suppress(OSError):
                    parent.rmdir()


def _move(source: Path, target: Path, moves: list[tuple[Path, Path]]) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(source, target)
    moves.append((source, target))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
