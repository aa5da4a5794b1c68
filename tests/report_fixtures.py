"""Hand-built Reports (shape of docs/report-schema.md) for tests of plots and writers.

``healthy_report``: every dimension used, the decoder reads z, labels probed.
``collapsed_report``: every dimension collapsed (weak signal), decoder ignores z.
``partial_report``: a mix: used, ignored, undetermined, weak/noisy-uninformative and
collapsed dims; saturated MI; no ``num_tokens``; graded Fisher directions.
``failed_report``: sensitivity and identifiability failed, information disabled,
no checkpoint, some statuses missing.
``minimal_report``: nothing but the sizes: every figure missing.
"""

from __future__ import annotations

import math

import numpy as np

from collapse_diag.report import Report
from collapse_diag.settings import Settings

__all__ = ["collapsed_report", "failed_report", "healthy_report", "minimal_report",
           "partial_report", "ALL_BUILDERS"]

_PROVENANCE = {
    "created": "2024-05-01T12:00:00+00:00",
    "model": "TextVAE",
    "data_sha256": "9f2c" * 16,
    "versions": {"python": "3.11.7", "torch": "2.3.0", "numpy": "2.4.6"},
}


def _kl(mv: float, pv: float) -> float:
    """Mean KL to N(0, 1) of a posterior N(mu, pv) with E[mu^2] = mv (log of mean variance)."""
    return 0.5 * (mv + pv - 1.0 - math.log(pv))


def _swap_fields(status: str | None, swap: float) -> dict:
    """Per-dimension swap interval and decision consistent with ``status`` (schema 2)."""
    if status == "used":
        return {"swap_ci": [0.5 * swap, 1.5 * swap], "decoder_use": "used",
                "swap_threshold": 0.01, "swap_examples": 32, "swap_inputs_needed": None}
    if status == "undetermined":
        return {"swap_ci": [-0.02, 0.05], "decoder_use": "undetermined",
                "swap_threshold": 0.01, "swap_examples": 64, "swap_inputs_needed": 410}
    return {"swap_ci": [0.0, 0.004], "decoder_use": "ignored", "swap_threshold": 0.01,
            "swap_examples": 32, "swap_inputs_needed": None}


def _build(name: str, n: int, mv: list[float], pv: list[float], statuses: list[str | None],
           swap: list[float], swap_p: list[float], fisher: list[float], summary: dict,
           distributions: dict, *, tokens: bool = True, **extra) -> Report:
    d = len(mv)
    mi_dims = [0.5 * math.log1p(m / p) * min(1.0, m / 0.05) for m, p in zip(mv, pv, strict=True)]
    dims = []
    for i in range(d):
        kl = _kl(mv[i], pv[i])
        dims.append({
            "index": i, "kl": kl, "kl_collapse_rate": 1.0 if kl < 0.01 else 0.02,
            "mu_variance": mv[i], "posterior_variance": pv[i], "active": mv[i] >= 0.01,
            "mutual_information": mi_dims[i], "swap_delta": swap[i],
            "swap_delta_per_token": swap[i] / 30 if tokens else None,
            "swap_p_value": swap_p[i], "fisher": fisher[i], "status": statuses[i],
            **_swap_fields(statuses[i], swap[i]),
        })
    kl_total = sum(x["kl"] for x in dims)
    ceiling = math.log(n)
    mi = summary.pop("mutual_information", min(sum(mi_dims), ceiling - 0.7))
    known = [s for s in statuses if s is not None]
    base = {
        "kl": kl_total, "collapsed_units": sum(x["kl"] < 0.01 for x in dims),
        "active_units": sum(m >= 0.01 for m in mv), "mutual_information": mi,
        "marginal_kl": kl_total - mi, "mi_ceiling": ceiling, "mi_examples": n,
        "mi_saturated": mi > ceiling - 0.5, "mi_negative": mi < 0,
        "fisher_eigenvalues": sorted(fisher, reverse=True),
        "status_counts": {s: known.count(s) for s in
                          ("used", "ignored", "undetermined", "collapsed", "uninformative")},
        "per_dim_swap_examples": 64, "per_dim_swap_rounds": 2, "per_dim_swap_budget": n,
    }
    base.update(summary)
    settings = Settings(seed=7).to_dict()
    return Report(n_examples=n, latent_dim=d, summary=base, dimensions=dims, settings=settings,
                  checkpoint={"path": f"checkpoints/{name}.pt", "sha256": "c0ffee" * 10 + "abcd"},
                  provenance=dict(_PROVENANCE), distributions=distributions,
                  timings={"kl": 0.01, "sensitivity": 1.5}, **extra)


