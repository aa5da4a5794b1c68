"""The table of the standard figures (-ELBO, NLL, PPL, rate, distortion, minibatch MI).

Shown in report.md / report.html under "Likelihood figures"; the figures come
from collapse_diag/diagnostics/likelihood.py.
"""

from __future__ import annotations

from collapse_diag.render.report_values import finite
from collapse_diag.render.tables import Table, fmt_num
from collapse_diag.report import Report

__all__ = ["likelihood_table"]


def likelihood_table(report: Report) -> Table | None:
    """-ELBO, IW-NLL ± SE, per-token figures, PPL, rate, distortion, MI; ``None`` if absent."""
    s = report.summary
    if finite(s.get("nll")) is None and finite(s.get("neg_elbo")) is None:
        return None

    def nats(key: str, unit: str = "nats per input") -> str | None:
        return None if finite(s.get(key)) is None else f"{fmt_num(s[key], 4)} {unit}"

    nll = nats("nll")
    if nll is not None and finite(s.get("nll_se")) is not None:
        nll = f"{fmt_num(s['nll'], 4)} ± {fmt_num(s['nll_se'], 2)} nats per input"
    where = (f"K = {s.get('nll_samples')} codes per input, on {s.get('nll_examples')} inputs"
             if s.get("nll_samples") is not None else None)
    mb = s.get("mi_minibatch_size")
    rows = [
        ("-ELBO = rate + distortion", nats("neg_elbo")),
        ("-ELBO per token", nats("neg_elbo_per_token", "nats per token")),
        ("NLL (importance-weighted bound ± SE)", nll),
        ("NLL estimated with", where),
        ("NLL per token", nats("nll_per_token", "nats per token")),
        ("perplexity exp(NLL per token)", None if finite(s.get("ppl")) is None
         else fmt_num(s["ppl"], 4)),
        ("rate R = KL(q(z|x) || p(z))", nats("rate")),
        ("distortion D = -E_q log p(x|z)", nats("distortion")),
        (f"MI, minibatch estimator (He et al. 2019; at most log {mb}, biased low)",
         nats("mi_minibatch", "nats")),
    ]
    kept = [[label, value] for label, value in rows if value is not None]
    return Table(["figure", "value"], kept, [[a, b] for a, b in kept])
