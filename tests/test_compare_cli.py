"""`collapse-diag compare` and `analyze --save-encodings` through click's CliRunner."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from collapse_diag.examples import SHIPPED
from collapse_diag.report.encodings_file import load_encodings
from collapse_diag_cli.main import main

# Small through the settings, so the three demo models are analysed in seconds.
FAST = ["--max-examples", "120", "--nll-samples", "8", "--nll-examples", "40", "-q"]


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.links, self.tables = [], [], 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tables += tag == "table"
        if tag == "img":
            self.images.append(attrs.get("src") or "")
        self.links += [v for k, v in attrs.items() if k in ("src", "href") and v
                       and not v.startswith(("data:", "#"))]


@pytest.fixture(scope="module")
def demo_comparison(tmp_path_factory):
    out = tmp_path_factory.mktemp("compare")
    paths = [str(SHIPPED[name]) for name in ("text_collapsed", "text_healthy", "digits")]
    result = run("compare", *paths, "--out", out, *FAST)
    return out, paths, result


def test_compare_on_the_demo_models_writes_all_five_files(demo_comparison):
    out, paths, result = demo_comparison
    assert result.exit_code == 0, result.output
    for ext in ("json", "md", "html", "csv", "tex"):
        assert (out / f"comparison.{ext}").is_file(), ext
    payload = json.loads((out / "comparison.json").read_text())
    # short unique names (the common path removed); the paths as given beside them
    assert [r["name"] for r in payload["rows"]] == [Path(p).name for p in paths]
    assert [m["path"] for m in payload["models"]] == paths
    # Text models on one corpus, digits on other inputs: flagged as different data.
    assert [r["data_group"] for r in payload["rows"]] == ["A", "A", "B"]
    assert payload["same_data"] is False
    ppl = [r["ppl"] for r in payload["rows"]]
    assert ppl[0] > 1 and ppl[1] > 1 and ppl[2] is None  # PPL for the text models only
    assert len(list((out / "models").glob("*/report.json"))) == 3
    assert "comparison:" in result.output


def test_compare_html_embeds_its_images_and_links_nothing_outside(demo_comparison):
    out, paths, _ = demo_comparison
    html = (out / "comparison.html").read_text()
    page = _Page()
    page.feed(html)
    assert len(page.images) == 4
    assert all(src.startswith("data:image/png;base64,") for src in page.images)
    assert page.links == [] and "http://" not in html and "https://" not in html
    assert page.tables >= 3 and "NLL" in html and "★" in html


def test_identifiability_entry_for_the_two_text_models(demo_comparison):
    out, paths, _ = demo_comparison
    (entry,) = json.loads((out / "comparison.json").read_text())["identifiability"]
    assert (entry["a"], entry["b"]) == (Path(paths[0]).name, Path(paths[1]).name)
    assert set(entry) >= {"a", "b", "mcc", "mcc_spearman", "cca", "matched"}
    # The collapsed model uses no dimension: nothing to match, said so (not a made-up number).
    assert entry["mcc"] is None and entry["matched"] == [] and entry["note"]


def test_analyze_save_encodings_then_compare_folders(toy_checkpoint, user_dir):
    args = ["--per-dim-swap-examples", "20", "--prior-samples", "4", "--format", "json",
            "--nll-samples", "4", "--nll-examples", "50", "--save-encodings", "-q"]
    for seed in (0, 1):
        result = run("analyze", toy_checkpoint, "--out", user_dir / f"s{seed}", "--seed", seed,
                     *args)
        assert result.exit_code == 0, result.output
    enc, sha = load_encodings(user_dir / "s0" / "encodings.npz")
    report = json.loads((user_dir / "s0" / "report.json").read_text())
    assert enc.mu.shape == (400, 3) and sha == report["provenance"]["data_sha256"]
    assert report["summary"]["nll_samples"] == 4 and report["summary"]["nll_examples"] == 50
    result = run("compare", "s0", "s1", "--out", "cmp", "--format", "json")
    assert result.exit_code == 0, result.output
    (entry,) = json.loads((user_dir / "cmp" / "comparison.json").read_text())["identifiability"]
    # Same encoder, different analysis seeds: the same code. ToyVAE's z2 is switched off.
    assert entry["a"] == "s0" and entry["matched"] == [[0, 0], [1, 1]]
    assert entry["mcc"] == pytest.approx(1.0, abs=1e-6)
    assert np.isclose(entry["cca"], 1.0, atol=1e-6)


def test_compare_usage_and_unusable_inputs(user_dir):
    assert run("compare", "only-one").exit_code == 2
    assert run("compare", "a", "a").exit_code == 2
    result = run("compare", "missing-1", "missing-2")
    assert result.exit_code == 3 and "does not exist" in result.output
    result = run("compare", "only-one")
    assert "got 1: 'only-one' (did a pattern match only one?)" in result.output
    result = run("compare", "runs/*/report.json", "missing-2")  # a pattern the shell left as is
    assert result.exit_code == 3 and "'runs/*/report.json' matches no file" in result.output
