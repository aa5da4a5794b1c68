"""The factory rule: a factory named by a checkpoint file must be an nn.Module class.

Every string-evaluating or code-running entry point a file could name is refused
before it is called (and, for the standard library, before it is imported); a
canary file proves no payload ran. Real model classes still load.
"""

import importlib.util
import sys
import textwrap

import pytest
import torch
from click.testing import CliRunner
from toy_models import ToyVAE

from collapse_diag import CheckpointError, load_checkpoint, save_checkpoint
from collapse_diag.io.factory import is_model_class, resolve_factory
from collapse_diag_cli.main import main

#: Python that creates the canary file when some function evaluates it.
PAYLOAD = "__import__('pathlib').Path('CANARY').touch()"

EVALPKG = textwrap.dedent('''
    """A user-looking package whose functions and classes run the strings they are given."""
    from torch import nn

    def build(expr="", **kwargs):
        exec(expr)
        return nn.Linear(1, 1)

    class Evaluator:
        def __init__(self, expr=""):
            exec(expr)

    class EvilModel(nn.Module):
        @classmethod
        def build(cls, expr=""):
            exec(expr)
            return cls()

    def main(argv=None):
        open("WRITTEN_BY_MAIN", "w").write("x")
''')

FAKE_NUMEXPR = textwrap.dedent('''
    """Stand-in for numexpr (not installed here): evaluate() runs its string, as numexpr's
    parser can be made to."""
    def evaluate(ex, **kwargs):
        return eval(ex)
''')


@pytest.fixture
def evil_dir(user_dir):
    (user_dir / "evalpkg.py").write_text(EVALPKG)
    sys.modules.pop("evalpkg", None)
    yield user_dir
    sys.modules.pop("evalpkg", None)


def _checkpoint(path, factory, config):
    torch.save({"collapse_diag": 1, "factory": factory, "config": config,
                "state_dict": ToyVAE().state_dict(), "data": torch.zeros(30, 3)}, path)
    return path


# factory named by the file, its keyword config (a payload where the callable takes one)
REFUSED = [
    ("sympy:sympify", {"a": PAYLOAD}),
    ("sympy.parsing.sympy_parser:parse_expr", {"s": PAYLOAD}),
    ("sympy:parse_expr", {"s": PAYLOAD}),
    ("numexpr:evaluate", {"ex": PAYLOAD}),
    ("pandas:eval", {"expr": PAYLOAD}),
    ("builtins:eval", {}),
    ("builtins:exec", {}),
    ("importlib:import_module", {"name": "this"}),
    ("runpy:run_path", {"path_name": "payload.py"}),
    ("runpy:run_module", {"mod_name": "payload"}),
    ("pickle:loads", {}),
    ("subprocess:Popen", {"args": ["touch", "CANARY"]}),
    ("subprocess:call", {"args": ["touch", "CANARY"]}),
    ("os:system", {"command": "touch CANARY"}),
    ("shutil:rmtree", {"path": "."}),
    ("code:interact", {}),
    ("antigravity:geohash", {}),
    ("unittest.__main__:main", {}),
    ("collapse_diag.examples.train:main", {"argv": ["--out", "trained"]}),
    ("collapse_diag_cli.main:main", {}),
    ("torch:load", {"f": "x.pt", "weights_only": False}),
    ("torch.hub:load", {"repo_or_dir": ".", "model": "x"}),
    ("numpy:load", {"file": "x.npy", "allow_pickle": True}),
    ("evalpkg:build", {"expr": PAYLOAD}),
    ("evalpkg:Evaluator", {"expr": PAYLOAD}),
    ("evalpkg:EvilModel.build", {"expr": PAYLOAD}),
    ("evalpkg:main", {}),
    ("models:build_toy", {}),
]


@pytest.mark.parametrize(("factory", "config"), REFUSED, ids=[f for f, _ in REFUSED])
def test_file_named_non_model_factories_are_refused(evil_dir, monkeypatch, factory, config):
    (evil_dir / "payload.py").write_text(PAYLOAD)
    fake_numexpr = factory.startswith("numexpr") and importlib.util.find_spec("numexpr") is None
    if fake_numexpr:  # on the path for this case only: pandas would pick the fake up
        (evil_dir / "fake").mkdir()
        (evil_dir / "fake" / "numexpr.py").write_text(FAKE_NUMEXPR)
        monkeypatch.syspath_prepend(str(evil_dir / "fake"))
        monkeypatch.delitem(sys.modules, "numexpr", raising=False)
    imported_before = set(sys.modules)
    path = _checkpoint(evil_dir / "evil.pt", factory, config)
    with pytest.raises(CheckpointError, match="refusing"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="refusing"):
        load_checkpoint(path, trust_checkpoint=True)  # trusting the pickle is not trusting this
    assert not (evil_dir / "CANARY").exists()
    assert not (evil_dir / "WRITTEN_BY_MAIN").exists() and not (evil_dir / "trained").exists()
    for module in ("antigravity", "unittest.__main__", "this"):
        assert module in imported_before or module not in sys.modules
    if fake_numexpr:
        sys.modules.pop("numexpr", None)


def test_the_payload_is_real_when_called(evil_dir):
    """The canary test means something: sympify really runs the string."""
    pytest.importorskip("sympy")
    import sympy

    sympy.sympify(PAYLOAD)
    assert (evil_dir / "CANARY").exists()


