"""No report key is spelled as a string literal outside collapse_diag/report/schema.py (issue 15).

Every ``.py`` file of collapse_diag/ and cli/ is parsed; a string literal that
names a declared report key (any field of schema.SUMMARY, DIMENSION,
DISTRIBUTIONS, PROBE, PROVENANCE, TOP_LEVEL) fails the test when it is *used
as a key*:

* a subscript ``x["kl"]``;
* the first argument of ``.get`` / ``.pop`` / ``.setdefault``;
* a key of a dict display ``{"kl": ...}``;
* the left side of an ``in`` / ``not in`` test (``"kl" in summary``);
* the key argument of a report accessor (``dim_column(report, "kl")``).

Other strings are left alone: ``diagnostics=["kl", "activity"]`` names
diagnostics, a message may say "kl". Keyword arguments are parameter names, not
literals, and are not looked at (``Settings(device=...)``, but also
``dict(kl=...)``: a gap this test does not close).
Code spells report keys through the ``Keys`` namespaces (``SUMMARY_KEY.kl``);
a file whose own JSON (trajectory.json, comparison.json) has keys that happen
to share a report key's name declares them in its own namespace too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from collapse_diag.report import schema

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("collapse_diag", "cli")

#: Every declared report key.
DECLARED = frozenset().union(schema.SUMMARY, schema.DIMENSION, schema.DISTRIBUTIONS,
                             schema.PROBE, schema.PROVENANCE, schema.TOP_LEVEL)

#: Functions whose second positional argument (or ``key=``) is a report key.
KEY_ACCESSORS = frozenset({"dim_column", "_column", "_dim_matrix"})

#: Modules not converted yet (empty: every module spells report keys through schema.py).
NOT_YET_CONVERTED: tuple[str, ...] = ()


def _settings_names() -> frozenset[str]:
    from dataclasses import fields

    from collapse_diag.config.settings import Settings

    return frozenset(f.name for f in fields(Settings))


#: Modules whose dicts with a report key's name are not reports, and which names those are.
#: Only the names listed are let through, so a real report key read there still fails.
NOT_REPORT_KEYS: dict[str, tuple[frozenset[str], str]] = {
    "collapse_diag/config/settings.py": (_settings_names(),
                                         "Settings field names (bounds, defaults)"),
    "collapse_diag/analysis.py": (frozenset({"verdict"}),
                                  "SPEC_BY_NAME is keyed by diagnostic names"),
    "collapse_diag/diagnostics/information.py": (frozenset({"marginal_kl_ci"}),
                                                 "keyword arguments of InformationResult"),
    "collapse_diag/config/presets.py": (_settings_names(), "Settings field names of the presets"),
    "collapse_diag/io/checkpoint.py": (frozenset({"labels"}), "a checkpoint file's own keys"),
    "collapse_diag/report/invariants.py": (frozenset({"model"}),
                                           "CAUSE_STATUSES is keyed by cause names"),
    "collapse_diag/io/adapters/native.py": (frozenset({"labels", "model"}),
                                         "a checkpoint file's own keys"),
    "collapse_diag/io/adapters/lightning.py": (frozenset({"labels"}),
                                            "a checkpoint file's own keys"),
    "collapse_diag/io/adapters/pythae.py": (frozenset({"reconstruction"}),
                                         "the output dict of a pythae decoder"),
    "collapse_diag/report/encodings_file.py": (frozenset({"data_sha256"}),
                                        "an array name inside encodings.npz"),
    "collapse_diag/examples/train.py": (frozenset({"latent_dim", "kl", "active_units", "labels",
                                                   "model"}),
                                        "model configs and the training loop's own figures"),
    "collapse_diag/render/comparison_plots.py": (frozenset({"nll_convergence"}),
                                                 "a plot name (file comparison_<name>.png)"),
    "collapse_diag/render/trajectory_plots.py": (frozenset({"status"}),
                                                 "a plot name (file trajectory-plots/<name>.png)"),
}

#: The modules that declare keys: schema.py, and nothing else reads report keys as text.
DECLARING = ("collapse_diag/report/schema.py",)


def _literal(node: ast.AST | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str) \
            and node.value in DECLARED:
        return node.value
    return None


def literal_keys(source: str) -> list[tuple[int, str]]:
    """``(line, key)`` of every declared report key spelled as a literal and used as a key."""
    found: list[tuple[int, str | None]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Subscript):
            found.append((node.lineno, _literal(node.slice)))
        elif isinstance(node, ast.Dict):
            found.extend((node.lineno, _literal(k)) for k in node.keys if k is not None)
        elif isinstance(node, ast.Compare):
            if any(isinstance(op, (ast.In, ast.NotIn)) for op in node.ops):
                found.append((node.lineno, _literal(node.left)))
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else \
                func.id if isinstance(func, ast.Name) else None
            if name in ("get", "pop", "setdefault") and isinstance(func, ast.Attribute) \
                    and node.args:
                found.append((node.lineno, _literal(node.args[0])))
            elif name in KEY_ACCESSORS:
                found.extend((node.lineno, _literal(a)) for a in node.args[1:2])
                found.extend((node.lineno, _literal(k.value)) for k in node.keywords
                             if k.arg == "key")
    return sorted((line, key) for line, key in found if key is not None)


def _modules() -> list[str]:
    return sorted(str(p.relative_to(ROOT)) for package in PACKAGES
                  for p in (ROOT / package).rglob("*.py"))


def _exempt(module: str) -> bool:
    return module in DECLARING or module.startswith(NOT_YET_CONVERTED)


def test_no_report_key_is_spelled_outside_the_schema():
    offenders = {}
    for module in _modules():
        if _exempt(module):
            continue
        allowed = NOT_REPORT_KEYS.get(module, (frozenset(), ""))[0]
        hits = [(line, key) for line, key in literal_keys((ROOT / module).read_text(
            encoding="utf-8")) if key not in allowed]
        if hits:
            offenders[module] = hits
    assert not offenders, ("report keys spelled as literals (use collapse_diag.report.schema's "
                           f"SUMMARY_KEY, DIMENSION_KEY, ...): {offenders}")


def test_the_exemptions_name_real_files_and_real_hits():
    """A stale exemption is a hole in the test: every entry must still be needed."""
    modules = _modules()
    moving = ("collapse_diag/render/plots", "collapse_diag/report/values.py")
    stale = [e for e in NOT_YET_CONVERTED if not any(m.startswith(e) for m in modules)
             and e not in moving]
    assert not stale, stale
    for module, (names, _) in NOT_REPORT_KEYS.items():
        if module.endswith(("settings.py", "presets.py")):
            continue  # every Settings name is allowed there, used or not
        used = {key for _, key in literal_keys((ROOT / module).read_text(encoding="utf-8"))}
        assert names <= used, (module, sorted(names - used))


@pytest.mark.parametrize("source, expected", [
    ('summary["kl"]', [(1, "kl")]),
    ('row.get("status")', [(1, "status")]),
    ('d.pop("swap_ci", None)', [(1, "swap_ci")]),
    ('d.setdefault("index", 0)', [(1, "index")]),
    ('x = {"verdict": v, "name": n}', [(1, "verdict")]),
    ('ok = "probes" in summary', [(1, "probes")]),
    ('ok = "probes" not in summary', [(1, "probes")]),
    ('v = dim_column(report, "mu_variance")', [(1, "mu_variance")]),
    ('v = _dim_matrix(trajectory, key="kl")', [(1, "kl")]),
])
def test_a_planted_literal_key_is_found(source, expected):
    assert literal_keys(source) == expected


@pytest.mark.parametrize("source", [
    'analyze(model, data, diagnostics=["kl", "activity"])',  # diagnostic names
    'Settings(kl_eps=0.1, device="cpu")',                   # settings keywords
    'raise DataError("the kl figure is missing")',           # prose
    'summary[S.kl]',                                         # through the schema
    'row.get(name)',                                         # a variable key
    'settings.get("kl_eps")',                                # a setting, not a report key
    'DIAGNOSTICS = ("kl", "activity", "information")',      # a registry of names
    'if status == "used": pass',                             # a status value
])
def test_names_that_are_not_used_as_keys_pass(source):
    assert literal_keys(source) == []


def test_a_planted_literal_in_a_converted_module_fails_the_scan(tmp_path):
    """The scan of a real converted module finds a literal planted into it."""
    module = "collapse_diag/runs/comparison.py"
    assert not _exempt(module)
    text = (ROOT / module).read_text(encoding="utf-8")
    assert literal_keys(text) == []
    planted = text + '\n\ndef _planted(report):\n    return report.summary["nll"]\n'
    assert [key for _, key in literal_keys(planted)] == ["nll"]
