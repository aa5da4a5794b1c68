import copy
import shutil
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).parent


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", help="also run tests marked slow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: pass --runslow to run")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def user_dir(tmp_path, monkeypatch):
    """A user's working folder holding models.py (a copy of toy_models.py), as the cwd."""
    shutil.copy(TESTS / "toy_models.py", tmp_path / "models.py")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "models", raising=False)
    yield tmp_path
    sys.modules.pop("models", None)


@pytest.fixture
def toy_checkpoint(user_dir):
    """A valid collapse-diag checkpoint of ToyVAE with 400 stored inputs."""
    from toy_models import ToyVAE

    from collapse_diag import save_checkpoint

    model = ToyVAE()
    path = user_dir / "toy.pt"
    save_checkpoint(path, model, "models:ToyVAE",
                    {"weights": [2.0, 1.0, 0.0], "noise": 0.5}, data=model.sample(400))
    return path


@pytest.fixture(scope="session")
def analysed():
    """The reports of tests/real_reports.py, each from one real ``analyze`` run per session
    (shared: read them, never change them; ``reports`` gives copies)."""
    from real_reports import build_all

    return build_all()


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory):
    """``collapse-diag demo --format json,md`` run once per session: (its folder, its output)."""
    from click.testing import CliRunner

    from collapse_diag_cli.main import main

    out = tmp_path_factory.mktemp("demo")
    result = CliRunner().invoke(main, ["demo", "--out", str(out), "--format", "json,md"])
    assert result.exit_code == 0, result.output
    return out, result.output


@pytest.fixture
def reports(analysed):
    """Copies of the real reports (healthy, collapsed, partial, sequential, failed, kl_only):
    a test may change its copy without touching the others' (tests/real_reports.py)."""
    return copy.deepcopy(analysed)


try:  # deterministic property tests in CI, no per-example deadline on a busy 2-core machine
    from hypothesis import settings as _hyp

    _hyp.register_profile("ci", derandomize=True, deadline=None)
    _hyp.register_profile("dev", deadline=None)
    _hyp.load_profile("ci" if __import__("os").environ.get("CI") else "dev")
except ImportError:  # pragma: no cover
    pass