def _with_likelihood(report: Report, nll: float, rate: float, gap: float) -> Report:
    """Add the likelihood diagnostic's figures: NLL = ``nll``, -ELBO = ``nll + gap``."""
    report.summary.update({
        "neg_elbo": nll + gap, "neg_elbo_per_token": (nll + gap) / 30, "nll": nll,
        "nll_se": 0.6, "nll_per_token": nll / 30, "nll_samples": 100, "nll_examples": 200,
        "nll_convergence": {"samples": [1, 10, 100], "nll": [nll + gap, nll + 0.2 * gap, nll],
                            "nll_se": [0.7, 0.65, 0.6]},
        "ppl": math.exp(nll / 30), "rate": rate, "distortion": nll + gap - rate,
        "mi_minibatch": min(rate, math.log(32)) * 0.8, "mi_minibatch_size": 32})
    return report


def healthy_report() -> Report:
    """Eight active dimensions; the decoder reads z; topic is linearly decodable."""
    return _with_likelihood(_healthy(), nll=84.9, rate=6.0, gap=1.2)


def _healthy() -> Report:
    rng = np.random.default_rng(0)
    mv = [0.9, 0.85, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3]
    pv = [0.05, 0.08, 0.12, 0.2, 0.3, 0.35, 0.45, 0.55]
    return _build(
        "healthy", 200, mv, pv, ["used"] * 8, [2.0 * m for m in mv], [1e-6] * 8,
        [50.0, 30.0, 20.0, 12.0, 8.0, 5.0, 3.0, 2.0],
        {"swap_delta": 25.3, "swap_delta_per_token": 0.84, "swap_ci": [22.1, 28.4],
         "swap_p_value": 1e-30, "swap_significant": True, "reconstruction": -80.2,
         "prior_reconstruction": -110.5, "prior_gap": 30.3, "likelihood_flatness": 3.1,
         "likelihood_flatness_per_token": 0.1, "flat_fraction": 0.0, "identifiable_dims": 8,
         "verdict": "healthy",
         "verdict_reason": "All 8 latent dimensions are encoded and read by the decoder.",
         "probes": {"topic": {"accuracy": 0.91, "baseline": 0.25, "dimensions": [0, 2]}}},
        {"swap_delta": rng.normal(25.3, 8.0, 200).tolist(),
         "likelihood_std": rng.lognormal(math.log(0.1), 0.4, 200).tolist(),
         "kl_per_input": rng.normal(6.0, 1.0, 200).tolist()},
    )


def collapsed_report() -> Report:
    """Eight collapsed dimensions (posterior = prior); the decoder ignores z."""
    return _with_likelihood(_collapsed(), nll=95.0, rate=0.001, gap=0.001)


def _collapsed() -> Report:
    rng = np.random.default_rng(1)
    mv = [1e-5, 2e-5, 4e-5, 1e-5, 3e-5, 2e-5, 5e-5, 1e-5]
    pv = [0.999, 0.998, 0.999, 0.9995, 0.998, 0.999, 0.997, 0.999]
    return _build(
        "collapsed", 200, mv, pv, ["collapsed"] * 8, [1e-4] * 8, [0.5] * 8,
        [1e-7, 3e-8, 2e-8, 1e-8, 5e-9, 4e-9, 2e-9, 0.0],
        {"mutual_information": -0.002, "swap_delta": 0.003, "swap_delta_per_token": 1e-4,
         "swap_ci": [-0.01, 0.016], "swap_p_value": 0.41, "swap_significant": False,
         "reconstruction": -95.0, "prior_reconstruction": -95.01, "prior_gap": 0.01,
         "likelihood_flatness": 0.001, "likelihood_flatness_per_token": 3e-5,
         "flat_fraction": 1.0, "identifiable_dims": 0, "verdict": "collapsed",
         "verdict_reason": "All 8 latent dimensions have collapsed to the prior.",
         "probes": {"topic": {"accuracy": 0.26, "baseline": 0.25, "dimensions": []}}},
        {"swap_delta": rng.normal(0.003, 0.05, 200).tolist(),
         "likelihood_std": rng.lognormal(math.log(3e-5), 0.3, 200).tolist()},
    )


