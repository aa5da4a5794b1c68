"""The diagnostic specs: what each declares exists, the registry order works, and a new
diagnostic needs nothing but its spec in the registry.

Checked: every spec's settings are Settings fields owned by it alone; its rows and
columns are schema keys it writes (``Field.writer == spec.name``); the registry
runs each spec after those it requires, and each reads exactly the earlier results
it requires; every plot, section and explanation
reference resolves to a function in ``collapse_diag.render``; importing the
registry and the plot registry loads no plotting library; and a diagnostic
added to the registry (a toy one, with a closed-form answer) is run by
``analyze`` and shown by the tables, the terminal and the explanation.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest
from toy_models import ToyVAE

from collapse_diag import analysis
from collapse_diag.config.settings import Settings
from collapse_diag.diagnostics import registry
from collapse_diag.diagnostics.spec import (
    COLUMN_FORMATS,
    ROW_FORMATS,
    DiagnosticSpec,
    DimensionColumn,
    RunContext,
    SectionRef,
    SummaryRow,
    resolve,
)
from collapse_diag.render import tables
from collapse_diag.render.explain import explain
from collapse_diag.report import schema
from collapse_diag.report.report import Report, ReportSection

SPECS = registry.SPECS


def test_names_are_unique_and_are_the_diagnostics_settings_accept():
    names = [spec.name for spec in SPECS]
    assert len(set(names)) == len(names)
    assert list(analysis.DIAGNOSTICS) == names
    assert all(analysis.DIAGNOSTICS[spec.name] is spec.run for spec in SPECS)
    for table in (schema.SUMMARY, schema.DIMENSION, schema.DISTRIBUTIONS, schema.PROBE):
        assert {f.writer for f in table.values()} - {None} <= set(names)


def test_every_setting_is_owned_once_or_shared():
    fields = [f.name for f in dataclasses.fields(Settings)]
    owned = [name for spec in SPECS for name in spec.settings]
    assert len(set(owned)) == len(owned), "a setting owned by two specs"
    assert set(owned) <= set(fields)
    assert not set(owned) & set(analysis.RUN_SETTINGS)
    assert set(owned) | set(analysis.RUN_SETTINGS) == set(fields)


def test_registry_order_satisfies_requires_and_runs_with():
    seen: set[str] = set()
    for spec in SPECS:
        assert set(spec.requires) <= seen, (spec.name, set(spec.requires) - seen)
        assert set(spec.runs_with) <= seen, spec.name
        seen.add(spec.name)


def test_each_diagnostic_reads_exactly_the_results_it_requires(monkeypatch):
    running: list[str] = []
    reads: dict[str, set[str]] = {spec.name: set() for spec in SPECS}
    result = RunContext.result

    def recorded(self, name):
        reads[running[-1]].add(name)
        return result(self, name)

    used: dict[str, set[str]] = {spec.name: set() for spec in SPECS}

    class Recorded:
        """The run's settings, recording which fields the running diagnostic reads."""

        def __init__(self, settings, name):
            self._settings, self._name = settings, name

        def __getattr__(self, field):
            used[self._name].add(field)
            return getattr(self._settings, field)

    def tracked(spec):
        def run(context):
            running.append(spec.name)
            return spec.run(dataclasses.replace(context,
                                                settings=Recorded(context.settings, spec.name)))
        return run

    monkeypatch.setattr(RunContext, "result", recorded)
    for spec in SPECS:
        monkeypatch.setitem(analysis.DIAGNOSTICS, spec.name, tracked(spec))
    class Generating(ToyVAE):  # generate(z): the decoder's mean, so "decoded" reads its settings
        def generate(self, z):
            return self.w * z

    model = Generating((2.0, 1.0, 0.0), 0.5)
    x = model.sample(60, seed=1)
    report = analysis.analyze(model, x, labels={"sign": (x[:, 0] > 0).numpy().astype(int)},
                              seed=0, swap_bootstrap=50, per_dim_swap_examples=16,
                              fisher_bootstrap=20, mi_bootstrap=20, nll_samples=5,
                              nll_examples=20, prior_samples=4)
    gaussian = [spec for spec in SPECS if "gaussian" in spec.kinds]  # the discrete one skips
    assert report.errors == {} and running == [spec.name for spec in gaussian]
    assert {k: v for k, v in reads.items() if k in running} == {
        spec.name: set(spec.requires) for spec in gaussian}
    owner = {name: spec.name for spec in SPECS for name in spec.settings}
    for spec in SPECS:  # a diagnostic reads its own settings and shared ones, no other's
        assert {owner[name] for name in used[spec.name] if name in owner} <= {spec.name}, spec.name
        # swap_windows is read for sequential latents only (this model has vector latents)
        assert set(spec.settings) - used[spec.name] <= {"swap_windows"}, spec.name


def test_rows_and_columns_are_schema_keys_their_diagnostic_writes():
    for spec in SPECS:
        for row in spec.summary_rows:
            for key in (row.key, *row.related):
                assert schema.SUMMARY[key].writer == spec.name, (spec.name, key)
            assert row.format in ROW_FORMATS, (spec.name, row)
        for column in spec.columns:
            assert schema.DIMENSION[column.key].writer == spec.name, (spec.name, column.key)
            assert column.format in COLUMN_FORMATS, (spec.name, column)
            assert not column.overview or column.format in ("num", "nonnegative", "percent"), column
    keys = [row.key for row in tables.summary_rows()]
    assert len(set(keys)) == len(keys)
    columns = [column.key for column in tables.dimension_columns()]
    assert len(set(columns)) == len(columns)
    assert columns[0] == schema.DIMENSION_KEY.status  # the verdict leads


