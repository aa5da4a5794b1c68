"""Every knob of an analysis, declared once: default, help, range, choices.

Each :class:`Settings` field is one :func:`setting` declaration. Its :class:`Setting`
metadata is the single source of the help text (the class docstring's ``Attributes``
section, the CLI ``--help``, the options table of docs/cli.md), of the allowed range
(:meth:`Settings.validate` and the CLI option types) and of the choices. Adding a
setting is one declaration at the end of :class:`Settings`.

The settings are stored verbatim in ``report.json`` so that every figure records
how it was produced. Construction only stores values; :meth:`Settings.validate`
checks them (the scikit-learn convention) and is called by ``analyze``.
"""

from __future__ import annotations

import dataclasses
import math
import textwrap
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from collapse_diag.exceptions import InvalidParameterError, invalid_parameter

__all__ = ["Settings", "Setting", "setting", "SETTINGS", "DTYPES", "MAX_SEED", "UPPER_BOUNDS"]

#: Decoder precisions ``Settings.dtype`` accepts (names of torch dtypes).
DTYPES = ("float32", "bfloat16", "float16")

#: Largest seed: every generator of the run (torch, numpy, scikit-learn) takes it.
MAX_SEED = 2**32 - 1

#: Key of the :class:`Setting` in a dataclass field's ``metadata``.
_KEY = "collapse_diag.setting"


