"""Writers: report.json / report.md (+ plots/) / report.html from real ``analyze`` runs
(tests/real_reports.py), self-contained HTML, notes for missing plots, re-rendering from
report.json, and an explanation that follows the figures."""

import json
import re
import shutil

import pytest
from real_reports import FAILURE

from collapse_diag.exceptions import InvalidParameterError
from collapse_diag.render import explain, render_directory, write_report
from collapse_diag.render.markdown import escape_markdown
from collapse_diag.render.plots import PLOTS, SECTION_PLOTS
from collapse_diag.render.tables import fmt_num
from collapse_diag.report.report import Report

DPI = 30
DATA_URI = re.compile(r"data:image/png;base64,[A-Za-z0-9+/=]+")
EXTERNAL = re.compile(
    r"""\b(?:src|href)\s*=\s*(?!["']?(?:data:|#))|url\(\s*(?!["']?data:)|@import|<link\b"""
    r"""|<script\b[^>]*\bsrc|<iframe|<object|<embed""", re.IGNORECASE)
#: What the failed run can still draw: sensitivity and identifiability failed, information and
#: likelihood were not run.
FAILED_DRAWN = {"kl", "activity", "overview"}


@pytest.fixture(scope="module")
def healthy_dir(tmp_path_factory, analysed):
    out = tmp_path_factory.mktemp("healthy")
    written = write_report(analysed["healthy"], out, dpi=DPI)
    return out, written


@pytest.fixture(scope="module")
def failed_dir(tmp_path_factory, healthy_dir, analysed):
    """The failed report written over a copy of the healthy one (stale plots must go)."""
    out = tmp_path_factory.mktemp("failed") / "report"
    shutil.copytree(healthy_dir[0], out)
    write_report(analysed["failed"], out, dpi=DPI)
    return out


def _read(path):
    return path.read_text(encoding="utf-8")


def test_each_writer_produces_its_file(healthy_dir, analysed):
    out, written = healthy_dir
    assert set(written) == {"json", "md", "html", "plots"}
    assert written["json"] == out / "report.json"
    assert Report.from_json(out / "report.json").to_dict() == analysed["healthy"].to_dict()
    # every plot but the decoded outputs' (its model has no generate(z): test_decoded_outputs.py)
    assert sorted(p.name for p in (out / "plots").iterdir()) == sorted(
        f"{n}.png" for n in PLOTS if n not in SECTION_PLOTS)
    assert not [p for p in out.rglob(".*")]  # no temporary files left behind


def test_markdown_holds_every_section_and_links_existing_plots(healthy_dir, analysed):
    out, _ = healthy_dir
    md, report = _read(out / "report.md"), analysed["healthy"]
    assert md.startswith("# Posterior collapse report: healthy.pt\n")
    assert f"**Verdict: healthy.** {escape_markdown(report.summary['verdict_reason'])}" in md
    for title in ("What this means", "Key figures", "Plots", "Per-dimension figures",
                  "Known factors", "Settings", "Provenance"):
        assert f"\n## {title}\n" in md
    for paragraph in explain(report):
        assert escape_markdown(paragraph) in md
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert links == [f"plots/{name}.png" for name in PLOTS if name not in SECTION_PLOTS]
    assert all((out / link).is_file() for link in links)
    assert "| z2 | used |" in md
    assert "c0ffee" in md and report.provenance["created"] in md  # checkpoint, provenance
    assert "Diagnostics that failed" not in md


def test_html_is_self_contained(healthy_dir):
    out, _ = healthy_dir
    html = _read(out / "report.html")
    assert html.startswith("<!DOCTYPE html>")
    assert not EXTERNAL.search(html)
    assert "http://" not in html and "https://" not in html
    assert "//" not in DATA_URI.sub("", html)
    images = re.findall(r"<img\b[^>]*>", html)
    assert len(images) == len(set(PLOTS) - SECTION_PLOTS)
    assert all('src="data:image/png;base64,' in tag for tag in images)
    assert "@media print" in html and 'class="sortable"' in html


def test_missing_plots_get_a_note_and_stale_plots_go(failed_dir):
    md, html = _read(failed_dir / "report.md"), _read(failed_dir / "report.html")
    assert {p.stem for p in (failed_dir / "plots").iterdir()} == FAILED_DRAWN
    assert len(re.findall(r"<img\b", html)) == len(FAILED_DRAWN)
    for text in (md, html):
        assert text.count("Not drawn:") == len(set(PLOTS) - SECTION_PLOTS) - len(FAILED_DRAWN)
        assert "Diagnostics that failed" in text
        assert "the decoder cannot take batches over 4 rows" in text
    assert FAILURE.endswith("<x|y>")
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


