"""End-to-end known answers through ``analyze`` on the closed-form ToyVAE (see toy_models.py)."""

import json
import math

import pytest
import torch
from toy_models import ToyVAE, closed_form

import collapse_diag
from collapse_diag import DataError, InvalidParameterError, analyze
from collapse_diag.report.schema import VERDICTS

WEIGHTS, NOISE, N = (2.0, 1.0, 0.0), 0.5, 2000


@pytest.fixture(scope="module")
def toy_report():
    model = ToyVAE(WEIGHTS, NOISE)
    return analyze(model, model.sample(N, seed=1), seed=0, batch_size=256)


def test_encoder_side_known_answers(toy_report):
    expected = closed_form(WEIGHTS, NOISE)
    dims = toy_report.dimensions
    for d, exp in enumerate(expected):
        # sampling error of a mean over N=2000 inputs: about 0.015 nats / 0.03; 4 SE allowed
        assert dims[d]["kl"] == pytest.approx(exp["kl"], abs=0.06)
        assert dims[d]["mu_variance"] == pytest.approx(exp["mu_variance"], abs=0.06)
        assert dims[d]["posterior_variance"] == pytest.approx(exp["posterior_variance"], rel=1e-5)
        assert dims[d]["mutual_information"] == pytest.approx(exp["kl"], abs=0.1)
    # the switched-off dimension: exactly the prior
    assert dims[2]["kl"] == pytest.approx(0.0, abs=1e-6)
    assert dims[2]["kl_collapse_rate"] == 1.0 and not dims[2]["active"]
    s = toy_report.summary
    assert s["collapsed_units"] == 1 and s["active_units"] == 2
    total = sum(e["kl"] for e in expected)
    assert s["kl"] == pytest.approx(total, abs=0.1)
    assert s["mutual_information"] == pytest.approx(total, abs=0.15)
    assert s["marginal_kl"] == pytest.approx(0.0, abs=0.15)  # q(z) = p(z) for an exact posterior
    assert s["mutual_information"] + s["marginal_kl"] == pytest.approx(s["kl"], abs=1e-12)
    assert s["mi_ceiling"] == pytest.approx(math.log(N))
    assert not s["mi_saturated"]


def test_decoder_side_and_verdict(toy_report):
    s, dims = toy_report.summary, toy_report.dimensions
    assert [d["status"] for d in dims] == ["used", "used", "collapsed"]
    assert s["verdict"] == "partial"
    assert s["swap_p_value"] < 1e-6 and s["swap_delta"] > 0
    assert dims[2]["swap_delta"] == 0.0 and dims[2]["fisher"] == pytest.approx(0.0, abs=1e-12)
    assert s["identifiable_dims"] == 2
    assert toy_report.errors == {}


def test_report_shape(toy_report):
    payload = json.loads(toy_report.to_json())
    assert payload["schema_version"] == 2
    assert payload["collapse_diag_version"] == collapse_diag.__version__
    assert payload["n_examples"] == N and payload["latent_dim"] == 3
    assert [d["index"] for d in payload["dimensions"]] == [0, 1, 2]
    for key in ("seed", "kl_eps", "active_threshold", "mi_max_components", "prior_samples"):
        assert key in payload["settings"]
    assert len(payload["distributions"]["swap_delta"]) == N
    assert payload["provenance"]["data_sha256"]
    assert collapse_diag.Report.from_dict(payload).to_dict() == payload


def _stable(report):
    payload = report.to_dict()
    payload.pop("timings")
    payload["provenance"].pop("created")
    return json.dumps(payload, sort_keys=True)


def test_same_seed_same_numbers_and_batch_size_does_not_matter():
    model = ToyVAE(WEIGHTS, NOISE)
    x = model.sample(300, seed=2)
    kwargs = {"seed": 5, "per_dim_swap_examples": 50, "swap_bootstrap": 200}
    a = analyze(model, x, batch_size=32, **kwargs)
    b = analyze(model, x, batch_size=32, **kwargs)
    assert _stable(a) == _stable(b)
    c = analyze(model, x, batch_size=7, **kwargs)
    for key in ("kl", "mutual_information", "swap_delta", "likelihood_flatness"):
        assert c.summary[key] == pytest.approx(a.summary[key], rel=1e-9, abs=1e-12)
    d = analyze(model, x, batch_size=32, **{**kwargs, "seed": 6})
    assert d.summary["swap_delta"] != a.summary["swap_delta"]


def test_dict_inputs_max_examples_and_training_mode_restored():
    class DictToy(ToyVAE):
        def encode(self, x):
            return super().encode(x["x"])

        def log_likelihood(self, x, z):
            return super().log_likelihood(x["x"], z)

    model = DictToy(WEIGHTS, NOISE)
    model.train()
    x = {"x": model.sample(500), "id": torch.arange(500)}
    report = analyze(model, x, max_examples=100, diagnostics=["kl", "activity"])
    assert report.n_examples == 100 and report.provenance["n_examples_total"] == 500
    assert model.training
    assert "kl" in report.summary and "sensitivity" not in report.timings
    assert report.summary["verdict"] in VERDICTS  # always computed


