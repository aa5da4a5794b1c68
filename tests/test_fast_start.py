"""The CLI's help and the error classes load without torch, matplotlib or seaborn.

Not a timing test: it checks which modules are imported, in a fresh interpreter.
The start-up times are printed by benchmarks/bench_start.py.
"""

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "matplotlib", "seaborn", "scipy", "sklearn")

_PROBE = """
import contextlib, io, json, sys
{body}
print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)))
"""

_HELP = """
from collapse_diag_cli.main import main
for args in {args!r}:
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            main(args)
        except SystemExit as exit:
            assert exit.code == 0, exit.code
"""


def _heavy_modules_after(body: str) -> list[str]:
    code = _PROBE.format(body=body, heavy=HEAVY)
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.parametrize("args", [["--help"], ["analyze", "--help"], ["render", "--help"],
                                  ["demo", "--help"], ["--version"]])
def test_help_imports_no_heavy_module(args):
    assert _heavy_modules_after(_HELP.format(args=[args])) == []


def test_exceptions_and_package_import_without_torch():
    body = ("import collapse_diag\nimport collapse_diag.exceptions\n"
            "assert collapse_diag.CollapseDiagError is collapse_diag.exceptions.CollapseDiagError")
    assert _heavy_modules_after(body) == []


def test_lazy_names_resolve_and_all_is_complete():
    import collapse_diag

    for name in collapse_diag.__all__:
        assert getattr(collapse_diag, name) is not None, name
    from collapse_diag.analysis import analyze

    assert collapse_diag.analyze is analyze
    assert set(collapse_diag.__all__) <= set(dir(collapse_diag))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        collapse_diag.nope  # noqa: B018
