"""The per-dimension paragraphs of "What this means", generated from the per-dimension fields.

Every sentence here is built from ``dimensions[d].status``, ``signal``,
``decoder_use``, ``swap_ci``, ``swap_threshold``, ``swap_inputs_needed``,
``identifiability`` and the summary's Fisher grades, so a sentence cannot say
what those fields do not: a dimension is named *ignored* only when its status
is ``ignored`` (its swap interval lies below its threshold), *too noisy* /
*too weak* only when its ``signal`` says so, and flat-likelihood /
non-identifiability wording (Wang, Blei & Cunningham 2021) appears only when no
dimension is ``used``.
"""

from __future__ import annotations

import numpy as np

from collapse_diag.diagnostics.estimators.swap_decision import CLT_FIRST_ROUND
from collapse_diag.render.tables import fmt_num, fmt_pct, join_names
from collapse_diag.report.report import Report
from collapse_diag.report.schema import DIMENSION_KEY as D
from collapse_diag.report.schema import SUMMARY_KEY as S
from collapse_diag.report.values import (
    dim_column,
    dim_labels,
    dim_statuses,
    finite,
    setting,
    status_counts,
)

__all__ = ["MEANING", "decoder_dims_text", "identifiability_text", "signal_groups",
           "signal_text", "statuses_text"]

#: What each status means, in the order the explanation lists them.
MEANING = {
    "collapsed": "posterior equal to the prior for every input, so nothing about x",
    "uninformative": "the posterior moved away from the prior, but not in a way that tells "
                     "inputs apart",
    "ignored": "encoded, and the decoder's use of it is shown to be negligible",
    "undetermined": "encoded, but the evidence neither shows that the decoder reads it nor "
                    "that it does not",
    "used": "encoded and read by the decoder",
}


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _column(report: Report, key: str) -> list:
    return [d.get(key) if isinstance(d, dict) else None for d in report.dimensions]


def statuses_text(report: Report) -> str:
    """How many dimensions have each status, with what the status means, and the KL."""
    counts = status_counts(report)
    if not counts:
        return ("The status of each dimension could not be decided: the figures the verdict "
                "needs are missing.")
    parts = [f"{counts[s]} {'is' if counts[s] == 1 else 'are'} {s} ({MEANING[s]})"
             for s in MEANING if counts.get(s)]
    unknown = report.latent_dim - sum(counts.values())
    if unknown > 0:
        parts.append(f"{unknown} {'has' if unknown == 1 else 'have'} no status")
    text = f"Of the {_n(report.latent_dim, 'latent dimension')}, " + "; ".join(parts) + "."
    kl = finite(report.summary.get(S.kl))
    if kl is not None:
        text += (f" On average the posterior q(z|x) sits {fmt_num(kl)} nats from the prior p(z): "
                 "this is the KL term of the ELBO, summed over dimensions.")
    return text


def signal_groups(report: Report) -> dict[str, list[int]]:
    """Dimensions per ``signal`` value (``clear`` / ``noisy`` / ``weak``).

    From ``dimensions[d].signal``; for a report without it (schema 1), from
    Var mu(x) and E sigma²(x) by the same rule
    (:func:`collapse_diag.diagnostics.activity.signal_class`).
    """
    from collapse_diag.diagnostics.activity import SIGNALS, signal_class

    signal = _column(report, D.signal)
    if all(v is None for v in signal):
        mv, pv = dim_column(report, D.mu_variance), dim_column(report, D.posterior_variance)
        ok = np.isfinite(mv) & np.isfinite(pv)
        computed = signal_class(np.where(ok, mv, 0), np.where(ok, pv, 0),
                                float(setting(report, "active_threshold")))
        signal = [str(c) if o else None for c, o in zip(computed, ok, strict=True)]
    return {name: [i for i, v in enumerate(signal) if v == name] for name in SIGNALS}


