"""collapse_diag/report/schema.py declares every report field that is written or read.

Real ``analyze`` runs on the toy models (labels so the probes run, ``num_tokens``,
a learned prior; and the sequential and failed runs of
tests/real_reports.py) must write only declared keys; every reader (render, plots,
terminal, demo, compare and its documents, trajectory, monitor), run on those
reports through dicts that record each key looked up, must read only declared
keys; and docs/report-schema.md must document exactly the declared fields.
tests/test_report_keys.py checks that no module spells those keys as literals.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from models_for_tests import PriorVAE, TokenLinearVAE, toy_data, toy_vae
from toy_models import ToyVAE

from collapse_diag import analyze
from collapse_diag.demo import comparison_table
from collapse_diag.render import write_report
from collapse_diag.render.comparison import write_comparison
from collapse_diag.render.explain import explain
from collapse_diag.report import schema
from collapse_diag.report.report import Report
from collapse_diag.report.schema_doc import PARTS, regenerate
from collapse_diag.report.schema_doc import main as schema_doc_main
from collapse_diag.runs.comparison import compare
from collapse_diag.runs.monitor import scalars
from collapse_diag.runs.trajectory import DIMENSION_FIELDS, SUMMARY_FIELDS, row_from_report

DOC = Path(__file__).resolve().parents[1] / "docs" / "report-schema.md"
FAST = {"seed": 0, "swap_bootstrap": 100, "per_dim_swap_examples": 40, "fisher_bootstrap": 50,
        "mi_bootstrap": 50, "nll_samples": 10, "nll_examples": 50, "prior_samples": 8}


class Recording(dict):
    """A dict that records, in ``log``, every key looked up by ``[]``, ``get`` or ``in``."""

    def __init__(self, *args, log: set | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.log = set() if log is None else log

    def __getitem__(self, key):
        self.log.add(key)
        return super().__getitem__(key)

    def get(self, key, default=None):
        self.log.add(key)
        return super().get(key, default)

    def __contains__(self, key):
        self.log.add(key)
        return super().__contains__(key)

    def setdefault(self, key, default=None):
        self.log.add(key)
        return super().setdefault(key, default)

    def pop(self, key, *default):
        self.log.add(key)
        return super().pop(key, *default)


def _tokens_report() -> Report:
    base = toy_vae("uicn")
    model = TokenLinearVAE(base.W, base.sigma, base.A, base.lv, base.b)
    x = toy_data(4, 160)
    tokens = torch.from_numpy(np.random.default_rng(0).integers(1, 9, size=160))
    labels = {"sign": (x[:, 0] > 0).numpy().astype(int),
              "rare": np.r_[np.zeros(159, dtype=int), 1]}  # a class seen once: skipped
    return analyze(model, {"x": x, "n": tokens}, labels=labels, **FAST)


def _prior_report() -> Report:
    base = toy_vae("uu")
    model = PriorVAE(base.W, base.sigma, base.A, base.lv, prior_mean=[0.0, 0.5],
                     prior_logvar=[math.log(2.0), 0.0])
    return analyze(model, toy_data(2, 120), **FAST)


def _toy_report() -> Report:
    model = ToyVAE((2.0, 1.0, 0.0), 0.5)
    return analyze(model, model.sample(150, seed=1), **FAST)


@pytest.fixture(scope="module")
def reports() -> dict[str, Report]:
    return {"tokens": _tokens_report(), "prior": _prior_report(), "toy": _toy_report()}


def test_the_runs_cover_what_they_should(reports):
    tokens = reports["tokens"]
    assert not any(r.errors for r in reports.values())
    assert tokens.summary["probes"] and tokens.summary["probes_skipped"]
    assert tokens.summary["nll_per_token"] is not None
    assert reports["prior"].provenance["has_prior"]


def test_every_written_key_is_declared(reports):
    for name, report in reports.items():
        payload = report.to_dict()
        assert set(payload) == set(schema.TOP_LEVEL), name
        assert set(payload["summary"]) <= set(schema.SUMMARY), name
        for row in payload["dimensions"]:
            assert set(row) <= set(schema.DIMENSION), name
        assert set(payload["distributions"]) <= set(schema.DISTRIBUTIONS), name
        assert set(payload["provenance"]) <= set(schema.PROVENANCE), name
        for probe in payload["summary"].get("probes", {}).values():
            assert set(probe) == set(schema.PROBE), name
        statuses = {row["status"] for row in payload["dimensions"]}
        assert statuses <= set(schema.STATUSES)
        assert set(payload["summary"]["status_counts"]) == set(schema.STATUSES)


def _vector_fields(table: dict) -> set:
    """Declared fields a Gaussian vector-latent run writes (the sequential ones and those of
    discrete latents are null or absent)."""
    return {n for n, f in table.items()
            if not f.description.startswith(("sequential latents:", "codes:", "categorical:",
                                             "codes or categorical:"))}


def test_a_full_run_writes_every_declared_summary_and_dimension_field(reports):
    tokens = reports["tokens"]
    assert _vector_fields(schema.SUMMARY) <= set(tokens.summary)
    assert _vector_fields(schema.DIMENSION) <= set().union(*map(set, tokens.dimensions))
    assert set(tokens.distributions) == set(schema.DISTRIBUTIONS)


def test_writers_are_the_declared_diagnostics(reports):
    """Each field comes from the diagnostic schema.py names: dropping it drops the field."""
    from collapse_diag.analysis import DIAGNOSTICS

    for table in (schema.SUMMARY, schema.DIMENSION, schema.DISTRIBUTIONS):
        assert {f.writer for f in table.values()} - {None} <= set(DIAGNOSTICS)
    model = ToyVAE((2.0, 1.0, 0.0), 0.5)
    only_kl = analyze(model, model.sample(80, seed=1), diagnostics=["kl", "activity"], **FAST)
    for key in only_kl.summary:
        assert schema.SUMMARY[key].writer in {"kl", "activity", "verdict"}, key
    for key in only_kl.dimensions[0]:
        assert schema.DIMENSION[key].writer in {None, "kl", "activity", "verdict"}, key


def _instrumented(report: Report) -> tuple[Report, dict[str, set]]:
    logs = {name: set() for name in ("summary", "dimension", "distributions", "provenance",
                                     "probe")}
    summary = Recording(report.summary, log=logs["summary"])
    if "probes" in summary:
        dict.__setitem__(summary, "probes", {k: Recording(v, log=logs["probe"])
                                             for k, v in report.summary["probes"].items()})
    copy = Report(
        n_examples=report.n_examples, latent_dim=report.latent_dim, summary=summary,
        dimensions=[Recording(row, log=logs["dimension"]) for row in report.dimensions],
        settings=report.settings, checkpoint=report.checkpoint,
        provenance=Recording(report.provenance, log=logs["provenance"]),
        distributions=Recording(report.distributions, log=logs["distributions"]),
        errors=report.errors, timings=report.timings,
    )
    return copy, logs


def _assert_declared(logs: dict[str, set]) -> None:
    tables = {"summary": schema.SUMMARY, "dimension": schema.DIMENSION,
              "distributions": schema.DISTRIBUTIONS, "provenance": schema.PROVENANCE,
              "probe": schema.PROBE}
    for name, accessed in logs.items():
        assert accessed <= set(tables[name]), (name, sorted(accessed - set(tables[name])))


def test_every_key_the_readers_read_is_declared(reports, analysed, tmp_path):
    from collapse_diag_cli.terminal import dimension_table, summary_line

    all_logs: dict[str, set] = {}
    more = {name: analysed[name] for name in ("sequential", "failed")}
    for name, report in {**reports, **more}.items():
        inst, logs = _instrumented(report)
        write_report(inst, tmp_path / name, formats=("md", "html"), dpi=30)
        explain(inst)
        dimension_table(inst)
        summary_line(inst, name)
        comparison_table({name: inst})
        _assert_declared(logs)
        for key, value in logs.items():
            all_logs.setdefault(key, set()).update(value)
    pair = [_instrumented(reports["tokens"]), _instrumented(reports["toy"])]
    write_comparison(compare([pair[0][0], pair[1][0]], names=["a", "b"]), tmp_path / "cmp",
                     dpi=30)
    for _, logs in pair:
        _assert_declared(logs)
    # the readers really were instrumented: they read the headline figures
    assert {"verdict", "kl", "swap_delta", "probes"} <= all_logs["summary"]
    assert {"status", "kl", "fisher"} <= all_logs["dimension"]
    assert {"accuracy", "baseline"} <= all_logs["probe"]


def test_trajectory_and_monitor_read_declared_fields(reports):
    assert set(SUMMARY_FIELDS) <= set(schema.SUMMARY)
    assert set(DIMENSION_FIELDS) <= set(schema.DIMENSION)
    row = row_from_report(reports["toy"].to_dict(), step=3)
    assert set(row["summary"]) <= set(schema.SUMMARY)
    summary, logs = Recording(row["summary"]), set()
    dims = [Recording(d, log=logs) for d in row["dimensions"]]
    assert scalars({**row, "summary": summary, "dimensions": dims})
    assert summary.log <= set(schema.SUMMARY) and logs <= set(schema.DIMENSION)


def test_the_doc_tables_are_generated_from_the_schema():
    """docs/report-schema.md's tables are schema.py's fields, regenerated (no twin)."""
    text = DOC.read_text()
    assert regenerate(text) == text, (
        "docs/report-schema.md is stale: python -m collapse_diag.report.schema_doc "
        "docs/report-schema.md")
    shown = re.findall(r"<!-- fields: (\w+) -->", text)
    assert sorted(shown) == sorted(set(PARTS) - {"TOP_LEVEL"}), shown
    for part in shown:  # every declared field is in the page, in schema order
        rows = text.split(f"<!-- fields: {part} -->", 1)[1].split("<!-- /fields -->", 1)[0]
        assert re.findall(r"^\| `([^`]+)`", rows, re.M) == list(PARTS[part])


def test_the_doc_generator_rewrites_a_stale_table(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("intro\n<!-- fields: PROBE -->\n| old |\n<!-- /fields -->\noutro\n")
    assert schema_doc_main([str(page), "--check"]) == 1
    assert "| old |" in page.read_text()
    assert schema_doc_main([str(page)]) == 0
    assert "`accuracy_mu`" in page.read_text() and "| old |" not in page.read_text()
    assert schema_doc_main([str(page), "--check"]) == 0


def test_the_doc_lists_the_top_level_keys_and_statuses():
    block = DOC.read_text().split("```\n{", 1)[1].split("\n}\n```", 1)[0]
    assert re.findall(r'^  "([a-z_]+)":', block, re.M) == list(schema.TOP_LEVEL)
    assert f'"schema_version": {Report.schema_version}' in block


def test_the_fisher_cut_off_is_stored_and_counts_the_rank(reports):
    """Toy VAE, weights (2, 1, 0), noise 0.5: Fisher eigenvalues ~ w^2 / 0.25 = 16, 4, 0.

    g_d = w_d r_d / s^2 with r_d ~ N(0, s^2), so g_d^2 / F_dd ~ chi^2(1): over N S = 150
    draws the estimate has relative standard error sqrt(2 / 150) = 0.115; tolerance 4 of them.
    """
    s = reports["toy"].summary
    eig = np.asarray(s["fisher_eigenvalues"])
    np.testing.assert_allclose(eig, [16.0, 4.0, 0.0], rtol=4 * (2 / 150) ** 0.5, atol=1e-9)
    rtol, atol = reports["toy"].settings["fisher_rank_rtol"], reports["toy"].settings[
        "fisher_rank_atol"]
    assert s["fisher_rank_cutoff"] == max(rtol * eig.max(), atol)
    assert s["identifiable_dims"] == int(np.sum(eig >= s["fisher_rank_cutoff"])) == 2
    model = ToyVAE((2.0, 1.0, 0.0), 0.5)
    strict = analyze(model, model.sample(150, seed=1), **{**FAST, "fisher_rank_rtol": 0.5},
                     diagnostics=["kl", "activity", "sensitivity", "identifiability"])
    cut = strict.summary["fisher_rank_cutoff"]
    assert cut == pytest.approx(0.5 * max(strict.summary["fisher_eigenvalues"]))
    assert strict.summary["identifiable_dims"] == 1  # 4 < 8: only the first direction


def test_the_documented_probe_margin_is_the_one_applied():
    from collapse_diag.diagnostics.probes import PROBE_MARGIN

    assert f"beats the baseline by {PROBE_MARGIN}" in schema.SUMMARY["probes"].description


def test_keys_name_declared_fields_and_reject_others():
    from collapse_diag.report.schema import SUMMARY, SUMMARY_KEY

    assert all(getattr(SUMMARY_KEY, name) == name for name in SUMMARY)
    with pytest.raises(AttributeError, match="not a declared summary key"):
        _ = SUMMARY_KEY.kl_totl
    with pytest.raises(AttributeError):
        SUMMARY_KEY.kl = "x"
