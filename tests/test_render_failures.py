"""A plot or document that fails never loses the analysis (issue 29).

report.json is still written, complete, with the failure under ``errors``
(``plot:<name>`` / ``document:<format>``); the documents name the failure where the
figure would have been; the CLI exits 4 ("a part failed"), not 3. Also: the swap
error-bar plot draws a report whose interval excludes its estimate.
"""

import copy
import json

import pytest
from click.testing import CliRunner

from collapse_diag.render import plots_sensitivity, render_directory, write_report
from collapse_diag.render.plots import PLOTS, SECTION_PLOTS
from collapse_diag.report.report import Report
from collapse_diag.report.schema import DIMENSION_KEY as DK
from collapse_diag_cli.main import main

DPI = 30
MESSAGE = "'yerr' must not contain negative values"


def _boom(report):
    raise ValueError(MESSAGE)


def _read(path):
    return path.read_text(encoding="utf-8")


def test_a_failing_plot_leaves_a_complete_report_json_and_named_documents(
        tmp_path, analysed, monkeypatch):
    monkeypatch.setattr(plots_sensitivity, "plot_sensitivity", _boom)
    report = copy.deepcopy(analysed["healthy"])
    written = write_report(report, tmp_path, dpi=DPI)
    assert set(written) == {"json", "md", "html", "plots"}
    payload = json.loads(_read(tmp_path / "report.json"))
    assert payload["errors"] == {"plot:sensitivity": f"ValueError: {MESSAGE}"}
    assert report.errors == payload["errors"]  # the caller's report records it too
    expected = analysed["healthy"].to_dict()
    got = Report.from_json(tmp_path / "report.json").to_dict()
    got["errors"], expected["errors"] = {}, {}
    assert got == expected  # every figure of the analysis is there
    drawn = {p.stem for p in (tmp_path / "plots").iterdir()}
    assert drawn == set(PLOTS) - SECTION_PLOTS - {"sensitivity"}  # no generate(z): no decodes
    for text in (_read(tmp_path / "report.md"), _read(tmp_path / "report.html")):
        assert "Not drawn: drawing this plot failed" in text
        assert "must not contain negative values" in text
        assert "Plots that failed" in text and "plot:sensitivity" in text
        assert "Some diagnostics failed" not in text  # no diagnostic failed


def test_rerendering_replaces_a_stale_plot_failure(tmp_path, analysed, monkeypatch):
    with monkeypatch.context() as patch:
        patch.setattr(plots_sensitivity, "plot_sensitivity", _boom)
        write_report(copy.deepcopy(analysed["healthy"]), tmp_path, dpi=DPI)
    render_directory(tmp_path, dpi=DPI)  # the plot draws now
    assert (tmp_path / "plots" / "sensitivity.png").is_file()
    assert "drawing this plot failed" not in _read(tmp_path / "report.md")


@pytest.mark.parametrize("broken", ["md", "html"])
def test_a_failing_document_gets_a_stub_naming_the_failure(tmp_path, analysed, monkeypatch,
                                                           broken):
    from collapse_diag.render import emit

    name = {"md": "render_markdown", "html": "render_html"}[broken]
    monkeypatch.setattr(emit, name, lambda *a, **k: (_ for _ in ()).throw(
        RuntimeError("template broke")))
    write_report(copy.deepcopy(analysed["healthy"]), tmp_path, dpi=DPI)
    payload = json.loads(_read(tmp_path / "report.json"))
    assert payload["errors"] == {f"document:{broken}": "RuntimeError: template broke"}
    assert payload["dimensions"] == analysed["healthy"].to_dict()["dimensions"]
    path = tmp_path / f"report.{broken}"
    assert "could not be rendered (RuntimeError: template broke)" in _read(path)
    other = tmp_path / f"report.{({'md', 'html'} - {broken}).pop()}"
    assert "Per-dimension figures" in _read(other)


def test_the_cli_exits_4_with_the_report_written_when_a_plot_fails(toy_checkpoint, user_dir,
                                                                    monkeypatch):
    monkeypatch.setattr(plots_sensitivity, "plot_sensitivity", _boom)
    out = user_dir / "rep"
    result = CliRunner().invoke(main, ["analyze", str(toy_checkpoint), "--out", str(out),
                                       "--per-dim-swap-examples", "20", "--prior-samples",
                                       "4", "--quiet"])
    assert result.exit_code == 4, result.output
    assert "error: plot sensitivity failed: ValueError" in result.output
    payload = json.loads(_read(out / "report.json"))
    assert "plot:sensitivity" in payload["errors"] and payload["summary"]["verdict"]
    assert "drawing this plot failed" in _read(out / "report.md")
    rerun = CliRunner().invoke(main, ["render", str(out)])
    assert rerun.exit_code == 4 and "plot sensitivity failed" in rerun.output


def test_the_swap_plot_draws_an_interval_that_excludes_its_estimate(analysed):
    # Issue 29's report: estimate 30.86 beside the interval [7.00, 28.43] (written before
    # swap_estimate_ci existed): the bars are one-sided instead of a negative yerr.
    report = copy.deepcopy(analysed["healthy"])
    for row in report.dimensions:
        row.pop(DK.swap_estimate_ci, None)
        row[DK.swap_delta], row[DK.swap_ci] = 30.86, [7.00, 28.43]
    fig = plots_sensitivity.plot_sensitivity(report)
    assert fig is not None


def test_a_document_that_cannot_be_laid_out_leaves_stubs_and_the_json(tmp_path, analysed,
                                                                      monkeypatch):
    import collapse_diag.render as render

    monkeypatch.setattr(render, "build_document", lambda *a, **k: _boom(None))
    write_report(copy.deepcopy(analysed["healthy"]), tmp_path, dpi=DPI)
    payload = json.loads(_read(tmp_path / "report.json"))
    assert set(payload["errors"]) == {"document:md", "document:html"}
    assert payload["summary"] == analysed["healthy"].to_dict()["summary"]
    for name in ("report.md", "report.html"):
        assert "could not be rendered (ValueError: " in _read(tmp_path / name)
        assert "must not contain negative values" in _read(tmp_path / name)
