"""-ELBO, IW-NLL, PPL, rate, distortion, minibatch MI: closed forms and independent references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from models_for_tests import (
    LinearVAE,
    PriorVAE,
    TokenLinearVAE,
    exact_linear_gaussian,
    sample_linear_data,
)
from scipy.stats import multivariate_normal, norm
from toy_models import ToyVAE

from collapse_diag import analyze
from collapse_diag.config.settings import Settings
from collapse_diag.diagnostics.likelihood import (
    convergence_grid,
    iw_bound,
    likelihood_diagnostic,
    log_normal,
    minibatch_mi,
)
from collapse_diag.exceptions import InvalidParameterError
from collapse_diag.model.encodings import encode_all
from collapse_diag.model.protocol import check_model
from collapse_diag.render.document import build_document
from collapse_diag.render.likelihood_table import likelihood_table
from collapse_diag.runtime.rng import KeyedNormals, generator_for


def run(model, data, seed=0, **settings):
    cfg = Settings(**settings)
    info = check_model(model, data)
    enc = encode_all(model, data, info, cfg.batch_size)
    return likelihood_diagnostic(model, data, enc, info, cfg, generator_for(seed, "likelihood"))


def log_px(model: LinearVAE, data, prior_mean=None, prior_var=None) -> np.ndarray:
    """Closed form: x ~ N(W m, W S W^T + sigma^2 I) for z ~ N(m, S); scipy's density."""
    w = model.W.numpy()
    m = np.zeros(w.shape[1]) if prior_mean is None else np.asarray(prior_mean)
    s = np.eye(w.shape[1]) if prior_var is None else np.diag(prior_var)
    cov = w @ s @ w.T + model.sigma**2 * np.eye(w.shape[0])
    return multivariate_normal(mean=w @ m, cov=cov).logpdf(data.numpy())


@pytest.fixture(scope="module")
def exact():
    model = exact_linear_gaussian([1.5, 1.0, 0.5], sigma=0.7, obs_dim=5)
    return model, sample_linear_data(model, 400, seed=3)


def wrong_posterior(model: LinearVAE) -> LinearVAE:
    """The same decoder with a shrunk mean and an inflated variance: q is not the posterior."""
    return LinearVAE(model.W.numpy(), model.sigma, 0.6 * model.A.numpy(),
                     model.lv.numpy() + 0.7)


def test_exact_posterior_gives_log_px_at_any_k(exact):
    # Every importance weight equals p(x), so L_K = log p(x) per input (float64 rounding).
    model, data = exact
    truth = log_px(model, data)
    for k in (1, 7):
        res = run(model, data, nll_samples=k, nll_examples=None)
        np.testing.assert_allclose(res.bound, truth[res.examples], rtol=0, atol=1e-9)
        for nll in res.convergence["nll"]:
            assert nll == pytest.approx(-truth.mean(), abs=1e-9)
    # ELBO = log p(x) too, so -ELBO = NLL up to Monte Carlo noise of E_q log p(x|z)
    # (7 draws per input, 400 inputs; 5 standard errors).
    err = res.distortion_per_input + res.rate_per_input + res.bound
    assert abs(err.mean()) < 5 * err.std() / math.sqrt(len(err)) + 1e-9


def test_bound_approaches_log_px_from_below_as_k_grows(exact):
    model, data = exact
    approx = wrong_posterior(model)
    res = run(approx, data, nll_samples=1000, nll_examples=None)
    truth = -log_px(model, data).mean()
    nll = res.convergence["nll"]
    assert res.convergence["samples"] == [1, 10, 100, 1000]
    # Decreasing in K (in expectation: the nested estimates may rise by Monte Carlo noise,
    # ~3e-3 nats here at K >= 100, so 0.01 is allowed) and above the true NLL (a bound from
    # below on log p(x)); the K = 1 gap is the mean KL(q || posterior), clearly positive.
    assert all(b < a + 0.01 for a, b in zip(nll, nll[1:]))
    assert nll[0] > nll[1] + 0.5 and nll[1] > nll[2]
    assert nll[0] - truth > 0.1
    assert all(v >= truth - 1e-3 for v in nll)  # 1e-3: MC noise at K = 1000 is ~1e-4
    # The criterion: within one standard error of the closed form...
    assert abs(res.nll - truth) < res.nll_se
    # ...and, paired per input, the remaining bias at K = 1000 is under 0.01 nats.
    assert res.nll - truth < 0.01
    assert res.nll <= res.neg_elbo  # Jensen: the IW bound is tighter than the ELBO


