"""The table of the standard figures (-ELBO, NLL, PPL, rate, distortion, minibatch MI).

Shown in report.md / report.html under "Likelihood figures"; the figures come
from collapse_diag/diagnostics/likelihood.py.
"""

from __future__ import annotations

from collapse_diag.render.tables import Table, fmt_num
from collapse_diag.report.invariants import nll_still_falling
from collapse_diag.report.report import Report
from collapse_diag.report.schema import SUMMARY_KEY as S
from collapse_diag.report.values import finite

__all__ = ["likelihood_table"]


def likelihood_table(report: Report) -> Table | None:
    """-ELBO, IW-NLL ± SE, per-token figures, PPL, rate, distortion, MI; ``None`` if absent."""
    s = report.summary
    if finite(s.get(S.nll)) is None and finite(s.get(S.neg_elbo)) is None:
        return None

    def nats(key: str, unit: str = "nats per input") -> str | None:
        return None if finite(s.get(key)) is None else f"{fmt_num(s[key], 4)} {unit}"

    nll = nats(S.nll)
    if nll is not None and finite(s.get(S.nll_se)) is not None:
        nll = f"{fmt_num(s[S.nll], 4)} ± {fmt_num(s[S.nll_se], 2)} nats per input"
    where = (f"K = {s.get(S.nll_samples)} codes per input, on {s.get(S.nll_examples)} inputs"
             if s.get(S.nll_samples) is not None else None)
    mb = s.get(S.mi_minibatch_size)
    rows = [
        ("-ELBO = rate + distortion", nats(S.neg_elbo)),
        ("-ELBO per token", nats(S.neg_elbo_per_token, "nats per token")),
        ("NLL (importance-weighted bound ± SE)", nll),
        ("NLL estimated with", where),
        ("NLL per token", nats(S.nll_per_token, "nats per token")),
        ("perplexity exp(NLL per token)", None if finite(s.get(S.ppl)) is None
         else fmt_num(s[S.ppl], 4)),
        ("rate R = KL(q(z|x) || p(z))", nats(S.rate)),
        ("distortion D = -E_q log p(x|z)", nats(S.distortion)),
        ("MI, whole-set estimate (the report's figure)", nats(S.mutual_information, "nats")),
        (f"MI, minibatch estimator (He et al. 2019; at most log {mb}; biased low near that "
         "cap, high near 0: for published tables only)", nats(S.mi_minibatch, "nats")),
    ]
    converged, change, se = (s.get(k) for k in (S.nll_converged, S.nll_change, S.nll_change_se))
    if converged is True and finite(change) is not None:
        rows.insert(3, ("NLL convergence", f"converged: the last doubling of K changed the NLL "
                        f"by {fmt_num(change, 2)} nats, less than its standard error "
                        f"{fmt_num(se, 2)} (paired per input)"))
    elif converged is False and finite(change) is not None:
        rows.insert(3, ("NLL convergence", f"not converged: the last doubling of K still lowered "
                        f"the NLL by {fmt_num(change, 2)} nats (standard error {fmt_num(se, 2)}) "
                        "when the budget nll_max_samples stopped it: read NLL and perplexity as "
                        "upper bounds; a larger nll_max_samples would lower them"))
    elif nll_still_falling(report):
        rows.insert(3, ("NLL convergence", "still falling at the largest K: read NLL and "
                        "perplexity as upper bounds; a larger nll_samples would lower them"))
    kept = [[label, value] for label, value in rows if value is not None]
    return Table(["figure", "value"], kept, [[a, b] for a, b in kept])