def partial_report() -> Report:
    """Two used, one undetermined, one ignored, two uninformative (one weak, one noisy), two
    collapsed; no num_tokens."""
    rng = np.random.default_rng(2)
    mv = [0.8, 0.6, 0.5, 0.5, 0.003, 0.02, 2e-5, 1e-5]
    pv = [0.1, 0.2, 0.3, 0.3, 2.5, 1.9, 0.999, 0.998]
    statuses = (["used"] * 2 + ["undetermined", "ignored", "uninformative", "uninformative"]
                + ["collapsed"] * 2)
    return _build(
        "partial", 20, mv, pv, statuses, [3.0, 2.0, 1.5, 0.001, 0.01, 0.02, 0.0, 0.0],
        [1e-5, 1e-4, 1e-3, 0.6, 0.4, 0.3, 0.5, 0.5], [40.0, 25.0, 15.0, 1e-4, 1e-3, 2e-3,
                                                       1e-8, 0.0],
        {"mutual_information": 2.8, "swap_delta": 9.1, "swap_delta_per_token": None,
         "swap_ci": [7.5, 10.8], "swap_p_value": 1e-12, "swap_significant": True,
         "reconstruction": -60.0, "prior_reconstruction": -71.0, "prior_gap": 11.0,
         "likelihood_flatness": 1.2, "likelihood_flatness_per_token": None,
         "flat_fraction": 0.12, "identifiable_dims": 3, "verdict": "partial",
         "fisher_directions": ["identifiable"] * 3 + ["weak"] * 4 + ["flat"],
         "fisher_contraction_ci": [[0.9, 0.99]] * 3 + [[1e-4, 3e-3]] * 4 + [[0.0, 0.0]],
         "verdict_reason": "2 of 8 latent dimensions are used; 2 have collapsed."},
        {"swap_delta": rng.normal(9.1, 5.0, 20).tolist(),
         "likelihood_std": rng.lognormal(0.0, 0.8, 20).tolist()},
        tokens=False,
    )


def failed_report() -> Report:
    """Sensitivity and identifiability failed, information disabled; nulls everywhere."""
    report = partial_report()
    report.checkpoint = None
    report.provenance = {}
    report.errors = {"sensitivity": "the decoder returned NaN for 3 inputs.",
                     "identifiability": "log_likelihood is not differentiable in z <x|y>."}
    for key in ("mutual_information", "marginal_kl", "mi_ceiling", "mi_examples", "mi_saturated",
                "mi_negative", "swap_delta", "swap_delta_per_token", "swap_ci", "swap_p_value",
                "swap_significant", "reconstruction", "prior_reconstruction", "prior_gap",
                "likelihood_flatness", "flat_fraction", "fisher_eigenvalues",
                "identifiable_dims"):
        report.summary[key] = None
    report.summary.pop("status_counts")
    for dim in report.dimensions:
        for key in ("mutual_information", "swap_delta", "swap_delta_per_token", "swap_p_value",
                    "fisher"):
            dim[key] = None
    report.dimensions[5]["status"] = None
    report.distributions = {}
    return report


def minimal_report() -> Report:
    """Only the sizes: every diagnostic missing."""
    return Report(n_examples=10, latent_dim=3, summary={},
                  dimensions=[{"index": i} for i in range(3)])


ALL_BUILDERS = {"healthy": healthy_report, "collapsed": collapsed_report,
                "partial": partial_report, "failed": failed_report, "minimal": minimal_report}
