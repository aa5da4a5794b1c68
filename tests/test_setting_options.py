"""CLI options generated from the settings' declarations cannot drift from the library.

Every Settings field is an option of analyze (or listed, with the reason, in
NON_CLI_SETTINGS); compare and track take the same ones; the default and the range
that --help shows are the declaration's; a value just outside the range is exit 2
on every command and an InvalidParameterError in the library; docs/cli.md lists
the options --help lists, and its settings table is the one generated now.
"""

import dataclasses
import json
import math
import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from collapse_diag.config.declare import SETTING_KEY
from collapse_diag.config.presets import CHEAP
from collapse_diag.config.settings import MAX_SEED, SETTINGS, UPPER_BOUNDS, Settings
from collapse_diag.exceptions import CollapseDiagError, InvalidParameterError
from collapse_diag_cli.main import main
from collapse_diag_cli.setting_options import (
    CLI_SETTINGS,
    END,
    NON_CLI_SETTINGS,
    START,
    settings_table,
)

DOC = Path(__file__).resolve().parents[1] / "docs" / "cli.md"
COMMANDS = ("analyze", "compare", "track")
# Positional arguments that let click reach option parsing; nothing is read.
ARGS = {"analyze": ["missing.pt"], "compare": ["a", "b"], "track": ["missing/"]}
NUMERIC = [n for n in CLI_SETTINGS if SETTINGS[n].kind in (int, float)]


def run(*args, **extra):
    return CliRunner().invoke(main, [str(a) for a in args], **extra)


def options(command):
    return {p.name: p for p in main.commands[command].params if isinstance(p, click.Option)}


# ---- every field declared, on the command line or listed with a reason --------------------

def test_every_settings_field_is_declared_with_help():
    for f in dataclasses.fields(Settings):
        assert SETTING_KEY in f.metadata, f"{f.name}: declare it with setting(default, help)"
        assert SETTINGS[f.name].help.strip(), f.name
        assert SETTINGS[f.name].default == f.default


def test_every_setting_is_an_analyze_option_or_listed_with_a_reason():
    on_cli = set(options("analyze")) & set(SETTINGS)
    assert on_cli | set(NON_CLI_SETTINGS) == set(SETTINGS)
    assert not on_cli & set(NON_CLI_SETTINGS)
    assert all(len(reason) > 20 for reason in NON_CLI_SETTINGS.values())
    assert set(CLI_SETTINGS) == on_cli


@pytest.mark.parametrize("command", ["compare", "track"])
def test_compare_and_track_take_the_same_settings_as_analyze(command):
    assert set(options(command)) & set(SETTINGS) == set(CLI_SETTINGS)


def test_the_docstring_is_generated_from_the_declarations():
    doc = " ".join(Settings.__doc__.split())
    assert "Attributes:" in doc
    for name, spec in SETTINGS.items():
        assert f"{name}: {' '.join(spec.help.split())}" in doc, name


# ---- --help shows the declared default and range ------------------------------------------

def _click_range(spec):
    """click's own notation for a range: ``1<=x<=64``, ``0<x<1``."""
    low = "" if spec.low is None else f"{spec.low}{'<' if spec.low_open else '<='}"
    high = "" if spec.high is None else f"{'<' if spec.high_open else '<='}{spec.high}"
    return f"{low}x{high}"


def _expected_extra(spec):
    default = spec.default if spec.default is not None else f"({spec.none_means})"
    if spec.kind in (int, float):
        return f"[default: {default}; {_click_range(spec)}]"
    return f"[default: {default}]"


def test_analyze_help_shows_each_declared_help_default_and_range():
    out = " ".join(run("analyze", "--help", terminal_width=400, max_content_width=400)
                   .output.split())
    for name in CLI_SETTINGS:
        spec = SETTINGS[name]
        assert f"{spec.cli_flag} " in out, name
        assert " ".join(f"{spec.help} {_expected_extra(spec)}".split()) in out, name
    # Known answers, written out: the declaration reaches --help unchanged.
    assert "[default: 0; 0<=x<=4294967295]" in out and MAX_SEED == 4294967295
    assert "[default: 64; 1<=x<=2147483647]" in out
    assert "[default: 0.01; 0<x<=100.0]" in out
    assert "[default: 0.95; 0<x<1]" in out
    assert "[default: (all inputs); 1<=x<=4611686018427387904]" in out
    assert "--dtype [float32|bfloat16|float16]" in out


def test_option_objects_carry_the_declaration():
    for command in ("analyze", "compare"):
        opts = options(command)
        for name in CLI_SETTINGS:
            spec, option = SETTINGS[name], opts[name]
            assert option.default == getattr(Settings(), name), (command, name)
            if spec.kind in (int, float):
                assert (option.type.min, option.type.max) == (spec.low, spec.high), name
                assert (option.type.min_open, option.type.max_open) == (spec.low_open,
                                                                        spec.high_open)
    for name in CLI_SETTINGS:  # track: not given -> None, so the preset fills it in
        assert options("track")[name].default is None, name


