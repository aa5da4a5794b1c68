"""`compare` in library use: columns, best values, data groups, identifiability across seeds.

The compared reports are real ``analyze`` runs (tests/real_reports.py)."""

from __future__ import annotations

import copy
import json
from html.parser import HTMLParser

import numpy as np
import pytest
from models_for_tests import LinearVAE, exact_linear_gaussian, sample_linear_data, toy_data
from scipy.stats import norm

from collapse_diag import InvalidParameterError, analyze, compare, write_comparison
from collapse_diag.report.encodings_file import load_encodings, save_encodings
from collapse_diag.runs.comparison import ComparedModel, model_statuses

FAST = {"swap_bootstrap": 20, "nll_samples": 4, "nll_examples": 50, "prior_samples": 4,
        "per_dim_swap_examples": 16}


def test_rows_best_values_and_data_groups(analysed):
    h, col, p = analysed["healthy"], analysed["collapsed"], analysed["partial"]
    c = compare([h, col, p], names=["h", "c", "p"])
    assert [r["name"] for r in c.rows] == ["h", "c", "p"]
    # healthy and collapsed were analysed on the same inputs, partial on others
    assert [r["data_group"] for r in c.rows] == ["A", "A", "B"] and not c.same_data
    assert c.data_groups["B"] == {"data_sha256": p.provenance["data_sha256"], "models": ["p"]}
    # The collapsed decoder ignores z, so every importance weight is p(x|z) = p(x) =
    # N(x; 0, 0.25 I): its NLL bound is exact (float64, 1e-9 nats).
    x = toy_data(3, 200, seed=1).numpy()
    exact = -norm(0.0, 0.5).logpdf(x).sum(axis=1).mean()
    assert c.rows[1]["nll"] == pytest.approx(exact, abs=1e-9)
    # healthy's p(x) = N(0, 1.25 I) fits x (variance 1.09) far better: lower NLL and -ELBO,
    # more AU and used dimensions, fewer collapsed ones
    assert c.rows[0]["nll"] < exact - 1.0
    assert c.best["nll"] == ["h"] and c.best["neg_elbo"] == ["h"] and c.best["ppl"] == ["h"]
    assert c.best["active_units"] == ["h"] and c.best["used"] == ["h"]
    assert c.best["collapsed"] == ["h"]
    assert "kl" not in c.best and "verdict" not in c.best  # never ranked
    assert all("p" not in names for names in c.best.values())  # alone in its group
    assert any("2 different sets of inputs" in note for note in c.notes)
    row = c.rows[0]
    assert row["used"] == 3 and row["collapsed"] == 0 and row["nll"] == h.summary["nll"]
    assert row["rate"] == h.summary["rate"] and row["nll_se"] == h.summary["nll_se"]
    assert c.rows[2]["status_counts"] == {"used": 2, "undetermined": 1, "ignored": 1,
                                          "uninformative": 1, "collapsed": 1}


def test_statuses_are_opaque_strings_and_active_reads_as_used(reports):
    """A Report built in library use may still name the used status ``active`` (schema 1)."""
    report = reports["partial"]
    report.dimensions[2]["status"] = "active"
    assert model_statuses(report) == ["used", "undetermined", "used", "collapsed",
                                      "uninformative", "used"]
    c = compare([report, reports["healthy"]])
    assert c.rows[0]["status_counts"]["undetermined"] == 1 and c.rows[0]["used"] == 3


def test_comparison_json_has_the_documented_shape(analysed):
    c = compare([analysed["healthy"], analysed["collapsed"]], names=["a", "b"])
    payload = json.loads(json.dumps(c.to_dict(), allow_nan=False))
    assert list(payload) == ["models", "columns", "rows", "best", "same_data", "data_groups",
                             "identifiability", "notes", "paired"]
    assert payload["models"][0] == {"name": "a", "source": "library",
                                    "checkpoint": analysed["healthy"].checkpoint,
                                    "has_encodings": False, "path": None}
    assert [c["key"] for c in payload["columns"]] == [
        "neg_elbo", "nll", "ppl", "kl", "mutual_information", "mi_minibatch", "active_units",
        "verdict", "used", "collapsed", "swap_delta", "output_diversity"]
    assert payload["identifiability"] == []  # no encodings
    assert any("no saved encodings" in n for n in payload["notes"])


