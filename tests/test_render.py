"""Writers: report.json / report.md (+ plots/) / report.html from a hand-built Report,
self-contained HTML, notes for missing plots, re-rendering from report.json, and an
explanation that follows the figures."""

import json
import re
import shutil

import pytest
from report_fixtures import (
    collapsed_report,
    failed_report,
    healthy_report,
    minimal_report,
    partial_report,
)

from collapse_diag.exceptions import InvalidParameterError
from collapse_diag.render import explain, render_directory, write_report
from collapse_diag.render.markdown import escape_markdown
from collapse_diag.render.plots import PLOTS
from collapse_diag.report import Report

DPI = 30
DATA_URI = re.compile(r"data:image/png;base64,[A-Za-z0-9+/=]+")
EXTERNAL = re.compile(
    r"""\b(?:src|href)\s*=\s*(?!["']?(?:data:|#))|url\(\s*(?!["']?data:)|@import|<link\b"""
    r"""|<script\b[^>]*\bsrc|<iframe|<object|<embed""", re.IGNORECASE)


@pytest.fixture(scope="module")
def healthy_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("healthy")
    written = write_report(healthy_report(), out, dpi=DPI)
    return out, written


@pytest.fixture(scope="module")
def failed_dir(tmp_path_factory, healthy_dir):
    """The failed report written over a copy of the healthy one (stale plots must go)."""
    out = tmp_path_factory.mktemp("failed") / "report"
    shutil.copytree(healthy_dir[0], out)
    write_report(failed_report(), out, dpi=DPI)
    return out


def _read(path):
    return path.read_text(encoding="utf-8")


def test_each_writer_produces_its_file(healthy_dir):
    out, written = healthy_dir
    assert set(written) == {"json", "md", "html", "plots"}
    assert written["json"] == out / "report.json"
    assert Report.from_json(out / "report.json").to_dict() == healthy_report().to_dict()
    assert sorted(p.name for p in (out / "plots").iterdir()) == sorted(f"{n}.png" for n in PLOTS)
    assert not [p for p in out.rglob(".*")]  # no temporary files left behind


def test_markdown_holds_every_section_and_links_existing_plots(healthy_dir):
    out, _ = healthy_dir
    md, report = _read(out / "report.md"), healthy_report()
    assert md.startswith("# Posterior collapse report: healthy.pt\n")
    assert "**Verdict: healthy.** All 8 latent dimensions" in md
    for title in ("What this means", "Key figures", "Plots", "Per-dimension figures",
                  "Known factors", "Settings", "Provenance"):
        assert f"\n## {title}\n" in md
    for paragraph in explain(report):
        assert escape_markdown(paragraph) in md
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert links == [f"plots/{name}.png" for name in PLOTS]
    assert all((out / link).is_file() for link in links)
    assert "| z7 | used |" in md
    assert "c0ffee" in md and "2024-05-01T12:00:00+00:00" in md  # provenance
    assert "Diagnostics that failed" not in md


def test_html_is_self_contained(healthy_dir):
    out, _ = healthy_dir
    html = _read(out / "report.html")
    assert html.startswith("<!DOCTYPE html>")
    assert not EXTERNAL.search(html)
    assert "http://" not in html and "https://" not in html
    assert "//" not in DATA_URI.sub("", html)
    images = re.findall(r"<img\b[^>]*>", html)
    assert len(images) == len(PLOTS)
    assert all('src="data:image/png;base64,' in tag for tag in images)
    assert "@media print" in html and 'class="sortable"' in html


def test_missing_plots_get_a_note_and_stale_plots_go(failed_dir):
    md, html = _read(failed_dir / "report.md"), _read(failed_dir / "report.html")
    drawn = {"kl", "activity", "overview"}
    assert {p.stem for p in (failed_dir / "plots").iterdir()} == drawn
    assert len(re.findall(r"<img\b", html)) == len(drawn)
    for text in (md, html):
        assert text.count("Not drawn:") == len(PLOTS) - len(drawn)
        assert "Diagnostics that failed" in text
        assert "the decoder returned NaN for 3 inputs" in text
    assert "&lt;x|y&gt;" in html and "<x|y>" not in html  # report text is escaped
    assert "\\<x\\|y\\>" in md
    assert "none (library use)" in md  # no checkpoint
    assert not EXTERNAL.search(html)


def test_render_reproduces_the_documents_from_report_json(healthy_dir, tmp_path):
    source, _ = healthy_dir
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copy(source / "report.json", copy / "report.json")
    written = render_directory(copy, dpi=DPI)
    assert set(written) == {"md", "html", "plots"}
    assert _read(copy / "report.md") == _read(source / "report.md")
    assert (DATA_URI.sub("IMG", _read(copy / "report.html"))
            == DATA_URI.sub("IMG", _read(source / "report.html")))
    assert sorted(p.name for p in (copy / "plots").iterdir()) == sorted(
        p.name for p in (source / "plots").iterdir())