def test_track_help_shows_the_cheap_preset_and_full_defaults():
    out = " ".join(run("track", "--help", terminal_width=400, max_content_width=400)
                   .output.split())
    assert f"[default: ({CHEAP['max_examples']}; all inputs with --full);" in out
    assert (f"[default: ({CHEAP['per_dim_swap_examples']}; "
            f"{Settings().per_dim_swap_examples} with --full);") in out
    assert "[default: (0.01); 0<x<=100.0]" in out  # not in the preset: the default


# ---- the range: one declaration for the library and every command -------------------------

def _just_outside(spec):
    """Values just outside the declared range, one per bound."""
    out = []
    if spec.low is not None:
        out.append(spec.low if spec.low_open else
                   spec.low - 1 if spec.kind is int else math.nextafter(spec.low, -math.inf))
    if spec.high is not None:
        out.append(spec.high if spec.high_open else
                   spec.high + 1 if spec.kind is int else math.nextafter(spec.high, math.inf))
    return out


def _just_inside(spec):
    out = []
    if spec.low is not None:
        out.append(spec.low + 1 if spec.low_open and spec.kind is int else
                   math.nextafter(spec.low, math.inf) if spec.low_open else spec.low)
    if spec.high is not None:
        out.append(spec.high - 1 if spec.high_open and spec.kind is int else
                   math.nextafter(spec.high, -math.inf) if spec.high_open else spec.high)
    return out


def _cli_text(value):
    return repr(value) if isinstance(value, float) else str(value)


@pytest.mark.parametrize("name", NUMERIC)
def test_the_library_takes_exactly_the_declared_range(name):
    spec = SETTINGS[name]
    assert _just_outside(spec) and _just_inside(spec)
    for value in _just_inside(spec):
        Settings(**{name: value}).validate()
    for value in _just_outside(spec) + ([math.nan, math.inf] if spec.kind is float else []):
        with pytest.raises(InvalidParameterError, match=f"'{name}' parameter"):
            Settings(**{name: value}).validate()


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("name", NUMERIC)
def test_a_value_just_outside_the_range_exits_2(command, name):
    spec = SETTINGS[name]
    for value in _just_outside(spec):
        result = run(command, *ARGS[command], spec.cli_flag, _cli_text(value))
        assert result.exit_code == 2, (command, name, value, result.output)
        assert f"Invalid value for '{spec.cli_flag}'" in result.output
        assert "Traceback" not in result.output
    option = options(command)[name]
    for value in _just_inside(spec):  # and the bound itself (or the next float) is taken
        assert option.type_cast_value(click.Context(main), _cli_text(value)) == value


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("args", [["--alpha", "nan"], ["--kl-eps", "nan"],
                                  ["--fisher-rank-atol", "nan"], ["--dtype", "float64"],
                                  ["--seed", "1.5"]])
def test_non_numbers_and_unknown_choices_exit_2(command, args):
    result = run(command, *ARGS[command], *args)
    assert result.exit_code == 2 and f"Invalid value for '{args[0]}'" in result.output


@pytest.mark.parametrize(("name", "value", "message"), [
    ("batch_size", 0, "must be an int >= 1. Got 0 instead."),
    ("seed", -1, f"must be an int in [0, {MAX_SEED}]. Got -1 instead."),
    ("seed", MAX_SEED + 1, f"must be an int in [0, {MAX_SEED}]."),
    ("max_examples", 0, "must be None or an int >= 1. Got 0 instead."),
    ("kl_eps", 0.0, "must be a float > 0."),
    ("kl_eps", math.inf, "must be finite and <= 100."),
    ("fisher_rank_atol", -1.0, "must be a float >= 0."),
    ("confidence", 1.0, "must be a float in (0, 1)."),
    ("mi_samples", 2.0, "must be an int >= 1."),
    ("mi_samples", True, "must be an int >= 1."),
    ("swap_bootstrap", 10**6 + 1, "must be an int in [0, 1000000]."),
    ("dtype", "float64", "must be one of ['float32', 'bfloat16', 'float16']."),
    ("device", "", "must be a torch device string."),
])
def test_validation_keeps_one_message_per_rule(name, value, message):
    with pytest.raises(InvalidParameterError) as info:
        Settings(**{name: value}).validate("analyze")
    assert str(info.value).startswith(f"The '{name}' parameter of analyze {message}")


def test_upper_bounds_are_read_from_the_declarations():
    assert UPPER_BOUNDS["kl_eps"] == 100.0 and UPPER_BOUNDS["seed"] == MAX_SEED
    assert "confidence" not in UPPER_BOUNDS  # open bound: (0, 1)
    assert all(SETTINGS[n].high == v for n, v in UPPER_BOUNDS.items())


# ---- the values reach the library ---------------------------------------------------------

def test_analyze_passes_every_setting_option_to_the_library(toy_checkpoint, user_dir):
    out = user_dir / "r"
    result = run("analyze", toy_checkpoint, "--out", out, "--format", "json", "--alpha", "0.1",
                 "--swap-windows", "2", "--mi-bootstrap", "0", "--per-dim-swap-examples", "16",
                 "--prior-samples", "4", "--seed", "7", "--quiet")
    assert result.exit_code == 0, result.output
    settings = json.loads((out / "report.json").read_text())["settings"]
    expected = dataclasses.replace(Settings(), alpha=0.1, swap_windows=2, mi_bootstrap=0,
                                   per_dim_swap_examples=16, prior_samples=4, seed=7)
    assert settings == expected.to_dict()