def test_needs_two_distinct_models(analysed):
    with pytest.raises(InvalidParameterError, match="at least two"):
        compare([analysed["healthy"]])
    with pytest.raises(InvalidParameterError, match="names"):
        compare([analysed["healthy"], analysed["collapsed"]], names=["x", "x"])


def _permuted_copy(model: LinearVAE, perm, sign) -> LinearVAE:
    """The same generative model with z re-indexed z'_j = sign_j z_perm[j]: a reseeded twin."""
    w, a, lv = model.W.numpy(), model.A.numpy(), model.lv.numpy()
    return LinearVAE(w[:, perm] * sign, model.sigma, a[perm] * sign[:, None], lv[perm])


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    """A linear VAE with dimension 2 switched off, and a permuted, sign-flipped twin."""
    root = tmp_path_factory.mktemp("seeds")
    model = exact_linear_gaussian([1.5, 1.0, 0.0, 0.7], sigma=0.6, obs_dim=6)
    data = sample_linear_data(model, 300, seed=5)
    perm, sign = np.array([3, 0, 2, 1]), np.array([-1.0, 1.0, 1.0, -1.0])
    mixer = np.random.default_rng(9).standard_normal((4, 4))
    mixed = LinearVAE(model.W.numpy(), model.sigma, mixer @ model.A.numpy(), model.lv.numpy())
    folders = {}
    for name, m in (("a", model), ("b", _permuted_copy(model, perm, sign)), ("mixed", mixed)):
        folders[name] = root / name
        report = analyze(m, data, save_encodings=root / name / "encodings.npz", **FAST)
        report.write_json(root / name / "report.json")
    return folders, perm


def test_permuted_twin_has_mcc_one_on_used_dimensions(seeds):
    folders, perm = seeds
    c = compare([str(folders["a"]), str(folders["b"])])
    (entry,) = c.identifiability
    assert (entry["a"], entry["b"]) == ("a", "b")  # the short names (full paths: c.paths)
    assert entry["dims_a"] == [0, 1, 3] and entry["dims_b"] == [0, 1, 3]  # z2 = z2 collapsed
    assert entry["mcc"] == pytest.approx(1.0, abs=1e-6)
    assert entry["mcc_spearman"] == pytest.approx(1.0, abs=1e-6)
    assert entry["cca"] == pytest.approx(1.0, abs=1e-6)
    # Dimension j of b is dimension perm[j] of a.
    assert sorted(entry["matched"]) == sorted([int(perm[j]), j] for j in (0, 1, 3))


def test_mixed_encoder_has_mcc_well_below_one(seeds):
    folders, _ = seeds
    c = compare([str(folders["a"]), str(folders["mixed"])], names=["a", "mixed"])
    (entry,) = c.identifiability
    assert entry["mcc"] < 0.9


def test_encodings_round_trip_and_mismatch_is_refused(seeds, tmp_path):
    folders, _ = seeds
    enc, sha = load_encodings(folders["a"] / "encodings.npz")
    report = json.loads((folders["a"] / "report.json").read_text())
    assert sha == report["provenance"]["data_sha256"] and enc.mu.shape == (300, 4)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "report.json").write_text((folders["a"] / "report.json").read_text())
    save_encodings(bad / "encodings.npz", enc, "0" * 64)
    with pytest.raises(Exception, match="does not belong"):
        compare([str(bad), str(folders["b"])])


def test_writes_five_files_and_a_self_contained_html(seeds, tmp_path, analysed):
    folders, _ = seeds
    c = compare([ComparedModel("x", analysed["healthy"]), str(folders["a"]),
                 str(folders["b"])])
    written = write_comparison(c, tmp_path)
    assert set(written) == {"json", "md", "html", "csv", "tex"}
    assert all((tmp_path / f"comparison.{f}").is_file() for f in written)
    html = (tmp_path / "comparison.html").read_text()
    parser = _Resources()
    parser.feed(html)
    assert len(parser.images) == 4
    assert all(src.startswith("data:image/png;base64,") for src in parser.images)
    assert not parser.external and "http://" not in html and "https://" not in html
    assert parser.tables >= 2  # the standard table and the identifiability table
    tex = (tmp_path / "comparison.tex").read_text()
    assert r"\begin{tabular}" in tex and r"\textbf{" in tex
    assert (tmp_path / "comparison.csv").read_text().splitlines()[0].startswith("name,")