def signal_text(report: Report) -> str:
    """Weak vs noisy vs clear, naming the dimensions of each ``signal`` value."""
    groups = signal_groups(report)
    if not any(groups.values()):
        return ("Whether the signal from x was too weak or too noisy cannot be told: the activity "
                "figures (Var mu(x), E sigma²(x)) are missing.")
    mv, pv = dim_column(report, D.mu_variance), dim_column(report, D.posterior_variance)
    names, thr = dim_labels(report), float(setting(report, "active_threshold"))

    def listed(group: list[int]) -> str:
        return join_names([names[i] for i in group], limit=len(group))

    parts = []
    if groups["clear"]:
        parts.append(f"clear in {listed(groups['clear'])} (Var mu(x) at least E sigma²(x): "
                     "a sampled z tells the inputs apart)")
    if groups["noisy"]:
        ratio = float(np.median([pv[i] / max(mv[i], 1e-300) for i in groups["noisy"]]))
        parts.append(f"too noisy in {listed(groups['noisy'])} (the posterior variance is "
                     f"{fmt_num(ratio)} times the spread of mu(x), median: mu(x) moves with the "
                     "input, but a sampled z says little about it)")
    if groups["weak"]:
        parts.append(f"too weak in {listed(groups['weak'])} (mu(x) barely moves across inputs: "
                     f"Var mu(x) below {fmt_num(thr)})")
    text = ["The signal from x to z is " + "; ".join(parts) + "."]
    ok = np.isfinite(mv) & np.isfinite(pv) & (pv > 0)
    if ok.any():
        text.append(f"The median signal-to-noise ratio Var mu(x) / E sigma²(x) is "
                    f"{fmt_num(float(np.median(mv[ok] / pv[ok])))}.")
    lost = [(len(groups["weak"]), "weak"), (len(groups["noisy"]), "noisy")]
    if lost[0][0] + lost[1][0]:
        cause = "weak" if lost[0][0] >= lost[1][0] else "noisy"
        text.append(f"Where the signal is lost, it is mostly because it is too {cause}.")
    return " ".join(text)


def _how_to_decide(report: Report) -> str:
    budget, used = report.summary.get(S.per_dim_swap_budget), report.n_examples
    if isinstance(budget, int) and budget < used:
        return (f"raise --per-dim-swap-max-examples (now {budget}) up to the {used} analysed "
                "inputs, or analyse more inputs with --data")
    return "analyse more inputs (--data, or a larger --max-examples)"


def decoder_dims_text(report: Report) -> str | None:
    """Per-dimension decoder use: used, ignored and undetermined dimensions, with intervals.

    ``None`` for a report without ``decoder_use`` (schema 1); ``""`` when no dimension is
    informative (nothing to decide).
    """
    use, ci = _column(report, D.decoder_use), _column(report, D.swap_ci)
    if all(v is None for v in use):
        return None
    s, names, statuses = report.summary, dim_labels(report), dim_statuses(report)
    if s.get(S.per_dim_swap_rounds) == 0:
        return ("The per-dimension swap was not run (per_dim_swap_examples = 0): decoder use "
                "per dimension comes from the Fisher information alone, which shows use only "
                "when its lower bound clears the cut-off.")
    thr, needed = dim_column(report, D.swap_threshold), _column(report, D.swap_inputs_needed)
    alpha = float(setting(report, "alpha"))
    first = setting(report, "per_dim_swap_examples")
    small = (f"; with {first} inputs in round 1, below the ~{CLT_FIRST_ROUND} its t intervals "
             "need, the decisions hold at less than that level"
             if isinstance(first, int) and 0 < first < CLT_FIRST_ROUND else "")
    text = [f"Swapping one coordinate at a time ({s.get(S.per_dim_swap_examples)} inputs in "
            f"{_n(int(s.get(S.per_dim_swap_rounds) or 0), 'round')}; the decision intervals "
            f"below are Bonferroni-corrected over the {report.latent_dim} dimensions and the "
            f"rounds at {1 - alpha:.0%}{small}):"]

    def bound(i: int, k: int) -> float | None:
        return finite(ci[i][k]) if isinstance(ci[i], list) and len(ci[i]) == 2 else None

    by_swap = [i for i, st in enumerate(statuses) if st == "used" and use[i] == "used"]
    by_fisher = [i for i, st in enumerate(statuses) if st == "used" and use[i] != "used"]
    ignored = [i for i, st in enumerate(statuses) if st == "ignored"]
    undecided = [i for i, st in enumerate(statuses) if st == "undetermined"]
    if by_swap:
        low = min(bound(i, 0) or 0.0 for i in by_swap)
        text.append(f"the decoder reads {join_names(names[i] for i in by_swap)} (every interval "
                    f"above 0; the smallest lower bound is {fmt_num(low)} nats).")
    if by_fisher:
        text.append(f"The decoder reads {join_names(names[i] for i in by_fisher)} by its Fisher "
                    "information (lower bound above the cut-off), though the swap interval "
                    "alone does not exclude 0.")
    if ignored:
        high = max(bound(i, 1) or 0.0 for i in ignored)
        text.append(f"The decoder ignores {join_names(names[i] for i in ignored)}: the encoder "
                    f"writes x into {'it' if len(ignored) == 1 else 'them'}, but swapping "
                    f"changes log p(x|z) by at most {fmt_num(high)} nats, below the negligible-"
                    f"effect threshold ({fmt_num(float(np.nanmax(thr[ignored])))} nats or less).")
    if undecided:
        parts = []
        for i in undecided:
            lo, hi, n = bound(i, 0), bound(i, 1), needed[i]
            more = f"; about {n} inputs would likely decide it" if isinstance(n, int) else ""
            parts.append(f"{names[i]} ({fmt_num(lo)} to {fmt_num(hi)} nats, threshold "
                         f"{fmt_num(thr[i])}{more})")
        text.append(f"For {join_names(parts)} the evidence is not decisive: the interval "
                    "neither lies above 0 nor below the negligible-effect threshold. To decide, "
                    f"{_how_to_decide(report)}.")
    if len(text) == 1:  # every dimension is collapsed or uninformative: nothing to decide
        return ""
    return " ".join(text)