def _capture(monkeypatch, module, attr):
    seen = {}

    def fake(*args, **kwargs):
        seen.update(kwargs)
        raise CollapseDiagError("stopped by the test")

    monkeypatch.setattr(f"{module}.{attr}", fake)
    return seen


def test_compare_passes_every_setting_with_its_default(monkeypatch):
    seen = _capture(monkeypatch, "collapse_diag.runs.comparison", "compare")
    assert run("compare", "a", "b", "--alpha", "0.2", "--nll-samples", "5").exit_code == 3
    given = {k: v for k, v in seen.items() if k in SETTINGS}
    assert set(given) == set(CLI_SETTINGS)
    assert Settings(**given) == dataclasses.replace(Settings(), alpha=0.2, nll_samples=5)


def test_track_passes_only_the_settings_given(monkeypatch):
    seen = _capture(monkeypatch, "collapse_diag.runs.track", "track")
    assert run("track", "ckpts/", "--alpha", "0.2", "--max-examples", "9").exit_code == 3
    assert {k: v for k, v in seen.items() if k in SETTINGS} == {"alpha": 0.2,
                                                                "max_examples": 9}


# ---- docs/cli.md ----------------------------------------------------------------------------

def _doc():
    return DOC.read_text(encoding="utf-8")


def test_the_settings_table_of_the_docs_is_the_generated_one():
    text = _doc()
    block = text[text.index(START) + len(START):text.index(END)].strip()
    assert block == settings_table(), (
        "docs/cli.md is out of date: run `python -m collapse_diag_cli.setting_options "
        "docs/cli.md`")


def _flags_in_tables(text):
    return {m for line in text.splitlines() if line.startswith("| ")
            for m in re.findall(r"`(--[a-z][a-z-]*)", line.split("|")[1])}


@pytest.mark.parametrize(("command", "heading"), [
    ("analyze", "## `collapse-diag analyze CHECKPOINT`"),
    ("compare", "## `collapse-diag compare A B C ...`"),
    ("track", "## `collapse-diag track CHECKPOINTS...`"),
])
def test_the_docs_list_the_options_help_lists(command, heading):
    text = _doc()
    section = text.split(heading, 1)[1].split("\n## ", 1)[0]
    documented = _flags_in_tables(section)
    if "every [analysis setting](#analysis-settings)" in section:
        documented |= _flags_in_tables(text[text.index(START):text.index(END)])
    shown = {opt for p in main.commands[command].params for opt in p.opts
             if opt.startswith("--")}
    assert documented == shown


# ---- the forms a future setting may take: a bool, a flag of its own ---------------------

@pytest.mark.parametrize(("args", "expected"), [([], False), (["--fast"], True),
                                                (["--no-fast"], False)])
def test_a_bool_setting_is_a_flag_pair_with_its_own_name(args, expected):
    from collapse_diag.config.declare import Setting
    from collapse_diag_cli.setting_options import _option

    spec = Setting(help="Go fast.", flag="--fast", name="fast_mode", kind=bool, default=False)

    @click.command()
    @_option(spec, None, "")
    def command(fast_mode):
        click.echo(repr(fast_mode))

    result = CliRunner().invoke(command, args)
    assert result.exit_code == 0 and result.output.strip() == repr(expected)
    assert "--fast / --no-fast" in CliRunner().invoke(command, ["--help"]).output
    with pytest.raises(InvalidParameterError, match="must be a bool"):
        spec.check(1, "analyze")


def test_track_leaves_an_unset_bool_setting_to_the_preset():
    from collapse_diag.config.declare import Setting
    from collapse_diag_cli.setting_options import _option

    spec = Setting(help="Go fast.", name="fast_mode", kind=bool, default=False)

    @click.command()
    @_option(spec, lambda s: "the preset's", "")
    def command(fast_mode):
        click.echo(repr(fast_mode))

    assert CliRunner().invoke(command, []).output.strip() == "None"
    assert CliRunner().invoke(command, ["--fast-mode"]).output.strip() == "True"


# ---- the input options: every command that loads models has all of them, one help each --

def test_every_model_loading_command_has_every_input_option_with_one_help():
    from collapse_diag_cli.input_options import INPUT_OPTIONS

    loading = ("analyze", "compare", "track")
    helps: dict[str, set[str]] = {opt: set() for opt in INPUT_OPTIONS}
    for name in loading:
        params = {opt: p for p in main.commands[name].params for opt in p.opts}
        assert set(INPUT_OPTIONS) <= set(params), (name, set(INPUT_OPTIONS) - set(params))
        for opt in INPUT_OPTIONS:
            helps[opt].add(params[opt].help)
    # --out, --format and --data name what differs per command (folder, formats, default
    # inputs); every other option has one help text for all three commands
    for opt in set(INPUT_OPTIONS) - {"--out", "--format", "--data"}:
        assert len(helps[opt]) == 1, (opt, helps[opt])