class _Resources(HTMLParser):
    """Collects <img src>, any other src/href that leaves the file, and counts tables."""

    def __init__(self):
        super().__init__()
        self.images, self.external, self.tables = [], [], 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        if tag == "table":
            self.tables += 1
        for key in ("src", "href"):
            value = attrs.get(key) or ""
            if value and not value.startswith(("data:", "#")):
                self.external.append(value)


def test_the_doc_lists_the_declared_comparison_keys():
    """docs/report-schema.md's comparison.json block names exactly COMPARISON_KEY and MODEL_KEY."""
    import re
    from pathlib import Path

    from collapse_diag.runs.comparison import COMPARISON_KEY, MODEL_KEY

    doc = (Path(__file__).resolve().parents[1] / "docs" / "report-schema.md").read_text()
    block = doc.split("## comparison.json", 1)[1].split("```\n{", 1)[1].split("\n}\n```", 1)[0]
    assert set(re.findall(r'^  "([a-z_]+)":', block, re.M)) == set(dir(COMPARISON_KEY))
    models = block.split('"models": [{', 1)[1].split("}, ...]", 1)[0]
    assert set(re.findall(r'"([a-z_]+)":', models)) == set(dir(MODEL_KEY))


def test_checkpoints_with_sequential_latents_are_compared_without_encodings():
    """compare analyses sequential checkpoints (it used to stop: no [N, T, D] encodings file)."""
    from collapse_diag.examples import CHECKPOINT_DIR

    half = str(CHECKPOINT_DIR / "sequence_first_half.pt")
    c = compare([half, half], names=["a", "b"], max_examples=40, nll_examples=8, nll_samples=4,
                per_dim_swap_examples=16, swap_bootstrap=20, mi_bootstrap=0)
    assert [m.encodings for m in c.models] == [None, None]
    assert [m.report.provenance["latent_steps"] for m in c.models] == [16, 16]
    assert c.identifiability == ()
    assert any("No identifiability for a vs b" in note and "encodings" in note
               for note in c.notes)


def test_models_given_as_paths_get_short_unique_names_and_keep_their_paths(analysed, tmp_path):
    from collapse_diag.render import write_report
    from collapse_diag.render.comparison import write_comparison

    deep = tmp_path / "home" / "user" / "experiments" / "vae"
    paths = [deep / "seed1" / "run", deep / "seed2" / "run"]
    for path, name in zip(paths, ("healthy", "collapsed")):
        write_report(analysed[name], path, formats=("json",))
    c = compare([str(p) for p in paths])
    assert c.names == ["seed1/run", "seed2/run"]
    assert [m["path"] for m in c.to_dict()["models"]] == [str(p) for p in paths]
    md = write_comparison(c, tmp_path / "cmp", formats=("md",))["md"].read_text()
    assert "home/user/experiments/vae/seed1/run" in md  # the full path, in the inputs section
    table = md.split("## Standard figures", 1)[1].split("\n## ", 1)[0]
    assert str(deep) not in table  # the wide table shows the short names only


def test_rate_distortion_labels_never_overlap_the_legend(analysed):
    """Twelve models with long names, close together: no label runs into the legend."""
    from matplotlib.transforms import Bbox

    from collapse_diag.render.comparison_plots import plot_rate_distortion

    models = [copy.deepcopy(analysed["healthy"]) for _ in range(12)]
    for i, report in enumerate(models):
        report.summary["rate"] = 3.0 + 0.01 * i
        report.summary["distortion"] = 5.0 - 0.01 * i
    names = [f"/very/long/experiment/folder/name/number_{i}_with_a_long_tail" for i in range(12)]
    fig = plot_rate_distortion(compare(models, names=names))
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)  # constrained layout places the legend
    (ax,) = fig.axes
    legend = ax.get_legend().get_window_extent(renderer)
    axes_box = ax.get_window_extent(renderer)
    for text in ax.texts:
        box = text.get_window_extent(renderer)
        assert not Bbox.intersection(box, legend), text.get_text()
        assert axes_box.contains(box.x0, box.y0) and axes_box.contains(box.x1, box.y1)