def test_learned_prior_enters_the_weights(exact):
    model, data = exact
    pm, plv = np.array([0.3, -0.2, 0.1]), np.log([0.8, 1.2, 0.5])
    approx = PriorVAE(model.W.numpy(), model.sigma, 0.6 * model.A.numpy(), model.lv.numpy(),
                      prior_mean=pm, prior_logvar=plv)
    truth = -log_px(model, data, pm, np.exp(plv)).mean()
    res = run(approx, data, nll_samples=1000, nll_examples=None)
    assert res.nll >= truth - 1e-3
    assert res.nll - truth < 0.02


def test_iw_bound_matches_brute_force_in_float64():
    rng = np.random.default_rng(0)
    log_w = rng.normal(-800.0, 30.0, size=(6, 50))  # exp underflows to 0 in float64
    expected = [max(r) + math.log(sum(math.exp(v - max(r)) for v in r) / len(r)) for r in log_w]
    np.testing.assert_allclose(iw_bound(log_w), expected, rtol=1e-13)


def test_log_normal_matches_scipy():
    rng = np.random.default_rng(1)
    z, mu, lv = rng.normal(size=(3, 4, 5))
    expected = [multivariate_normal(mu[i], np.diag(np.exp(lv[i]))).logpdf(z[i]) for i in range(4)]
    np.testing.assert_allclose(log_normal(z, mu, lv), expected, rtol=1e-12)


def test_convergence_grid():
    assert convergence_grid(1) == [1]
    assert convergence_grid(10) == [1, 10]
    assert convergence_grid(500) == [1, 10, 100, 500]


def _he_calc_mi(mu, logvar, noise):
    """A literal port of He et al. (2019)'s ``calc_mi`` (torch, one batch), as a reference."""
    mu, logvar, noise = (torch.from_numpy(a) for a in (mu, logvar, noise))
    x_batch, nz = mu.size()
    neg_entropy = (-0.5 * nz * math.log(2 * math.pi) - 0.5 * (1 + logvar).sum(-1)).mean()
    z_samples = (mu + torch.exp(0.5 * logvar) * noise).unsqueeze(1)
    mu, logvar = mu.unsqueeze(0), logvar.unsqueeze(0)
    dev = z_samples - mu
    log_density = (-0.5 * ((dev**2) / logvar.exp()).sum(dim=-1)
                   - 0.5 * (nz * math.log(2 * math.pi) + logvar.sum(-1)))
    log_qz = torch.logsumexp(log_density, dim=1) - math.log(x_batch)
    return (neg_entropy - log_qz.mean(-1)).item()


def test_minibatch_mi_matches_he_et_al_and_is_capped_by_log_batch():
    rng = np.random.default_rng(2)
    mu, lv, noise = rng.normal(0, 3, (70, 4)), np.full((70, 4), math.log(0.01)), rng.normal(
        size=(70, 4))
    expected = sum(_he_calc_mi(mu[s:s + 32], lv[s:s + 32], noise[s:s + 32]) * len(mu[s:s + 32])
                   for s in range(0, 70, 32)) / 70
    assert minibatch_mi(mu, lv, noise, 32) == pytest.approx(expected, rel=1e-12)
    # Very informative codes: the true MI is ~4 * log(3 / 0.1) = 13.6 nats, the estimate
    # stays below log(batch) (the last batch of 6 pulls the mean further down).
    assert minibatch_mi(mu, lv, noise, 32) <= math.log(32) + 1e-9


