"""One setting's declaration: help, range, choices; and its check of a value.

:class:`~collapse_diag.config.settings.Settings` declares each field with :func:`setting`;
the :class:`Setting` in the field's metadata is what validation, the CLI options
(``collapse_diag_cli.setting_options``) and the documentation read.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from collapse_diag.exceptions import invalid_parameter

__all__ = ["Setting", "setting", "SETTING_KEY"]

#: Key of the :class:`Setting` in a dataclass field's ``metadata``.
SETTING_KEY = "collapse_diag.config.declare"


@dataclass(frozen=True)
class Setting:
    """The declaration of one setting: help, range and choices (see :func:`setting`).

    ``name``, ``kind``, ``optional`` and ``default`` are filled in from the field
    (its name, annotation and default) in :data:`collapse_diag.config.settings.SETTINGS`.

    Attributes:
        help: One or two sentences: the CLI help and the first line of the docstring entry.
        details: More of the docstring entry (formulas, costs, sources); not on the CLI.
        low: Smallest allowed value (``None``: no lower bound).
        high: Largest allowed value (``None``: none). For a threshold, beyond it every
            figure is trivially true or false; for a count, memory runs out.
        low_open: ``low`` itself is not allowed.
        high_open: ``high`` itself is not allowed.
        choices: The allowed values of a string setting.
        expected: What a value must be, when the range does not say it
            (e.g. ``"a torch device string"``).
        none_means: For a setting that may be ``None``: what ``None`` means ("all inputs").
        flag: The command-line flag, when not ``--`` + the name with ``-`` for ``_``.
        name: The field name.
        kind: ``int``, ``float``, ``str`` or ``bool``; any other (``tuple``) is not checked
            here.
        optional: ``None`` is allowed.
        default: The field default.
    """

    help: str
    details: str = ""
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str, ...] | None = None
    expected: str | None = None
    none_means: str | None = None
    flag: str | None = None
    name: str = ""
    kind: type = object
    optional: bool = False
    default: Any = None

    @property
    def cli_flag(self) -> str:
        """The command-line flag: ``flag``, else ``--`` + the name with dashes."""
        return self.flag or "--" + self.name.replace("_", "-")

    def _number(self, value: float) -> str:
        return str(int(value)) if self.kind is int else f"{value:g}"

    def interval(self, number: Callable[[float], str] | None = None) -> str:
        """The allowed range in interval notation: ``[1, 100]``, ``(0, 1)``, ``[0, inf)``.

        Args:
            number: How to write a bound (default: exactly, ``%g`` for a float).
        """
        number = number or self._number
        low = "-inf" if self.low is None else number(self.low)
        high = "inf" if self.high is None else number(self.high)
        left = "(" if self.low_open or self.low is None else "["
        right = ")" if self.high_open or self.high is None else "]"
        return f"{left}{low}, {high}{right}"

    def _expected_low(self) -> str:
        """What the value must be, as stated when its type or lower bound is wrong."""
        if self.expected is not None:
            return self.expected
        if self.choices is not None:
            return f"one of {list(self.choices)}"
        noun = {int: "an int", float: "a float", bool: "a bool"}.get(self.kind, "a value")
        if self.high_open:
            text = f"{noun} in {self.interval()}"
        elif self.low is None:
            text = noun
        else:
            text = f"{noun} {'>' if self.low_open else '>='} {self._number(self.low)}"
        return f"None or {text}" if self.optional else text

    def _expected_high(self) -> str:
        """What the value must be, as stated when it is above ``high`` (or not finite)."""
        if self.high_open:
            return self._expected_low()
        if self.kind is int:
            text = f"an int in {self.interval()}"
            return f"None or {text}" if self.optional else text
        if self.high is None:
            return f"finite and {self._expected_low()}"
        return f"finite and <= {self._number(self.high)}"

    def check(self, value: Any, where: str) -> None:
        """Raise the one-template error when ``value`` is not allowed.

        Raises:
            InvalidParameterError: naming the setting, what it must be and the value.
        """
        if value is None and self.optional:
            return
        if self.kind not in (int, float, str, bool):  # diagnostics: analyze checks the names
            return
        if self.kind is str:
            allowed = value in self.choices if self.choices else bool(value)
            if not isinstance(value, str) or not allowed:
                raise invalid_parameter(self.name, where, self._expected_low(), value)
            return
        types = {int: (int,), float: (int, float), bool: (bool,)}[self.kind]
        if (isinstance(value, bool) and self.kind is not bool) or not isinstance(value, types):
            raise invalid_parameter(self.name, where, self._expected_low(), value)
        if self.low is not None and not (value > self.low if self.low_open
                                         else value >= self.low):  # NaN fails here too
            raise invalid_parameter(self.name, where, self._expected_low(), value)
        if self.kind is float and not math.isfinite(value):
            raise invalid_parameter(self.name, where, self._expected_high(), value)
        if self.high is not None and not (value < self.high if self.high_open
                                          else value <= self.high):
            raise invalid_parameter(self.name, where, self._expected_high(), value)


def setting(default: Any, help: str, **declaration: Any) -> Any:
    """Declare one :class:`~collapse_diag.config.settings.Settings` field, with help and range.

    Example: ``seed: int = setting(0, "Seed of the run.", low=0, high=MAX_SEED)``.

    Args:
        default: The default value (immutable).
        help: The help text (see :class:`Setting`).
        **declaration: The other :class:`Setting` attributes (``low``, ``high``,
            ``low_open``, ``high_open``, ``choices``, ``details``, ``none_means``, ...).

    Returns:
        A ``dataclasses.field`` carrying the :class:`Setting` in its metadata.
    """
    return field(default=default, metadata={SETTING_KEY: Setting(help, **declaration)})