def test_every_writer_copes_with_a_kl_only_report(tmp_path, analysed):
    """diagnostics=["kl"]: no verdict, no activity, nothing decoder-side."""
    written = write_report(analysed["kl_only"], tmp_path, formats="json,md,html", dpi=DPI)
    assert set(written) == {"json", "md", "html", "plots"}
    assert json.loads(_read(tmp_path / "report.json"))["summary"]["kl"] > 0
    md = _read(tmp_path / "report.md")
    # the KL bars and the overview remain; the decoded outputs' plots are never "Not drawn"
    assert md.count("Not drawn:") == len(set(PLOTS) - SECTION_PLOTS) - 2
    assert "Verdict: not available." in md
    assert _read(tmp_path / "report.html").count("<img") == 2


def test_formats_choose_the_files(tmp_path, analysed):
    assert set(write_report(analysed["healthy"], tmp_path, formats=("json",))) == {"json"}
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


@pytest.mark.parametrize("formats", [("pdf",), ("json", "svg"), (), "", 3])
def test_unknown_formats_are_rejected(tmp_path, formats, analysed):
    with pytest.raises(InvalidParameterError, match=re.escape(
            "The 'formats' parameter of write_report must be a subset of "
            "['json', 'md', 'html']. Got")) as info:
        write_report(analysed["kl_only"], tmp_path, formats=formats)
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


def test_a_non_significant_swap_claims_absence_only_within_the_negligible_threshold(analysed):
    # The verdict's rule (whole_swap_negligible): p >= alpha alone is not evidence that the
    # decoder ignores z; the interval's upper end within min(negligible_swap_nats,
    # negligible_swap_fraction * I(x; z)) is.
    base = analysed["collapsed"].to_dict()
    assert not base["summary"]["swap_significant"]
    cap = base["settings"]["negligible_swap_nats"]
    fraction = base["settings"]["negligible_swap_fraction"]
    # (MI, interval's upper end, shown absent): the threshold is min(cap, fraction * MI)
    for mi, high, shown in ((1.0, 0.5 * cap, True), (1.0, 0.8, False),
                            (0.02, 0.5 * fraction * 0.02, True), (0.02, 0.5 * cap, False)):
        d = json.loads(json.dumps(base))
        d["summary"].update(swap_ci=[-0.2, high], mutual_information=mi)
        text = _text(Report.from_dict(d))
        assert ("does not measurably read z" in text) is shown, text
        assert ("models x on its own" in text) is shown
        assert ("is not decided by the swap test" in text) is not shown
        if not shown:
            threshold = min(cap, fraction * mi)
            assert (f"reaches {fmt_num(high)} nats, above the negligible threshold of "
                    f"{fmt_num(threshold)} nats") in text
            # a threshold set by a small MI: more inputs would not decide it, the text says why
            assert ("more inputs would narrow" in text) is (threshold == cap)
            assert ("likelihood-flatness and Fisher" in text) is (threshold < cap)


def test_explanation_differs_between_collapsed_and_healthy(analysed):
    h, c = analysed["healthy"], analysed["collapsed"]
    healthy, collapsed = _text(h), _text(c)
    assert h.summary["swap_significant"] and not c.summary["swap_significant"]
    assert "The decoder reads z." in healthy and "does not measurably read z" not in healthy
    assert "does not measurably read z" in collapsed and "The decoder reads z." not in collapsed
    assert "3 are used" in healthy and "3 are collapsed" in collapsed
    assert "too weak" in collapsed and "too weak" not in healthy
    # the collapsed decoder ignores z (flat likelihood); the healthy one reads every direction
    assert "non-identifiable" in collapsed and "z is identifiable" in healthy
    assert "non-identifiable" not in healthy
    # MI = 0 by construction: its interval reaches 0, and that is said
    assert c.summary["mi_indistinguishable_from_zero"] and "interval reaches 0" in collapsed
    probe = h.summary["probes"]["sign"]
    assert probe["accuracy"] > 0.8 and probe["dimensions"] == [0]  # z0 copies x0
    assert (f"recovers sign from a sampled z at {fmt_num(probe['accuracy'])} vs a "
            f"{fmt_num(probe['baseline'])} baseline, mostly from z0") in healthy
    assert "neither z nor mu(x) encodes it" in collapsed and "encodes it" not in healthy