def test_text_figures_per_token_and_ppl(exact):
    model, data = exact
    tokens = torch.arange(len(data)) % 5 + 3
    tmodel = TokenLinearVAE(model.W.numpy(), model.sigma, model.A.numpy(), model.lv.numpy())
    res = run(tmodel, {"x": data, "n": tokens}, nll_samples=3, nll_examples=100)
    s = res.section().summary
    n = tokens.numpy()[res.examples].astype(float)
    assert s["nll_per_token"] == pytest.approx(-res.bound.sum() / n.sum(), rel=1e-12)
    assert s["ppl"] == pytest.approx(math.exp(s["nll_per_token"]), rel=1e-12)
    assert s["nll_examples"] == 100 and s["nll_samples"] == 3
    assert run(model, data, nll_samples=2).section().summary["ppl"] is None


def test_results_independent_of_batch_size_and_seeded(exact):
    model, data = exact
    a = run(wrong_posterior(model), data, nll_samples=20, nll_examples=150, batch_size=7)
    b = run(wrong_posterior(model), data, nll_samples=20, nll_examples=150, batch_size=300)
    np.testing.assert_allclose(a.bound, b.bound, rtol=0, atol=1e-10)
    assert a.mi_minibatch == b.mi_minibatch and a.decoder_rows == 150 * a.samples
    assert a.samples == b.samples and a.convergence == b.convergence
    c = run(wrong_posterior(model), data, seed=1, nll_samples=20, nll_examples=150)
    assert not np.allclose(a.bound, c.bound)


def test_analyze_reports_the_standard_figures(exact):
    model, data = exact
    report = analyze(model, data, nll_samples=5, nll_examples=50, swap_bootstrap=10)
    s = report.summary
    for key in ("neg_elbo", "nll", "nll_se", "nll_samples", "nll_examples", "ppl", "rate",
                "distortion", "mi_minibatch"):
        assert key in s, key
    assert s["neg_elbo"] == pytest.approx(s["rate"] + s["distortion"])
    assert s["nll_convergence"]["samples"] == [1, 5]
    assert "likelihood" not in report.errors


@pytest.mark.parametrize("name,value", [("nll_samples", 0), ("nll_examples", 0),
                                        ("mi_minibatch_size", 1), ("nll_samples", 2.5)])
def test_bad_settings_are_rejected(name, value):
    with pytest.raises(InvalidParameterError, match=name):
        Settings.from_kwargs(**{name: value})


def test_toy_vae_float32_matches_its_closed_form():
    # ToyVAE (tests/toy_models.py): x_d ~ N(0, w_d^2 + s^2) independently, exact posterior,
    # float32 decoder: L_K = log p(x) per input to float32 rounding (1e-4 nats).
    model = ToyVAE()
    data = model.sample(300, seed=4)
    w, s = model.w.double().numpy(), model.noise
    truth = norm(0, np.sqrt(w**2 + s**2)).logpdf(data.double().numpy()).sum(axis=1)
    report = analyze(model, data, nll_samples=10, nll_examples=None, swap_bootstrap=10,
                     diagnostics=["kl", "likelihood"])
    assert report.summary["nll"] == pytest.approx(-truth.mean(), abs=1e-4)
    assert report.summary["rate"] == pytest.approx(report.summary["kl"], rel=1e-12)
    res = run(model, data, nll_samples=10, nll_examples=None)
    np.testing.assert_allclose(res.bound, truth, atol=1e-4)


