"""KL diagnostic: the functional form against torch.distributions, and known answers."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from collapse_diag.diagnostics.kl import KLResult, gaussian_kl, kl_diagnostic
from collapse_diag.exceptions import DiagnosticError
from collapse_diag.model.encodings import Encodings


def _random(shape, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=shape) * 2, rng.normal(size=shape),
            rng.normal(size=shape) * 2, rng.normal(size=shape))


def test_gaussian_kl_matches_torch_distributions():
    mu_q, lv_q, mu_p, lv_p = _random((200, 7))
    ours = gaussian_kl(mu_q, lv_q, mu_p, lv_p)
    q = torch.distributions.Normal(torch.from_numpy(mu_q), torch.from_numpy(np.exp(0.5 * lv_q)))
    p = torch.distributions.Normal(torch.from_numpy(mu_p), torch.from_numpy(np.exp(0.5 * lv_p)))
    reference = torch.distributions.kl_divergence(q, p).numpy()
    assert ours.dtype == np.float64 and ours.shape == (200, 7)
    np.testing.assert_allclose(ours, reference, rtol=1e-10, atol=1e-14)


def test_gaussian_kl_broadcasts_a_standard_prior():
    mu_q, lv_q, _, _ = _random((5, 3))
    np.testing.assert_array_equal(gaussian_kl(mu_q, lv_q, 0.0, 0.0),
                                  gaussian_kl(mu_q, lv_q, np.zeros((5, 3)), np.zeros((5, 3))))


def test_identical_distributions_give_exactly_zero():
    mu, lv, _, _ = _random((50, 4))
    lv[0, 0] = 1e-17  # |t| tiny: the regime where rounding could otherwise go negative
    assert np.all(gaussian_kl(mu, lv, mu, lv) == 0.0)


finite = dict(allow_nan=False, allow_infinity=False)


@settings(max_examples=200, deadline=None)
@given(
    arrays(np.float64, 8, elements=st.floats(-1e3, 1e3, **finite)),
    arrays(np.float64, 8, elements=st.floats(-30, 30, **finite)),
    arrays(np.float64, 8, elements=st.floats(-1e3, 1e3, **finite)),
    arrays(np.float64, 8, elements=st.floats(-30, 30, **finite)),
    st.booleans(),
)
def test_kl_is_never_negative(mu_q, lv_q, mu_p, lv_p, same):
    if same:  # the boundary case KL = 0, plus near-identical variances
        mu_p, lv_p = mu_q.copy(), np.nextafter(lv_q, 1.0)
    kl = gaussian_kl(mu_q, lv_q, mu_p, lv_p)
    assert np.all(np.isfinite(kl))
    assert np.all(kl >= 0.0)


def test_collapsed_dimension_and_closed_form():
    n = 100
    rng = np.random.default_rng(1)
    mu = np.stack([np.zeros(n), np.ones(n), rng.normal(size=n)], axis=1)
    logvar = np.stack([np.zeros(n), np.full(n, math.log(0.5)), np.full(n, -2.0)], axis=1)
    result = kl_diagnostic(Encodings(mu=mu, logvar=logvar), eps=0.01)
    assert isinstance(result, KLResult)
    # Dimension 0 is the prior itself: KL exactly 0 for every input.
    assert result.per_dimension[0] == 0.0
    assert result.collapse_rate[0] == 1.0
    assert result.collapsed.tolist() == [True, False, False]
    assert result.collapsed_units == 1
    # Dimension 1: KL(N(1, 0.5) || N(0, 1)) = 0.5 * (0.5 + 1 - 1 - ln 0.5).
    expected = 0.5 * (0.5 + 1.0 - 1.0 - math.log(0.5))
    assert result.per_dimension[1] == pytest.approx(expected, rel=1e-14)
    assert result.collapse_rate[1] == 0.0
    # Per input and total are sums over dimensions.
    np.testing.assert_allclose(result.per_input, gaussian_kl(mu, logvar, 0, 0).sum(axis=1),
                               rtol=1e-15)
    assert result.total == pytest.approx(result.per_dimension.sum(), rel=1e-13)
    assert result.eps == 0.01


def test_collapse_rate_counts_inputs_below_eps():
    # Dimension 0: KL_d(x) = 0.5 * mu^2 with mu^2 = 0, 0.01, 1, 4 -> 2 of 4 inputs below 0.01.
    mu = np.array([[0.0], [0.1], [1.0], [2.0]])
    result = kl_diagnostic(Encodings(mu=mu, logvar=np.zeros_like(mu)), eps=0.01)
    assert result.collapse_rate.tolist() == [0.5]
    assert result.collapsed.tolist() == [False]  # the mean KL (0.63) is above eps


def test_conditional_prior_is_used():
    mu_q, lv_q, mu_p, lv_p = _random((30, 4), seed=3)
    enc = Encodings(mu=mu_q, logvar=lv_q, prior_mu=mu_p, prior_logvar=lv_p)
    result = kl_diagnostic(enc)
    np.testing.assert_allclose(result.per_dimension,
                               gaussian_kl(mu_q, lv_q, mu_p, lv_p).mean(axis=0), rtol=1e-14)
    # A prior equal to the posterior: everything collapsed.
    same = kl_diagnostic(Encodings(mu=mu_q, logvar=lv_q, prior_mu=mu_q, prior_logvar=lv_q))
    assert same.total == 0.0 and same.collapsed_units == 4


def test_input_order_does_not_change_kl():
    mu, lv, _, _ = _random((64, 5), seed=4)
    perm = np.random.default_rng(5).permutation(64)
    a = kl_diagnostic(Encodings(mu=mu, logvar=lv))
    b = kl_diagnostic(Encodings(mu=mu[perm], logvar=lv[perm]))
    np.testing.assert_array_equal(b.per_input, a.per_input[perm])  # per input: exact
    np.testing.assert_allclose(b.per_dimension, a.per_dimension, rtol=1e-14)  # summation order
    np.testing.assert_array_equal(b.collapse_rate, a.collapse_rate)
    assert b.total == pytest.approx(a.total, rel=1e-14)


def test_section_fields():
    mu, lv, _, _ = _random((10, 3))
    section = kl_diagnostic(Encodings(mu=mu, logvar=lv)).section()
    assert set(section.summary) == {"kl", "collapsed_units", "kl_by_step"}
    assert set(section.dimensions) == {"kl", "kl_collapse_rate", "kl_by_step"}
    assert section.summary["kl_by_step"] is None  # vector latents
    assert section.dimensions["kl_by_step"] == [None] * 3
    assert all(len(v) == 3 for v in section.dimensions.values())
    assert len(section.distributions["kl_per_input"]) == 10
    assert isinstance(section.summary["kl"], float)
    assert isinstance(section.summary["collapsed_units"], int)


def test_no_inputs_is_a_diagnostic_error():
    with pytest.raises(DiagnosticError, match="at least one input"):
        kl_diagnostic(Encodings(mu=np.zeros((0, 2)), logvar=np.zeros((0, 2))))