def test_every_writer_copes_with_an_empty_report(tmp_path):
    report = minimal_report()
    report.summary = {"kl": float("nan"), "verdict": None, "swap_ci": None}
    written = write_report(report, tmp_path, formats="json,md,html", dpi=DPI)
    assert set(written) == {"json", "md", "html"}
    assert json.loads(_read(tmp_path / "report.json"))["summary"]["kl"] is None
    md = _read(tmp_path / "report.md")
    assert md.count("Not drawn:") == len(PLOTS)
    assert "Verdict: not available." in md
    assert "<img" not in _read(tmp_path / "report.html")


def test_formats_choose_the_files(tmp_path):
    assert set(write_report(healthy_report(), tmp_path, formats=("json",))) == {"json"}
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


@pytest.mark.parametrize("formats", [("pdf",), ("json", "svg"), (), "", 3])
def test_unknown_formats_are_rejected(tmp_path, formats):
    with pytest.raises(InvalidParameterError, match=re.escape(
            "The 'formats' parameter of write_report must be a subset of "
            "['json', 'md', 'html']. Got")) as info:
        write_report(minimal_report(), tmp_path, formats=formats)
    assert isinstance(info.value, ValueError)
    assert not list(tmp_path.iterdir())


def test_render_needs_a_report_json(tmp_path):
    from collapse_diag.exceptions import DataError

    with pytest.raises(DataError, match="does not exist"):
        render_directory(tmp_path)
    with pytest.raises(InvalidParameterError, match="of render_directory"):
        render_directory(tmp_path, formats=("png",))


def _text(report):
    return " ".join(explain(report))


def test_explanation_differs_between_collapsed_and_healthy():
    healthy, collapsed = _text(healthy_report()), _text(collapsed_report())
    assert healthy != collapsed
    assert "The decoder reads z." in healthy and "does not measurably read z" not in healthy
    assert "does not measurably read z" in collapsed and "The decoder reads z." not in collapsed
    assert "8 are used" in healthy and "8 are collapsed" in collapsed
    assert "too weak" in collapsed and "too weak" not in healthy
    assert "non-identifiable" in collapsed and "z is identifiable" in healthy
    assert "below zero" in collapsed  # negative MI estimate is flagged, not hidden
    assert "recovers topic from a sampled z at 0.91 vs a 0.25 baseline" in healthy
    assert "z does not encode it" in collapsed


def test_explanation_tells_weak_from_noisy_and_names_dimensions():
    text = _text(partial_report())
    assert "too weak" in text and "too noisy" in text
    # signal from Var mu(x) vs E sigma²(x): z5 has SNR 0.02/1.9; z4, z6, z7 Var mu < 0.01
    assert "too noisy in z5 (" in text
    assert "too weak in z4, z6 and z7 (" in text
    assert "clear in z0, z1, z2 and z3 (" in text
    assert "The decoder ignores z3" in text
    assert "For z2 (-0.02 to 0.05 nats, threshold 0.01; about 410 inputs would likely decide it)" \
        in text
    assert "non-identifiable" not in text  # two dimensions are used
    assert "lower bound" in text  # saturated MI



def test_per_token_figures_only_when_the_model_has_num_tokens():
    def decoder_paragraph(report):
        return next(p for p in explain(report) if p.startswith("The decoder"))

    assert "nats per token" in decoder_paragraph(healthy_report())
    assert "per token" not in decoder_paragraph(partial_report())


def test_explanation_follows_the_figures():
    report = healthy_report()
    report.summary.update(swap_significant=False, swap_p_value=0.4, swap_delta=0.01)
    assert "does not measurably read z" in _text(report)


def test_explanation_names_missing_figures():
    text = _text(failed_report())
    assert "Whether the decoder reads z cannot be told" in text
    assert "identifiability and sensitivity" in text
    assert all(isinstance(p, str) and p for p in explain(minimal_report()))


def test_render_reads_schema_1_reports_and_maps_active_to_used(tmp_path):
    payload = healthy_report().to_dict()
    payload["schema_version"] = 1
    for row in payload["dimensions"]:
        row["status"] = "active"
        for key in ("decoder_use", "swap_ci", "swap_threshold", "swap_examples",
                    "swap_inputs_needed"):
            row.pop(key)
    counts = payload["summary"]["status_counts"]
    payload["summary"]["status_counts"] = {"active": counts.pop("used"), **counts}
    (tmp_path / "report.json").write_text(json.dumps(payload))
    report = Report.from_json(tmp_path / "report.json")
    assert [d["status"] for d in report.dimensions] == ["used"] * 8
    assert report.summary["status_counts"]["used"] == 8 and "active" not in \
        report.summary["status_counts"]
    assert report.schema_version == 2 and report.provenance["upgraded_from_schema"] == 1
    written = render_directory(tmp_path, formats=("md",))
    md = written["md"].read_text()
    assert "| z0 | used |" in md and "8 are used" in md


def test_unknown_schema_version_is_refused():
    from collapse_diag.exceptions import DataError

    payload = healthy_report().to_dict()
    payload["schema_version"] = 3
    with pytest.raises(DataError, match=r"reads versions \[1, 2\]"):
        Report.from_dict(payload)


def test_explanation_without_the_per_dimension_swap_says_so():
    report = partial_report()
    report.summary["per_dim_swap_rounds"] = 0
    assert "The per-dimension swap was not run" in _text(report)