def test_the_tables_implement_exactly_the_declared_formats():
    assert set(tables._ROW_FORMATTERS) == set(ROW_FORMATS)
    assert set(tables._COLUMN_FORMATTERS) == set(COLUMN_FORMATS)


def test_every_reference_resolves_to_a_render_function():
    references = [ref.function for spec in SPECS for ref in spec.plots]
    references += [ref.table for spec in SPECS for ref in spec.sections]
    references += [ref for spec in SPECS for ref in spec.explanation]
    assert references
    for reference in references:
        assert reference.startswith("collapse_diag.render."), reference
        assert callable(resolve(reference)), reference
    plots = [ref.name for spec in SPECS for ref in spec.plots]
    assert len(set(plots)) == len(plots) and "overview" not in plots
    with pytest.raises(ValueError, match="module:name"):
        resolve("collapse_diag.render.tables")


def test_decoder_diagnostics_run_under_the_dtype_as_documented():
    # docs/performance.md: --dtype covers sensitivity and identifiability
    assert analysis.DECODER_DIAGNOSTICS == ("sensitivity", "identifiability")
    assert analysis.VERDICT_INPUTS == ("kl", "activity")


def test_the_registries_import_no_plotting_library():
    code = ("import sys, json\nimport collapse_diag.diagnostics.registry\n"
            "import collapse_diag.render.plots\n"
            "print(json.dumps([m for m in ('matplotlib', 'seaborn') if m in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True).stdout
    assert json.loads(out.strip().splitlines()[-1]) == []


# --- a diagnostic added by its spec alone --------------------------------------------------
_KEY = "mean_posterior_variance"  # a toy field, not part of the real schema


@dataclasses.dataclass(frozen=True)
class _SpreadResult:
    value: float
    per_dimension: np.ndarray

    def section(self) -> ReportSection:
        return ReportSection(summary={_KEY: self.value},
                             dimensions={_KEY: self.per_dimension.tolist()})


def _spread(context: RunContext) -> _SpreadResult:
    """E_x[sigma_d^2(x)] per dimension and its mean over d."""
    variance = np.exp(context.encodings.logvar).mean(axis=0)
    return _SpreadResult(float(variance.mean()), variance)


def spread_text(report: Report) -> str:
    """The toy diagnostic's paragraph."""
    return f"The mean posterior variance is {report.summary.get(_KEY):.4f}."


def _toy_spec() -> DiagnosticSpec:
    return DiagnosticSpec(
        name="spread", run=_spread, requires=("kl",),
        summary_rows=(SummaryRow(_KEY, "mean posterior variance", "nats", terminal="spread"),),
        columns=(DimensionColumn(_KEY, "posterior variance", "num", terminal=True,
                                 group="encoder"),),
        sections=(SectionRef("Spread", "spread", "The toy section.",
                             "collapse_diag.render.tables:summary_table"),),
        explanation=(f"{__name__}:spread_text",),
    )


def test_a_new_diagnostic_needs_only_its_spec_in_the_registry(monkeypatch):
    from collapse_diag.render.document import build_document
    from collapse_diag_cli.terminal import dimension_table, summary_line

    spec = _toy_spec()
    specs = (*SPECS, spec)
    monkeypatch.setattr(registry, "SPECS", specs)
    monkeypatch.setattr(analysis, "SPECS", specs)
    monkeypatch.setitem(analysis.DIAGNOSTICS, spec.name, spec.run)
    weights, noise = (2.0, 1.0, 0.0), 0.5
    model = ToyVAE(weights, noise)
    report = analysis.analyze(model, model.sample(40, seed=1),
                              diagnostics=["kl", "activity", "spread"])
    # closed form: sigma_d^2 = s^2 / (s^2 + w_d^2) for every input (float32 encoder: 1e-6)
    exact = [noise**2 / (noise**2 + w**2) for w in weights]
    assert report.errors == {}
    assert list(report.timings) == ["kl", "activity", "verdict", "spread"]
    assert report.summary[_KEY] == pytest.approx(np.mean(exact), abs=1e-6)
    assert [row[_KEY] for row in report.dimensions] == pytest.approx(exact, abs=1e-6)
    assert ["mean posterior variance", f"{tables.fmt_num(np.mean(exact))} nats"] \
        in tables.summary_table(report).rows
    assert "posterior variance" in tables.dimension_table(report).headers
    assert "posterior variance" in dimension_table(report)
    assert f"| spread {np.mean(exact):.3f}" in summary_line(report)
    assert explain(report)[-1] == f"The mean posterior variance is {np.mean(exact):.4f}."
    titles = [s.title for s in build_document(report, drawn=()).sections]
    assert "Spread" in titles


def test_the_terminal_labels_of_the_headline_figures_are_their_short_names():
    # One place per fact: the terminal summary line labels the headline figures with the
    # names the demo, compare, trajectory and monitor use (headlines.LABELS).
    from collapse_diag.report.headlines import HEADLINE, LABELS

    rows = {row.key: row for spec in SPECS for row in spec.summary_rows}
    assert {key: rows[key].terminal for key in HEADLINE} == {key: LABELS[key] for key in HEADLINE}
    for key, row in rows.items():
        if row.terminal and key in LABELS:
            assert row.terminal == LABELS[key], key
