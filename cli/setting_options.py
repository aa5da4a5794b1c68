"""Click options generated from the settings' declarations (``collapse_diag.config.settings``).

An option's flag, type (range or choices), default and help are read from the
:class:`~collapse_diag.config.declare.Setting` of its field, so the command line, the library's
validation and docs/cli.md cannot drift apart. Every setting is an option of
``analyze``, ``compare`` and ``track`` unless :data:`NON_CLI_SETTINGS` says why not.

``python -m collapse_diag_cli.setting_options docs/cli.md`` rewrites the settings
table of docs/cli.md (between its ``settings:start`` / ``settings:end`` markers);
``tests/test_setting_options.py`` fails while it is out of date.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import click

from collapse_diag.config.declare import Setting
from collapse_diag.config.settings import SETTINGS

__all__ = ["CLI_SETTINGS", "NON_CLI_SETTINGS", "FiniteFloatRange", "setting_option",
           "settings_options", "settings_table", "given_settings"]

#: Settings that are no command-line option, each with the reason.
NON_CLI_SETTINGS: Mapping[str, str] = {
    "diagnostics": "every command writes a complete report (track's cheap preset picks its "
                   "own); a subset is chosen in the library: analyze(..., diagnostics=[...])",
}

#: The settings every analysing command takes as options, in declaration order.
CLI_SETTINGS: tuple[str, ...] = tuple(n for n in SETTINGS if n not in NON_CLI_SETTINGS)

_METAVAR = {int: "N", float: "X", str: "TEXT"}
START, END = "<!-- settings:start -->", "<!-- settings:end -->"


class FiniteFloatRange(click.FloatRange):
    """A click float range that also refuses ``nan`` (which compares false to any bound)."""

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Any:
        """Convert like :class:`click.FloatRange`, then refuse a value that is not finite."""
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{number} is not a finite number.", param, ctx)
        return number


def _param_type(spec: Setting) -> click.ParamType:
    if spec.choices is not None:
        return click.Choice(spec.choices)
    bounds = {"min": spec.low, "max": spec.high, "min_open": spec.low_open,
              "max_open": spec.high_open}
    if spec.kind is int:
        return click.IntRange(**bounds)
    if spec.kind is float:
        return FiniteFloatRange(**bounds)
    if spec.kind is str:
        return click.STRING
    raise TypeError(f"setting {spec.name!r} of type {spec.kind.__name__} has no command-line "
                    "form: give it one in setting_options._param_type or list it in "
                    "NON_CLI_SETTINGS with the reason.")


def _shown(spec: Setting, value: Any) -> str:
    return str(spec.none_means) if value is None else str(value)


def setting_option(name: str, *, shown_default: Callable[[Setting], str] | None = None,
                   note: str = "") -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The click option of one setting.

    Args:
        name: The :class:`~collapse_diag.config.settings.Settings` field.
        shown_default: For a command that fills in what is not given (``track``'s preset):
            the option's default is then ``None`` and ``--help`` shows this text instead.
        note: A sentence appended to the declared help (what the command does with it).

    Returns:
        A click decorator adding ``--flag`` (``--flag/--no-flag`` for a bool) whose
        parameter name is the setting's name.
    """
    return _option(SETTINGS[name], shown_default, note)


def _option(spec: Setting, shown_default: Callable[[Setting], str] | None,
            note: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    name = spec.name
    text = f"{spec.help} {note}".strip()
    if shown_default is not None:
        default, show = None, shown_default(spec)
    else:
        default = spec.default
        show = True if default is not None else _shown(spec, None)
    if spec.kind is bool:
        flags = f"{spec.cli_flag}/--no-{spec.cli_flag[2:]}"
        return click.option(flags, name, default=default, show_default=show, help=text)
    metavar = None if spec.choices is not None else _METAVAR.get(spec.kind)
    return click.option(spec.cli_flag, name, type=_param_type(spec), default=default,
                        show_default=show, help=text, metavar=metavar)


def settings_options(*names: str, shown_default: Callable[[Setting], str] | None = None
                     ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The click options of several settings (default: :data:`CLI_SETTINGS`), in that order.

    Args:
        *names: The settings; none: every setting in :data:`CLI_SETTINGS`.
        shown_default: As for :func:`setting_option`.

    Returns:
        A click decorator; the command receives each setting as a keyword argument
        named like the field.
    """
    options = [setting_option(n, shown_default=shown_default) for n in names or CLI_SETTINGS]

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


def given_settings(values: Mapping[str, Any]) -> dict[str, Any]:
    """The settings a user gave: those of ``values`` that are not ``None``."""
    return {k: v for k, v in values.items() if v is not None}


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _readable(value: float) -> str:
    """A bound as people write it: 2^62, 2^32 - 1, 10^6, 100, 0.001."""
    if not float(value).is_integer():
        return f"{value:g}"
    n = int(value)
    k = n.bit_length()
    if n >= 10**5:
        if n == 2 ** (k - 1):
            return f"2^{k - 1}"
        if n == 2**k - 1:
            return f"2^{k} - 1"
        if n == 10 ** (len(str(n)) - 1):
            return f"10^{len(str(n)) - 1}"
    return str(n)


def settings_table() -> str:
    """The Markdown table of every command-line setting: option, default, range, meaning."""
    rows = ["| option | default | range | meaning |", "|---|---|---|---|"]
    for name in CLI_SETTINGS:
        spec = SETTINGS[name]
        metavar = "NAME" if spec.choices is not None else _METAVAR.get(spec.kind, "")
        option = f"`{spec.cli_flag}{' ' + metavar if metavar else ''}`"
        allowed = ("`" + "`, `".join(spec.choices) + "`" if spec.choices is not None
                   else spec.interval(_readable) if spec.kind in (int, float) else "any")
        default = spec.none_means if spec.default is None else f"`{spec.default}`"
        rows.append(f"| {option} | {default} | {allowed} | {_cell(spec.help)} |")
    return "\n".join(rows)


def update_doc(path: Path) -> bool:
    """Rewrite the settings table between the markers of ``path``; ``True`` if it changed.

    Raises:
        click.ClickException: the file lacks the markers.
    """
    text = path.read_text(encoding="utf-8")
    head, start, rest = text.partition(START)
    _, end, tail = rest.partition(END)
    if not start or not end:
        raise click.ClickException(f"{path} has no {START} ... {END} block.")
    new = f"{head}{START}\n{settings_table()}\n{END}{tail}"
    if new != text:
        path.write_text(new, encoding="utf-8")
    return new != text


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        print(f"{arg}: {'updated' if update_doc(Path(arg)) else 'up to date'}")
