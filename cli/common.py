"""Shared pieces of the ``collapse-diag`` commands: exit codes, error handling, common options.

The options of the analysis settings are generated from their declarations
(:mod:`collapse_diag_cli.setting_options`, re-exported here).

Every command module imports from here (never from :mod:`collapse_diag_cli.main`),
so that ``python -m collapse_diag_cli.main`` has no import cycle.
"""

from __future__ import annotations

import contextlib
import functools
import signal
import sys
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import click

from collapse_diag.exceptions import (
    EXIT_DIAGNOSTIC_FAILED,
    EXIT_UNUSABLE,
    CollapseDiagError,
)
from collapse_diag.report.formats import REPORT_FORMATS
from collapse_diag_cli.setting_options import (  # noqa: F401 - re-exported for the commands
    CLI_SETTINGS,
    given_settings,
    setting_option,
    settings_options,
)

EXIT_CODES_HELP = """\b
Exit codes:
  0  success
  1  the verdict is 'collapsed' and --fail-on-collapse was given
  2  bad usage (unknown option, bad parameter value)
  3  the checkpoint, the data or the model is unusable (missing or truncated
     file, unsafe pickle, wrong keys, factory not importable, protocol
     violation, empty data, too few inputs, beyond a limit of
     collapse_diag/config/limits.py), or no report could be written (the
     folder is left as it was)
  4  a part failed: a diagnostic, a plot or a document (report.json is
     still written and names it under errors)
  130  interrupted (Ctrl-C; 143 SIGTERM, 129 SIGHUP): the report in --out is
       the earlier one, whole (or this run's, whole, when the signal came
       while its files were being swapped in)
"""

FORMATS = REPORT_FORMATS


def _formats_option(allowed: tuple[str, ...]) -> Callable[..., tuple[str, ...]]:
    """A click callback parsing a comma-separated subset of ``allowed``."""

    def parse(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
        names = tuple(dict.fromkeys(v.strip() for v in value.split(",") if v.strip()))
        if not names or any(n not in allowed for n in names):
            raise click.BadParameter(f"must be a comma-separated subset of "
                                     f"{','.join(allowed)}; got {value!r}.")
        return names

    return parse


_parse_formats = _formats_option(FORMATS)


def _fail(message: str, code: int) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _one_line(text: str) -> str:
    """An error message as one printable line (no newlines, no unencodable characters)."""
    return " ".join(text.split()).encode("utf-8", "backslashreplace").decode("utf-8")


class user_code_exit:  # noqa: N801 - used as a context manager, reads like a statement
    """Turn what user code (a factory, the model) raises outside ``Exception`` into exit code 3.

    ``SystemExit``, ``GeneratorExit`` and other ``BaseException`` subclasses
    would otherwise escape every handler as a traceback; ``KeyboardInterrupt``
    keeps its meaning (Ctrl-C). The commands' own ``sys.exit`` calls sit outside
    this block.
    """

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, value: Any, tb: Any) -> bool:
        if kind is None or issubclass(kind, (Exception, KeyboardInterrupt)):
            return False
        if issubclass(kind, SystemExit):
            raise CollapseDiagError(
                f"the model's code called sys.exit({value.code!r}) while being loaded or run; "
                "remove the exit call from the factory / model methods."
            ) from value
        raise CollapseDiagError(
            f"the model's code raised {kind.__name__}{f' ({value})' if str(value) else ''}, "
            "which is not an Exception, while being loaded or run; raise an Exception "
            "subclass from the factory / model methods instead."
        ) from value


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where the program is, as Ctrl-C raises KeyboardInterrupt."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_interrupted(signum: int, frame: Any) -> None:
    raise Interrupted(signum)


@contextlib.contextmanager
def signals_interrupt() -> Iterator[None]:
    """Inside the block, SIGTERM and SIGHUP interrupt the command as SIGINT does.

    The interruption unwinds the command (temporary files removed, the earlier
    report untouched: the files of a report are swapped in as a set with these
    signals deferred, collapse_diag/io/file_set.py) and exits 128 + the signal number.
    A signal ignored when the command starts stays ignored: ``nohup collapse-diag ...``
    keeps running when the terminal hangs up.
    """
    previous = {}
    try:
        for name in ("SIGTERM", "SIGHUP"):
            number = getattr(signal, name, None)
            if number is not None and signal.getsignal(number) != signal.SIG_IGN:
                previous[number] = signal.signal(number, _raise_interrupted)
    except ValueError:  # not the main thread (a library caller's thread): leave them be
        pass
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def interrupted_exit(err: KeyboardInterrupt) -> tuple[str, int]:
    """The message and exit code of an interruption: 128 + the signal number (130 for Ctrl-C)."""
    number = getattr(err, "signum", signal.SIGINT)
    if number == signal.SIGINT:
        return "interrupted.", 128 + number
    return f"interrupted by {signal.Signals(number).name}.", 128 + number


def say_removed(removed: list[str], out: Any, quiet: bool = False) -> None:
    """Name the stale files of an earlier run removed from ``out`` (one line on stdout)."""
    from collapse_diag.io.files import display_path

    if not removed:
        return
    folders: dict[str, int] = {}
    names = []
    for name in removed:
        head, sep, _ = name.partition("/")
        if sep:
            folders[head] = folders.get(head, 0) + 1
        else:
            names.append(name)
    names += [f"{head}/ ({count} file{'s' * (count > 1)})" for head, count in folders.items()]
    click.echo(f"removed from {display_path(out)!r}, written by an earlier run and not by this "
               f"one: {', '.join(names)}")


def handle_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn library errors into one line on stderr and the documented exit code.

    Exit code 4 is returned only by a command that wrote its report; an error
    that escapes a command means nothing was written, so it maps to at most 3.
    SIGTERM and SIGHUP are handled as SIGINT (:func:`signals_interrupt`).
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        debug = kwargs.get("debug", False)
        try:
            with signals_interrupt():
                return func(*args, **kwargs)
        except CollapseDiagError as err:
            if debug:
                traceback.print_exc()
            code = EXIT_UNUSABLE if err.exit_code == EXIT_DIAGNOSTIC_FAILED else err.exit_code
            _fail(_one_line(str(err)), code)
        except KeyboardInterrupt as err:
            _fail(*interrupted_exit(err))
        except (click.exceptions.Exit, click.ClickException, SystemExit):
            raise
        except Exception as err:  # noqa: BLE001 - the CLI never shows a bare traceback
            if debug:
                traceback.print_exc()
            _fail(_one_line(f"unexpected {type(err).__name__}: {err} (rerun with --debug for "
                            "the traceback and report it)"), EXIT_UNUSABLE)

    return wrapper


def _common_options(func: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--quiet", "-q", is_flag=True,
                     help="No progress bars (analyze: no per-dimension table either)."),
        click.option("--debug", is_flag=True,
                     help="Show the full traceback when something fails."),
    ]
    for option in reversed(options):
        func = option(func)
    return func