def test_explanation_tells_weak_from_noisy_and_names_dimensions(analysed):
    report = analysed["partial"]
    text = _text(report)
    assert [d["status"] for d in report.dimensions] == [
        "used", "undetermined", "ignored", "collapsed", "uninformative", "used"]
    # z5: Var mu ~ 0.04 < E sigma^2 = 1; z3, z4: Var mu = 0
    assert "too noisy in z5 (" in text
    assert "too weak in z3 and z4 (" in text
    assert "clear in z0, z1 and z2 (" in text
    assert "The decoder ignores z2" in text
    z1 = report.dimensions[1]
    assert (f"For z1 ({fmt_num(z1['swap_ci'][0])} to {fmt_num(z1['swap_ci'][1])} nats, "
            f"threshold {fmt_num(z1['swap_threshold'])}; about {z1['swap_inputs_needed']} inputs "
            "would likely decide it)") in text
    assert "raise --per-dim-swap-max-examples (now 8)" in text
    assert "non-identifiable" not in text  # two dimensions are used


def test_saturated_mi_is_read_as_a_lower_bound(analysed):
    report = analysed["saturated"]
    assert report.summary["mi_indistinguishable_from_ceiling"]
    assert "is a lower bound" in _text(report)
    assert "is a lower bound" not in _text(analysed["healthy"])


def test_per_token_figures_only_when_the_model_has_num_tokens(analysed):
    def decoder_paragraph(report):
        return next(p for p in explain(report) if p.startswith("The decoder"))

    assert "nats per token" in decoder_paragraph(analysed["healthy"])
    assert "per token" not in decoder_paragraph(analysed["partial"])


def test_explanation_names_missing_figures(analysed):
    text = _text(analysed["failed"])
    assert "Whether the decoder reads z cannot be told" in text
    assert "identifiability and sensitivity" in text
    kl_only = explain(analysed["kl_only"])
    assert "could not be decided" in kl_only[0]
    assert all(isinstance(p, str) and p for p in kl_only)


def test_render_reads_schema_1_reports_and_maps_active_to_used(tmp_path, analysed):
    """A version-1 report.json on disk: statuses named ``active``, no decoder-use fields."""
    payload = analysed["healthy"].to_dict()
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
    assert [d["status"] for d in report.dimensions] == ["used"] * 3
    assert report.summary["status_counts"]["used"] == 3 and "active" not in \
        report.summary["status_counts"]
    assert report.schema_version == 2 and report.provenance["upgraded_from_schema"] == 1
    written = render_directory(tmp_path, formats=("md",))
    md = written["md"].read_text()
    assert "| z0 | used |" in md and "3 are used" in md


def test_unknown_schema_version_is_refused(analysed):
    from collapse_diag.exceptions import DataError

    payload = analysed["healthy"].to_dict()
    payload["schema_version"] = 3
    with pytest.raises(DataError, match=r"reads versions \[1, 2\]"):
        Report.from_dict(payload)


def test_explanation_without_the_per_dimension_swap_says_so(analysed):
    assert analysed["lean"].summary["per_dim_swap_rounds"] == 0
    assert "The per-dimension swap was not run" in _text(analysed["lean"])
    assert "The per-dimension swap was not run" not in _text(analysed["healthy"])


def test_a_wide_table_spans_the_window_and_a_narrow_one_does_not(analysed):
    """A table wider than the text column by html.min_width_px (the per-dimension columns all
    side by side) spans the window; the per-dimension tables, split by group, and the key
    figures fit the text column (checked by eye with scripts/screenshot_pages.py)."""
    from collapse_diag.render.document import Document, Section
    from collapse_diag.render.html import TEXT_WIDTH_PX, min_width_px, render_html
    from collapse_diag.render.tables import dimension_table, dimension_tables, summary_table

    report = analysed["healthy"]
    whole, split = dimension_table(report), dimension_tables(report)
    assert min_width_px(whole) > TEXT_WIDTH_PX
    assert max(map(min_width_px, [summary_table(report), *split])) <= TEXT_WIDTH_PX
    html = render_html(Document("t", "v", "r", None, (Section(
        "s", "s", tables=(whole, summary_table(report), *split)),)), {})
    assert html.count('<div class="scroll wide">') == 1
    assert html.count('<div class="scroll">') == 1 + len(split) == 4
    assert html.count("Click a column title to sort.") == 1  # once a section