def test_failed_diagnostic_is_recorded_and_others_run():
    class NaNOnLargeBatches(ToyVAE):
        def log_likelihood(self, x, z):
            ll = super().log_likelihood(x, z)
            return ll if len(z) <= 4 else ll * float("nan")

    model = NaNOnLargeBatches(WEIGHTS, NOISE)
    report = analyze(model, model.sample(64), diagnostics=["kl", "activity", "sensitivity"])
    assert "sensitivity" in report.errors and "NaN" in report.errors["sensitivity"]
    assert report.summary["kl"] > 0


def test_a_section_that_raises_is_a_failed_diagnostic_and_others_run(monkeypatch):
    """section() runs inside the failure isolation: its error is recorded, not raised."""
    from collapse_diag.diagnostics.activity import ActivityResult

    def broken(self):
        raise TypeError("section() broke")

    monkeypatch.setattr(ActivityResult, "section", broken)
    model = ToyVAE(WEIGHTS, NOISE)
    report = analyze(model, model.sample(64), diagnostics=["kl", "activity"])
    assert report.errors["activity"] == "TypeError: section() broke"
    assert report.summary["kl"] > 0 and "active_units" not in report.summary


def test_a_report_section_needs_no_part():
    from collapse_diag.report.report import ReportSection

    assert ReportSection() == ({}, {}, {})
    assert ReportSection(dimensions={"kl": [0.1]}).summary == {}


def test_repeated_inputs_count_once_toward_the_minimums():
    """All inputs identical, or two distinct inputs repeated: refused, not a verdict (issue 27)."""
    from collapse_diag.diagnostics.minimums import MIN_INPUTS
    from collapse_diag.io.data import count_distinct

    model = ToyVAE(WEIGHTS, NOISE)
    x = model.sample(200)
    same = x[:1].repeat(200, 1)
    two = x[:2].repeat(100, 1)
    assert count_distinct(same) == 1 and count_distinct(two) == 2 and count_distinct(x) == 200
    assert count_distinct({"a": two, "b": torch.arange(200)}) == 200  # rows differ in b
    for data in (same, two):
        with pytest.raises(DataError, match=r"200 inputs, but only [12] distinct: the verdict "
                                            f"needs at least {MIN_INPUTS['verdict']} distinct"):
            analyze(model, data, diagnostics=["kl", "activity"])
    half = torch.cat([x[:100], x[:100]])
    report = analyze(model, half, diagnostics=["kl", "activity"])
    assert report.provenance["distinct_inputs"] == 100 and report.n_examples == 200


def test_bad_settings_use_one_template():
    model = ToyVAE()
    x = model.sample(10)
    with pytest.raises(InvalidParameterError,
                       match="The 'batch_size' parameter of analyze must be an int >= 1. "
                             "Got 0 instead."):
        analyze(model, x, batch_size=0)
    with pytest.raises(InvalidParameterError, match="unknown setting"):
        analyze(model, x, batchsize=3)
    with pytest.raises(InvalidParameterError, match="'diagnostics' parameter"):
        analyze(model, x, diagnostics=["nope"])
    with pytest.raises(InvalidParameterError, match="'device' parameter"):
        analyze(model, x, device="not-a-device")
    with pytest.raises(ValueError):  # users' existing except clauses still work
        analyze(model, x, kl_eps=-1)


def test_empty_data_and_bad_labels():
    model = ToyVAE()
    with pytest.raises(DataError, match="no examples"):
        analyze(model, torch.zeros(0, 3))
    with pytest.raises(DataError, match="labels"):
        analyze(model, model.sample(10), labels={"k": [0, 1]})


def test_numpy_blas_runs_on_one_thread_during_the_analysis_and_is_restored(monkeypatch):
    # OpenBLAS's idle workers spin after each call and take a core from the model; analyze
    # limits numpy/scipy BLAS to one thread while it runs (torch's threads are untouched).
    from threadpoolctl import threadpool_info

    import collapse_diag.analysis as analysis_mod

    def blas_threads():
        return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]

    before, seen = blas_threads(), {}
    torch_threads = torch.get_num_threads()
    encode_all = analysis_mod.encode_all

    def spy(*args, **kwargs):
        seen["blas"], seen["torch"] = blas_threads(), torch.get_num_threads()
        return encode_all(*args, **kwargs)

    monkeypatch.setattr(analysis_mod, "encode_all", spy)
    model = ToyVAE(WEIGHTS, NOISE)
    analyze(model, model.sample(200, seed=0), diagnostics=("kl",))
    assert seen["blas"] and all(t == 1 for t in seen["blas"])
    assert seen["torch"] == torch_threads
    assert blas_threads() == before
