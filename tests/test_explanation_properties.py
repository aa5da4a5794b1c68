"""The explanation cannot contradict its figures: a property test over synthetic linear
Gaussian VAEs (random spectra, noise levels, ignored decoder columns and N), run through
``analyze`` and ``explain`` end to end."""

from __future__ import annotations

import re

import torch
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from models_for_tests import exact_linear_gaussian, sample_linear_data

from collapse_diag import analyze
from collapse_diag.render.explain import explain

FAST = {"swap_bootstrap": 20, "fisher_bootstrap": 20, "prior_samples": 4, "mi_samples": 2}

#: A latent dimension's decoder scale: 0 (posterior = prior), weak, or strong.
_scale = st.one_of(st.just(0.0), st.floats(0.05, 0.4), st.floats(0.5, 2.0))


@st.composite
def linear_vaes(draw):
    dim = draw(st.integers(1, 4))
    scales = draw(st.lists(_scale, min_size=dim, max_size=dim))
    ignored = draw(st.lists(st.booleans(), min_size=dim, max_size=dim))
    sigma = draw(st.floats(0.3, 1.5))
    n = draw(st.integers(30, 200))
    seed = draw(st.integers(0, 1000))
    model = exact_linear_gaussian(scales, sigma=sigma, obs_dim=dim + 1, seed=seed)
    data = sample_linear_data(model, n, seed=seed)  # x from the full model
    with torch.no_grad():  # then the decoder stops reading the ignored columns
        model.W[:, torch.tensor(ignored)] = 0.0
    return model, data, scales, ignored


def _names(paragraph: str, lead: str) -> set[str]:
    match = re.search(lead + r" ((?:z\d+(?:, | and )?)+) \(", paragraph)
    return set(re.findall(r"z\d+", match.group(1))) if match else set()


@hsettings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=linear_vaes())
def test_explanation_statuses_and_intervals_agree(case):
    model, data, scales, ignored = case
    report = analyze(model, data, seed=0, **FAST)
    assert not report.errors, report.errors
    dims, names = report.dimensions, [f"z{d['index']}" for d in report.dimensions]
    status = [d["status"] for d in dims]
    for d, row in enumerate(dims):
        low, high = row["swap_ci"]
        if status[d] == "ignored":  # an ignored dimension has its interval below the threshold
            assert high is not None and high <= row["swap_threshold"]
        if low is not None and low > row["swap_threshold"]:  # non-negligible: never ignored
            assert status[d] != "ignored"
        if ignored[d] and scales[d] > 0 and status[d] not in ("collapsed", "uninformative"):
            assert status[d] == "ignored"  # zero decoder weight: deltas exactly 0
    if "used" in status:
        assert report.summary["verdict"] != "collapsed"

    paragraphs = explain(report)
    signal = paragraphs[1]
    for word, lead in (("clear", "clear in"), ("noisy", "too noisy in"), ("weak", "too weak in")):
        expected = {names[d] for d, row in enumerate(dims) if row["signal"] == word}
        assert _names(signal, lead) == expected, (word, signal)
    decoder = next(p for p in paragraphs if p.startswith(("The decoder", "Whether the decoder")))
    said_ignored = set()
    match = re.search(r"The decoder ignores ((?:z\d+(?:, | and )?)+):", decoder)
    if match:
        said_ignored = set(re.findall(r"z\d+", match.group(1)))
    assert said_ignored == {names[d] for d, s in enumerate(status) if s == "ignored"}
    text = " ".join(paragraphs)
    if "used" in status:
        assert "non-identifiable" not in text
    counts = report.summary["status_counts"]
    assert sum(counts.values()) == len(dims)
    assert all(counts[s] == status.count(s) for s in counts)
    signals = [row["signal"] for row in dims]
    assert report.summary["signal_counts"] == {k: signals.count(k) for k in ("clear", "noisy",
                                                                             "weak")}
