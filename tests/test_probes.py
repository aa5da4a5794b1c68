"""Known-answer tests of the linear factor probes."""

import numpy as np
import pytest

from collapse_diag.diagnostics.probes import ProbesResult, probe_factors
from collapse_diag.exceptions import DataError, InvalidParameterError

N, D = 600, 5


def _noise(seed=0):
    return np.random.default_rng(seed).standard_normal((N, D))


def test_factor_in_one_dimension_is_found():
    # Dimension 3 holds the factor (4 values, well separated); the others are noise.
    rng = np.random.default_rng(1)
    y = rng.integers(0, 4, N)
    mu = _noise()
    mu[:, 3] = 3.0 * y + 0.1 * rng.standard_normal(N)
    result = probe_factors(mu, {"f": y}, seed=0)
    probe = result.factors["f"]
    assert probe.accuracy > 0.97
    assert probe.dimensions == [3]
    assert probe.baseline == pytest.approx(np.bincount(y).max() / N)
    assert probe.folds == 5


def test_independent_labels_score_the_baseline():
    # Labels independent of mu: accuracy within 0.06 of the baseline (about 3 standard
    # errors of an accuracy near 0.5 on 600 inputs), and no dimension carries the factor.
    y = np.random.default_rng(2).integers(0, 2, N)
    result = probe_factors(_noise(), {"f": y}, seed=0)
    probe = result.factors["f"]
    assert abs(probe.accuracy - probe.baseline) < 0.06
    assert probe.dimensions == []


def test_posterior_noise_hides_a_faint_mean_signal():
    # The means separate the factor perfectly but move by 0.02 prior units against a
    # posterior sd of 1: a collapsed code. From mu: ~1; from z ~ q(z|x): ~baseline.
    y = np.random.default_rng(3).integers(0, 2, N)
    mu = np.zeros((N, D))
    mu[:, 0] = 0.02 * y
    logvar = np.zeros((N, D))
    probe = probe_factors(mu, {"f": y}, seed=0, logvar=logvar).factors["f"]
    assert probe.accuracy_mu > 0.99
    assert abs(probe.accuracy - probe.baseline) < 0.06


def test_rare_values_reduce_folds_and_degenerate_factors_are_skipped():
    mu = _noise()
    rare = np.zeros(N, dtype=int)
    rare[:3] = 1  # 3 members: 3 folds
    single = np.zeros(N, dtype=int)
    once = np.zeros(N, dtype=int)
    once[0] = 1
    result = probe_factors(mu, {"rare": rare, "single": single, "once": once}, seed=0)
    assert result.factors["rare"].folds == 3
    assert set(result.skipped) == {"single", "once"}
    section = result.section()
    assert set(section.summary["probes"]) == {"rare"}
    assert set(section.summary["probes_skipped"]) == {"single", "once"}


def test_section_shape_and_determinism():
    y = np.random.default_rng(4).integers(0, 3, N)
    mu = _noise()
    mu[:, 1] += y
    a = probe_factors(mu, {"f": y}, seed=7, logvar=np.zeros_like(mu))
    b = probe_factors(mu, {"f": y}, seed=7, logvar=np.zeros_like(mu))
    assert isinstance(a, ProbesResult) and a == b
    entry = a.section().summary["probes"]["f"]
    assert set(entry) >= {"accuracy", "baseline", "dimensions"}
    assert isinstance(entry["dimensions"], list) and 1 in entry["dimensions"]
    assert a.section().dimensions == {}


@pytest.mark.parametrize(
    "mu, labels, kwargs, error",
    [
        (np.zeros(N), {"f": np.zeros(N, int)}, {}, DataError),
        (np.full((N, D), np.nan), {"f": np.zeros(N, int)}, {}, DataError),
        (np.zeros((N, D)), {"f": np.zeros(N - 1, int)}, {}, DataError),
        (np.zeros((N, D)), {"f": np.zeros(N)}, {}, DataError),
        (np.zeros((N, D)), {"f": np.zeros(N, int)}, {"logvar": np.zeros((N, 1))}, DataError),
        (np.zeros((N, D)), {"f": np.zeros(N, int)}, {"folds": 1}, InvalidParameterError),
    ],
)
def test_bad_inputs(mu, labels, kwargs, error):
    with pytest.raises(error):
        probe_factors(mu, labels, seed=0, **kwargs)


def test_a_skipped_factor_is_shown_with_its_reason_in_the_table_and_the_explanation():
    """A real analyze run: one probed factor and one constant factor (skipped, not dropped)."""
    from toy_models import ToyVAE

    from collapse_diag import analyze
    from collapse_diag.render.explain import probes_text
    from collapse_diag.render.tables import probes_table

    toy = ToyVAE()
    x = toy.sample(60, seed=1)
    labels = {"sign": (x[:, 0] > 0).long().numpy(), "constant": np.zeros(60, dtype=np.int64)}
    report = analyze(toy, x, labels=labels, seed=0, diagnostics=["kl", "activity", "probes"])
    assert set(report.summary["probes"]) == {"sign"}
    assert "single value" in report.summary["probes_skipped"]["constant"]
    rows = {row[0]: row for row in probes_table(report).rows}
    assert set(rows) == {"sign", "constant"}
    assert rows["constant"][-1].startswith("not probed: a single value")
    assert "constant was not probed: a single value" in probes_text(report)
