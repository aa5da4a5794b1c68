"""The complete example of each latent kind in docs/model-protocol.md runs as printed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import collapse_diag

DOC = Path(__file__).resolve().parents[1] / "docs" / "model-protocol.md"
CHEAP = {"seed": 0, "swap_bootstrap": 50, "per_dim_swap_examples": 32, "mi_bootstrap": 20,
         "fisher_bootstrap": 20, "prior_samples": 4, "nll_samples": 8, "nll_examples": 32}


def _examples() -> dict[str, str]:
    blocks = re.findall(r"```python\n(# example: ([a-z-]+)\n.*?)```", DOC.read_text(), re.S)
    return {name: code for code, name in blocks}


def test_every_kind_has_its_example():
    assert set(_examples()) == {"vq-vae", "gumbel-softmax", "vrnn"}


@pytest.mark.parametrize("name, kind, diagnostics", [
    ("vq-vae", "codes", None),
    ("gumbel-softmax", "categorical", None),
    ("vrnn", "gaussian", ["kl", "activity", "sensitivity", "likelihood"]),
])
def test_the_example_runs_as_documented(name, kind, diagnostics):
    namespace: dict = {}
    exec(compile(_examples()[name], f"model-protocol.md:{name}", "exec"), namespace)  # noqa: S102
    settings = dict(CHEAP, diagnostics=diagnostics) if diagnostics else CHEAP
    report = collapse_diag.analyze(namespace["model"], namespace["x"], **settings)
    assert report.errors == {} and report.warnings == [], (report.errors, report.warnings)
    assert report.provenance["latent_kind"] == kind
    assert report.summary["verdict"] is not None
    if name == "vrnn":
        assert report.provenance["latent_steps"] == 10 and report.summary["nll"] is not None