def test_refusal_through_the_cli_is_exit_3_one_line(evil_dir):
    pytest.importorskip("sympy")
    path = _checkpoint(evil_dir / "evil.pt", "sympy:sympify", {"a": PAYLOAD})
    result = CliRunner().invoke(main, ["analyze", str(path), "--out", str(evil_dir / "rep")])
    assert result.exit_code == 3, result.output
    assert result.output.count("\n") == 1 and result.output.startswith("error: ")
    assert "not a known model library" in result.output and "--factory" in result.output
    assert not (evil_dir / "CANARY").exists() and not (evil_dir / "rep").exists()


# --- decided before importing: a module named by a file runs nothing before the decision ----

SIDE_EFFECT = textwrap.dedent('''
    """A module whose import alone writes a file (as sympy's `this` prints its Zen)."""
    import pathlib
    pathlib.Path("IMPORTED").write_text("ran at import")
    from torch import nn

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
''')


@pytest.fixture
def fake_installed(user_dir, monkeypatch):
    """A package 'sideeffect' in a site-packages folder on sys.path, outside the user's folder."""
    site = user_dir.parent / f"{user_dir.name}-env" / "lib" / "site-packages"
    (site / "sideeffect").mkdir(parents=True)
    (site / "sideeffect" / "__init__.py").write_text(SIDE_EFFECT)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delitem(sys.modules, "sideeffect", raising=False)
    yield user_dir
    sys.modules.pop("sideeffect", None)


def test_an_installed_module_with_import_side_effects_is_refused_before_import(fake_installed):
    path = _checkpoint(fake_installed / "c.pt", "sideeffect:Model", {})
    with pytest.raises(CheckpointError, match="installed module that is not a known model"):
        load_checkpoint(path)
    assert "sideeffect" not in sys.modules and not (fake_installed / "IMPORTED").exists()


def test_a_package_named_in_the_environment_variable_is_a_model_library(fake_installed,
                                                                         monkeypatch):
    monkeypatch.setenv("COLLAPSE_DIAG_MODEL_PACKAGES", "other, sideeffect")
    model = resolve_factory("sideeffect:Model", from_file=True)()
    assert isinstance(model, torch.nn.Module) and (fake_installed / "IMPORTED").exists()


def test_a_script_in_the_folder_that_does_not_define_the_name_is_not_imported(user_dir):
    (user_dir / "evilcwd.py").write_text('import pathlib\npathlib.Path("CREATED").touch()\n')
    sys.modules.pop("evilcwd", None)
    path = _checkpoint(user_dir / "c.pt", "evilcwd:Anything", {})
    with pytest.raises(CheckpointError, match="does not define 'Anything' at its top level"):
        load_checkpoint(path)
    assert "evilcwd" not in sys.modules and not (user_dir / "CREATED").exists()
    # named by the user, the same module is the user's choice: imported (then not callable)
    with pytest.raises(CheckpointError, match="has no 'Anything'"):
        resolve_factory("evilcwd:Anything")
    assert (user_dir / "CREATED").exists()
    sys.modules.pop("evilcwd", None)


@pytest.mark.parametrize("spec", ["sympy:this", "narwhals:this", "scipy.special:gamma"])
def test_installed_non_model_packages_are_not_imported(user_dir, spec):
    before = set(sys.modules)  # installed or not, refused, and nothing new is imported
    with pytest.raises(CheckpointError, match="refusing"):
        resolve_factory(spec, from_file=True)
    assert set(sys.modules) - before == set()


def test_the_users_own_package_in_the_folder_loads(user_dir):
    (user_dir / "mypkg" / "nets").mkdir(parents=True)
    (user_dir / "mypkg" / "__init__.py").write_text("")
    (user_dir / "mypkg" / "nets" / "__init__.py").write_text("from models import ToyVAE\n")
    for name in ("mypkg", "mypkg.nets"):
        sys.modules.pop(name, None)
    assert resolve_factory("mypkg.nets:ToyVAE", from_file=True)().__class__.__name__ == "ToyVAE"
    for name in ("mypkg", "mypkg.nets"):
        sys.modules.pop(name, None)


def test_a_function_named_on_the_command_line_is_called(evil_dir):
    path = _checkpoint(evil_dir / "f.pt", "sympy:sympify", {"a": PAYLOAD})
    model, _ = load_checkpoint(path, factory="models:build_toy", config={})
    assert type(model).__name__ == "ToyVAE"


@pytest.mark.parametrize("spec", ["models:ToyVAE", "torch.nn:Linear"])
def test_model_classes_named_by_the_file_load(user_dir, spec):
    config = {} if spec == "models:ToyVAE" else {"in_features": 2, "out_features": 1}
    model = resolve_factory(spec, from_file=True)(**config)
    assert isinstance(model, torch.nn.Module)


def test_a_model_class_checkpoint_round_trips(user_dir):
    model = ToyVAE(weights=(1.0, 0.5))
    path = save_checkpoint(user_dir / "m.pt", model, "models:ToyVAE",
                           {"weights": [1.0, 0.5]}, data=model.sample(25))
    loaded = load_checkpoint(path)
    assert type(loaded.model).__name__ == "ToyVAE" and loaded.factory == "models:ToyVAE"


def test_shipped_checkpoints_name_model_classes():
    from collapse_diag.examples import CHECKPOINT_DIR

    for path in sorted(CHECKPOINT_DIR.glob("*.pt")):
        payload = torch.load(path, map_location="cpu", weights_only=True)
        assert is_model_class(resolve_factory(payload["factory"], from_file=True)), path
        assert isinstance(load_checkpoint(path).model, torch.nn.Module)


def test_function_factory_message_points_to_the_flag(user_dir):
    path = _checkpoint(user_dir / "f.pt", "models:build_toy", {})
    with pytest.raises(CheckpointError, match=r"is a function.*--factory module:callable"):
        load_checkpoint(path)