def _pct_range(values: list, grades: list, which: str) -> str:
    chosen = [v for v, g in zip(values, grades, strict=True) if g == which
              and isinstance(v, list) and None not in v]
    if not chosen:
        return ""
    low, high = min(v[0] for v in chosen), max(v[1] for v in chosen)
    return f"{fmt_num(100 * low, 2)}% to {fmt_num(100 * high, 2)}%"


def identifiability_text(report: Report) -> str:
    """Flatness and the graded Fisher information; the Wang et al. sentence only when true."""
    s, d = report.summary, report.latent_dim
    flat, ident = finite(s.get(S.flat_fraction)), finite(s.get(S.identifiable_dims))
    grades = s.get(S.fisher_directions)
    if flat is None and ident is None:
        return "What the identifiability figures say cannot be told: they are missing."
    used = status_counts(report).get("used", 0)
    text = []
    if flat is not None:
        draws = setting(report, "prior_samples")
        thr = fmt_num(setting(report, "flatness_threshold"))
        if flat >= 0.5:
            text.append(f"For {fmt_pct(flat)} of inputs the likelihood is flat in z: across "
                        f"{draws} prior draws of z, log p(x|z) varies by less than {thr} nats.")
        else:
            text.append(f"The likelihood responds to z for {fmt_pct(1 - flat)} of inputs: across "
                        f"{draws} prior draws of z, log p(x|z) varies by at least {thr} nats.")
    atol = float(setting(report, "fisher_rank_atol"))
    practically_flat = False
    if isinstance(grades, list) and grades:
        ci = s.get(S.fisher_contraction_ci) or [None] * len(grades)
        count = {g: grades.count(g) for g in ("identifiable", "weak", "inconclusive", "flat")}
        parts = [f"{count['identifiable']} identifiable (contraction at least "
                 f"{fmt_pct(atol / (1 + atol))})"] if count["identifiable"] else []
        if count["weak"]:
            parts.append(f"{count['weak']} weakly identifiable (contraction "
                         f"{_pct_range(ci, grades, 'weak')}: small, but clearly not zero)")
        if count["inconclusive"]:
            parts.append(f"{count['inconclusive']} inconclusive (the interval straddles "
                         f"{fmt_pct(atol / (1 + atol))})")
        if count["flat"]:
            parts.append(f"{count['flat']} indistinguishable from flat")
        text.append(f"Along the {len(grades)} eigen-directions of the Fisher information of z"
                    f"{' (flattened over time steps)' if len(grades) != d else ''}, one "
                    "observation narrows the prior by the contraction 1 - 1/(1 + lambda) "
                    f"({float(setting(report, 'confidence')):.0%} bootstrap intervals): "
                    + "; ".join(parts) + ".")
        practically_flat = count["identifiable"] + count["inconclusive"] == 0
        if used and practically_flat:
            text.append(f"Weak identifiability is not absence of use: the swap test shows the "
                        f"decoder reads {_n(used, 'dimension')}; each observation narrows them "
                        "only a little, so many observations are needed to pin them down.")
    elif ident is not None:
        k = int(ident)
        text.append(f"The Fisher information of z has {_n(k, 'eigenvalue')} above the rank "
                    f"cut-off, of {d}.")
        practically_flat = k == 0
    if used == 0 and (practically_flat or (flat is not None and flat >= 0.5)):
        why = (f"no direction is narrowed by {fmt_pct(atol / (1 + atol))} or more (upper "
               "bounds) and no dimension is shown used" if practically_flat else
               "the likelihood is flat for most inputs and no dimension is shown used")
        text.append(f"Since {why}, z is practically non-identifiable here in the sense of "
                    "Wang, Blei & Cunningham (2021), and that is the same thing as posterior "
                    "collapse: when p(x|z) does not change with z, the best posterior is the "
                    "prior.")
    elif ((isinstance(grades, list) and grades and all(g == "identifiable" for g in grades))
          or (not grades and ident is not None and int(ident) >= d
              and (flat is None or flat < 0.5))):
        text.append("z is identifiable: p(x|z) changes with z in every direction, so the "
                    "posterior has something to learn.")
    return " ".join(text)
