"""Shared pieces of the ``collapse-diag`` commands: exit codes, error handling, common options.

The options of the analysis settings are generated from their declarations
(:mod:`collapse_diag_cli.setting_options`, re-exported here).

Every command module imports from here (never from :mod:`collapse_diag_cli.main`),
so that ``python -m collapse_diag_cli.main`` has no import cycle.
"""

from __future__ import annotations

import functools
import sys
import traceback
from collections.abc import Callable
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
     violation, empty data, too few inputs), or no report could be written
  4  a part failed: a diagnostic, a plot or a document (report.json is
     still written and names it under errors)
  130  interrupted (Ctrl-C); an earlier report in --out is left intact
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


def handle_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn library errors into one line on stderr and the documented exit code.

    Exit code 4 is returned only by a command that wrote its report; an error
    that escapes a command means nothing was written, so it maps to at most 3.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        debug = kwargs.get("debug", False)
        try:
            return func(*args, **kwargs)
        except CollapseDiagError as err:
            if debug:
                traceback.print_exc()
            code = EXIT_UNUSABLE if err.exit_code == EXIT_DIAGNOSTIC_FAILED else err.exit_code
            _fail(_one_line(str(err)), code)
        except KeyboardInterrupt:
            _fail("interrupted.", 130)
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