@dataclass(frozen=True)
class Setting:
    """The declaration of one setting: help, range and choices (see :func:`setting`).

    ``name``, ``kind``, ``optional`` and ``default`` are filled in from the
    :class:`Settings` field (its name, annotation and default) in :data:`SETTINGS`.

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
        kind: ``int``, ``float``, ``str``, ``bool``, or ``tuple`` (not checked here).
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

    def _number(self, value: float | None) -> str:
        return str(int(value)) if self.kind is int else f"{value:g}"

    def interval(self) -> str:
        """The allowed range in interval notation: ``[1, 100]``, ``(0, 1)``, ``[0, inf)``."""
        low = "-inf" if self.low is None else self._number(self.low)
        high = "inf" if self.high is None else self._number(self.high)
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
        if self.kind is tuple:  # diagnostics: checked against the registry by analyze
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
        finite = self.kind is int or math.isfinite(value)
        if self.kind is float and not finite:
            raise invalid_parameter(self.name, where, self._expected_high(), value)
        if self.high is not None and not (value < self.high if self.high_open
                                          else value <= self.high):
            raise invalid_parameter(self.name, where, self._expected_high(), value)


def setting(default: Any, help: str, **declaration: Any) -> Any:  # noqa: A002 - click's word
    """Declare one :class:`Settings` field: ``name: type = setting(default, help, ...)``.

    Args:
        default: The default value (immutable).
        help: The help text (see :class:`Setting`).
        **declaration: The other :class:`Setting` attributes (``low``, ``high``,
            ``low_open``, ``high_open``, ``choices``, ``details``, ``none_means``, ...).

    Returns:
        A ``dataclasses.field`` carrying the :class:`Setting` in its metadata.
    """
    return field(default=default, metadata={_KEY: Setting(help, **declaration)})


@dataclass(frozen=True)
class Settings:
    """Settings of one analysis run.

    Each field is one :func:`setting` declaration; the ``Attributes`` section below is
    generated from them (:data:`SETTINGS`).
    """

    seed: int = setting(
        0, "Seed of the run's one random generator: same seed and inputs, same numbers.",
        details="It also seeds scikit-learn, which takes 32 bits.", low=0, high=MAX_SEED,
        expected=f"an int in [0, {MAX_SEED}]")
    batch_size: int = setting(
        64, "Examples per encoder/decoder call (lower it if the device runs out of memory).",
        low=1, high=2**31 - 1)
    max_examples: int | None = setting(
        None, "Analyse a seeded random subset of at most this many inputs.",
        none_means="all inputs", low=1, high=2**62)
    device: str = setting(
        "cpu", "Torch device the model runs on: cpu, cuda, cuda:1, mps.",
        expected="a torch device string")
    kl_eps: float = setting(
        0.01, "A dimension is collapsed when its mean KL is below this (nats); also the "
        "per-input threshold of the (eps, delta)-collapse rate (Lucas et al. 2019).",
        low=0, low_open=True, high=100.0)
    active_threshold: float = setting(
        0.01, "A unit is active when Var_x[mu_d(x)] is at least this (Burda et al. 2015).",
        low=0, low_open=True, high=100.0)
    mi_samples: int = setting(
        4, "z samples per input in the mutual-information estimator.", low=1, high=10_000)
    mi_max_components: int = setting(
        10_000, "Most inputs the MI estimator uses; larger sets are subsampled (seeded).",
        details="Its cost stays O(mi_max_components^2 * D).", low=2, high=10**9)
    mi_saturation_margin: float = setting(
        0.5, "An MI estimate within this many nats of its ceiling log(N) is flagged as "
        "saturated.", low=0, low_open=True, high=100.0)
    swap_bootstrap: int = setting(
        2000, "Bootstrap resamples for the swap-delta confidence interval.", low=0, high=10**6)
    confidence: float = setting(
        0.95, "Level of every confidence interval.", low=0, low_open=True, high=1,
        high_open=True)
    alpha: float = setting(
        0.05, "Significance level of the decoder-sensitivity tests; also the family-wise "
        "error of the per-dimension swap intervals.",
        details="The intervals are simultaneous over the dimensions and the rounds.",
        low=0, low_open=True, high=1, high_open=True)
    per_dim_swap_examples: int = setting(
        128, "Inputs in round 1 of the per-dimension swap (0: off); later rounds double it "
        "until every dimension is decided.",
        details="Each input costs latent_dim + 1 decoder rows in round 1 (its own code and "
        "one per swapped coordinate): 128 * 33 rows is about 2 passes per input for a "
        "32-dim model on 2,000 inputs. See ``per_dim_swap_max_examples``.",
        low=0, high=10**9)
    prior_samples: int = setting(
        16, "Prior draws per input for likelihood flatness and E_p log p(x|z).",
        low=2, high=10_000)
    flatness_threshold: float = setting(
        0.3, "An input's likelihood is flat in z when the std over prior draws of "
        "log p(x|z) is below this many nats (per observation).",
        details="The default 0.3 ~ sqrt(0.1) matches ``fisher_rank_atol``: for a locally "
        "linear log-likelihood, Var_{z~N(0,I)} log p(x|z) ~ sum of its Fisher "
        "eigenvalues, so a flat input has no direction reaching 0.1.",
        low=0, low_open=True, high=1e6)
    fisher_samples: int = setting(
        1, "Posterior draws per input for the Fisher information of z.", low=1, high=10_000)
    fisher_rank_rtol: float = setting(
        1e-3, "An eigenvalue of the latent Fisher matrix counts toward identifiable_dims "
        "when it is at least this times the largest one (and fisher_rank_atol).",
        low=0, low_open=True, high=1.0)
    fisher_rank_atol: float = setting(
        0.1, "Absolute floor of those eigenvalues (nats^2 per unit z^2).",
        details="The floor is relative to the prior's precision, 1 (z is measured in "
        "prior standard deviations for a learned prior): by the Laplace approximation "
        "the posterior variance along an eigenvector is about 1 / (1 + lambda), so "
        "lambda < 0.1 means the likelihood narrows the prior by under 10%: practically "
        "flat, not identifiable.", low=0, high=1e6)
    diagnostics: tuple[str, ...] | None = setting(
        None, "Names of the diagnostics to run.", none_means="all",
        details="The verdict runs whenever kl and activity do (``analysis.VERDICT_INPUTS``). "
        "The names are checked against the diagnostics ``analyze`` knows.")
    per_dim_swap_max_examples: int | None = setting(
        None, "Budget of the adaptive per-dimension swap, in inputs: its rounds stop once "
        "every informative dimension is decided or this many inputs are used.",
        none_means="all analysed inputs",
        details="At most ``budget * (D + 1)`` decoder rows; later rounds decode only the "
        "undecided dimensions.", low=1, high=2**62)
    negligible_swap_nats: float = setting(
        0.01, "Cap of the negligible-effect threshold of the per-dimension swap (nats).",
        details="A dimension is ``ignored`` only when the upper bound of its swap delta is "
        "at most ``min(negligible_swap_nats, negligible_swap_fraction * I(x; z_d))``.",
        low=0, low_open=True, high=1e6)
    negligible_swap_fraction: float = setting(
        0.1, "Relative part of that threshold, times I(x; z_d).",
        details="A decoder that fully used z_d would show a mean delta of at least I(x; z_d).",
        low=0, low_open=True, high=1, high_open=True)
    fisher_bootstrap: int = setting(
        200, "Bootstrap resamples (over inputs) of the Fisher information, for the "
        "intervals of its eigenvalues and diagonal.", low=0, high=10**6)
    nll_samples: int = setting(
        100, "K for the importance-weighted NLL bound (K decoder rows per input).",
        details="Burda et al. (2016). The default 100 on 200 inputs is 20,000 rows (10 "
        "decoder passes over 2,000 inputs). He et al. (2019) use K = 500; check "
        "``nll_convergence`` in the report to see whether K was enough.",
        low=1, high=10**6)
    nll_examples: int | None = setting(
        200, "Inputs in the seeded subsample for -ELBO, NLL, PPL, rate and distortion.",
        none_means="all inputs",
        details="The standard error of the NLL falls as 1 / sqrt(nll_examples).",
        low=1, high=2**62)
    mi_minibatch_size: int = setting(
        32, "Batch size of He et al. (2019)'s minibatch MI estimator (mi_minibatch).",
        details="That estimate cannot exceed log(mi_minibatch_size): it is biased low and "
        "given only to compare with published tables.", low=2, high=10**9)
    mi_bootstrap: int = setting(
        1000, "Bootstrap resamples for the intervals on the mutual information, "
        "per-dimension MI and marginal KL (0: no intervals).",
        details="Costs O(mi_bootstrap * N * D), no model calls.", low=0, high=10**6)
    dtype: str = setting(
        "float32", "Precision of the decoder passes (bfloat16 / float16 under "
        "torch.autocast); figures are accumulated in float64 either way.",
        details="Matrix products and convolutions run in the low precision, reductions "
        "such as log-softmax stay in float32 under autocast. The encoder pass always runs "
        "in the model's own precision. See docs/performance.md.", choices=DTYPES)
    swap_windows: int = setting(
        4, "Sequential latents only: the T steps are cut into this many consecutive "
        "windows for the swap test per time window.",
        details="``min(swap_windows, T)`` windows; window k covers steps "
        "``[floor(k T / W), floor((k + 1) T / W))`` (``summary.swap_delta_by_window``). "
        "Costs ``W + 1`` decoder rows per input of the window swap.", low=1, high=10**6)

    @classmethod
    def from_kwargs(cls, where: str = "analyze", **kwargs: Any) -> Settings:
        """Build settings from keyword arguments, rejecting unknown names.

        Raises:
            InvalidParameterError: an unknown setting name.
        """
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(kwargs) - names)
        if unknown:
            raise InvalidParameterError(
                f"{where} got unknown setting(s) {unknown}; valid settings are {sorted(names)}."
            )
        if kwargs.get("diagnostics") is not None:
            kwargs["diagnostics"] = tuple(kwargs["diagnostics"])
        return cls(**kwargs).validate(where)

    def validate(self, where: str = "analyze") -> Settings:
        """Check every value against its declaration; return ``self`` so calls can be chained.

        Raises:
            InvalidParameterError: naming the setting, the allowed range and the value.
        """
        for name, declared in SETTINGS.items():
            declared.check(getattr(self, name), where)
        return self

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form, as stored under ``settings`` in report.json."""
        out = dataclasses.asdict(self)
        if out["diagnostics"] is not None:
            out["diagnostics"] = list(out["diagnostics"])
        return out