def test_likelihood_table_in_the_report_documents(analysed):
    from collapse_diag.render.tables import fmt_num

    report = analysed["healthy"]  # num_tokens: per-token figures and perplexity
    s = report.summary
    document = build_document(report, drawn=())
    section = next(s for s in document.sections if s.title == "Likelihood figures")
    rows = dict(section.tables[0].rows)
    assert rows["NLL (importance-weighted bound ± SE)"] == (
        f"{fmt_num(s['nll'], 4)} ± {fmt_num(s['nll_se'], 2)} nats per input")
    assert rows["NLL estimated with"] == "K = 10 codes per input, on 50 inputs"
    assert rows["perplexity exp(NLL per token)"] == fmt_num(math.exp(s["nll_per_token"]), 4)
    assert "perplexity exp(NLL per token)" not in dict(likelihood_table(analysed["partial"]).rows)
    assert likelihood_table(analysed["kl_only"]) is None


def test_k_doubles_until_the_change_is_within_its_standard_error(exact):
    # Known answer by construction: the bound at the final K equals scipy's logsumexp over
    # all the draws (the first K0 from stream "posterior", the K added at each doubling from
    # "posterior/K"), rebuilt here from the model's own log_likelihood, to 1e-9 nats.
    model, data = exact
    approx = wrong_posterior(model)
    res = run(approx, data, nll_samples=2, nll_max_samples=64, nll_examples=60)
    samples = res.convergence["samples"]
    assert samples[:2] == [1, 2] and all(b == 2 * a for a, b in zip(samples[1:], samples[2:]))
    assert res.samples == samples[-1] <= 64 and res.decoder_rows == 60 * res.samples
    # The rule: it stopped on the change below its SE, or at the budget (then not converged).
    assert res.converged == (res.change < res.change_se)
    assert res.converged or res.samples == 64
    cfg = Settings(nll_samples=2, nll_examples=60)
    enc = encode_all(approx, data, check_model(approx, data), cfg.batch_size)
    gen = generator_for(0, "likelihood")
    mu, lv = enc.mu[res.examples], enc.logvar[res.examples]
    log_w = []
    streams = [("posterior", 2)] + [(f"posterior/{k}", k) for k in samples[1:-1]]
    for stream, k in streams:
        eps = KeyedNormals(gen, stream, len(mu), (k, mu.shape[1])).rows(0, len(mu))
        z = mu[:, None] + np.exp(0.5 * lv[:, None]) * eps
        x = data[res.examples].repeat_interleave(k, dim=0)
        ll = approx.log_likelihood(x, torch.from_numpy(z.reshape(-1, mu.shape[1]))).numpy()
        log_w.append(ll.reshape(len(mu), k) + log_normal(z, 0.0, 0.0) - log_normal(z, mu[:, None],
                                                                                    lv[:, None]))
    np.testing.assert_allclose(res.bound, iw_bound(np.concatenate(log_w, axis=1)), atol=1e-9)


def test_exact_posterior_converges_without_extra_draws(exact):
    model, data = exact
    res = run(model, data, nll_samples=4, nll_examples=50)
    assert res.converged is True and res.samples == 4 and res.decoder_rows == 200
    assert abs(res.change) < 1e-9  # every weight is p(x): L_2 = L_4 to rounding
    one = run(model, data, nll_samples=1, nll_max_samples=1, nll_examples=50)
    assert one.converged is None and one.change is None  # nothing to compare with K = 1


def test_budget_stop_is_reported_as_not_converged(exact):
    model, data = exact
    far = LinearVAE(model.W.numpy(), model.sigma, 0.0 * model.A.numpy(), model.lv.numpy() + 2.0)
    res = run(far, data, nll_samples=2, nll_max_samples=4, nll_examples=100)
    assert res.samples == 4 and res.converged is False and res.change > res.change_se
    s = res.section()
    assert s.summary["nll_converged"] is False
    assert s.distributions["nll_per_input"] == (-res.bound).tolist()
    report = analyze(far, data, nll_samples=2, nll_max_samples=4, nll_examples=100,
                     swap_bootstrap=10, diagnostics=["kl", "likelihood"])
    rows = dict(likelihood_table(report).rows)
    assert rows["NLL convergence"].startswith("not converged")
