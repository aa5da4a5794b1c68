"""Activity diagnostic (Burda et al. 2015 active units): known answers by construction."""

import math

import numpy as np
import pytest

from collapse_diag.diagnostics.activity import (
    NOISY_SNR,
    ActivityResult,
    activity_diagnostic,
    signal_class,
)
from collapse_diag.exceptions import DiagnosticError
from collapse_diag.model.encodings import Encodings


def _encodings():
    """Four dimensions with Var_x[mu] = 1, 0, 0.0025, 0.25 exactly (population variance)."""
    signs = np.tile([-1.0, 1.0], 50)  # mean 0, population variance 1
    mu = np.stack([signs, np.full(100, 3.0), 0.05 * signs, 0.5 * signs], axis=1)
    logvar = np.stack([np.full(100, math.log(0.1)), np.zeros(100),
                       np.where(signs > 0, math.log(2.0), math.log(4.0)), np.zeros(100)], axis=1)
    return Encodings(mu=mu, logvar=logvar)


def test_known_mu_variance_and_posterior_variance():
    result = activity_diagnostic(_encodings(), threshold=0.01)
    assert isinstance(result, ActivityResult)
    np.testing.assert_allclose(result.mu_variance, [1.0, 0.0, 0.0025, 0.25], rtol=1e-14, atol=0)
    np.testing.assert_allclose(result.posterior_variance, [0.1, 1.0, 3.0, 1.0], rtol=1e-14)
    assert result.active.tolist() == [True, False, False, True]
    assert result.active_units == 2
    assert result.threshold == 0.01


def test_population_variance_ddof_0():
    mu = np.random.default_rng(0).normal(size=(7, 3))
    result = activity_diagnostic(Encodings(mu=mu, logvar=np.zeros_like(mu)))
    np.testing.assert_allclose(result.mu_variance, np.var(mu, axis=0, ddof=0), rtol=1e-15)


def test_threshold_is_inclusive_and_moves_the_cut():
    enc = _encodings()
    assert activity_diagnostic(enc, threshold=0.25).active.tolist() == [True, False, False, True]
    assert activity_diagnostic(enc, threshold=0.001).active.tolist() == [True, False, True, True]
    assert activity_diagnostic(enc, threshold=2.0).active_units == 0


def test_constant_mu_is_inactive_whatever_the_posterior_variance():
    mu = np.full((20, 1), -4.2)
    logvar = np.linspace(-5, 5, 20)[:, None]
    result = activity_diagnostic(Encodings(mu=mu, logvar=logvar), threshold=1e-12)
    assert result.mu_variance[0] == 0.0 and result.active.tolist() == [False]


def test_input_order_does_not_change_activity():
    enc = _encodings()
    perm = np.random.default_rng(1).permutation(100)
    a = activity_diagnostic(enc)
    b = activity_diagnostic(Encodings(mu=enc.mu[perm], logvar=enc.logvar[perm]))
    np.testing.assert_allclose(b.mu_variance, a.mu_variance, rtol=1e-13)  # summation order
    np.testing.assert_allclose(b.posterior_variance, a.posterior_variance, rtol=1e-14)
    np.testing.assert_array_equal(b.active, a.active)


def test_signal_weak_noisy_clear_by_construction():
    # Var mu = 1, 0, 0.0025, 0.25 against E sigma^2 = 0.1, 1, 3, 1 (threshold 0.01):
    # clear (SNR 10), weak (mu constant), weak (Var mu below the threshold), noisy (SNR 0.25).
    result = activity_diagnostic(_encodings(), threshold=0.01)
    assert result.signal.tolist() == ["clear", "weak", "weak", "noisy"]
    assert result.signal_counts == {"clear": 1, "noisy": 1, "weak": 2}
    # the weak/noisy border is SNR = NOISY_SNR = 1, inclusive for clear
    border = signal_class(np.array([0.5, 0.5]), np.array([0.5, 0.5 + 1e-9]), 0.01)
    assert border.tolist() == ["clear", "noisy"]
    assert NOISY_SNR == 1.0


def test_section_fields():
    section = activity_diagnostic(_encodings()).section()
    assert section.summary == {"active_units": 2,
                               "signal_counts": {"clear": 1, "noisy": 1, "weak": 2}}
    assert set(section.dimensions) == {"mu_variance", "posterior_variance", "active", "signal",
                                       "mu_variance_by_step", "posterior_variance_by_step"}
    assert section.dimensions["active"] == [True, False, False, True]
    assert section.dimensions["signal"] == ["clear", "weak", "weak", "noisy"]
    assert all(len(v) == 4 for v in section.dimensions.values())


def test_no_inputs_is_a_diagnostic_error():
    with pytest.raises(DiagnosticError, match="at least one input"):
        activity_diagnostic(Encodings(mu=np.zeros((0, 2)), logvar=np.zeros((0, 2))))