def _declarations() -> dict[str, Setting]:
    """Each field's :class:`Setting`, completed with its name, kind, optionality and default."""
    hints = typing.get_type_hints(Settings)
    out: dict[str, Setting] = {}
    for f in dataclasses.fields(Settings):
        if _KEY not in f.metadata:
            raise TypeError(f"Settings.{f.name} must be declared with setting(default, help, "
                            "...) so that its range, help and CLI option exist.")
        args = [a for a in typing.get_args(hints[f.name]) if a is not type(None)]
        optional = type(None) in typing.get_args(hints[f.name])
        hint = typing.get_origin(args[0]) or args[0] if optional else hints[f.name]
        kind = typing.get_origin(hint) or hint
        out[f.name] = dataclasses.replace(f.metadata[_KEY], name=f.name, kind=kind,
                                          optional=optional, default=f.default)
    return out


#: Setting name -> its complete declaration, in field order (read-only).
SETTINGS: Mapping[str, Setting] = MappingProxyType(_declarations())

#: Largest value of each bounded numeric setting (inclusive), from the declarations.
UPPER_BOUNDS: Mapping[str, float] = MappingProxyType({
    name: s.high for name, s in SETTINGS.items() if s.high is not None and not s.high_open})


def _attributes_section() -> str:
    lines = ["", "", "    Attributes:"]
    for s in SETTINGS.values():
        text = " ".join(part for part in (
            s.help, f"``None``: {s.none_means}." if s.none_means else "", s.details) if part)
        lines += textwrap.wrap(f"{s.name}: {text}", 92, initial_indent=" " * 8,
                               subsequent_indent=" " * 12)
    return "\n".join(lines) + "\n"


Settings.__doc__ = (Settings.__doc__ or "").rstrip() + _attributes_section()
