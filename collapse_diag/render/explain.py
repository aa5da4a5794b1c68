"""The plain-language explanation of a report, generated from its figures.

:func:`explain` returns the paragraphs of the "What this means" section: how
many dimensions are used / ignored / undetermined / collapsed / uninformative;
in which dimensions the signal from x is clear, too *weak* (mu(x) stops moving)
or too *noisy* (sigma(x) swamps the spread of mu(x)); whether the decoder reads z
(the swap tests, with intervals); how the KL splits into mutual information and
marginal KL (Hoffman & Johnson 2016); what the graded identifiability figures say
(Wang, Blei & Cunningham 2021); and what linear probes of known factors found. A figure that
is missing is said to be missing, never guessed.

The paragraphs are those the diagnostic specs name (``spec.explanation``), in
display order (collapse_diag/diagnostics/registry.py); this module writes the
decoder, information and probe paragraphs, render/dimension_text.py and
render/sequence_text.py the others.
"""

from __future__ import annotations

import numpy as np

from collapse_diag.diagnostics.estimators.swap_decision import whole_swap_threshold
from collapse_diag.diagnostics.probes import PROBE_MARGIN
from collapse_diag.diagnostics.registry import display_order, report_kind
from collapse_diag.diagnostics.spec import resolve
from collapse_diag.render.dimension_text import decoder_dims_text
from collapse_diag.render.failures import is_render_error
from collapse_diag.render.tables import fmt_num, fmt_p, fmt_pct, join_names
from collapse_diag.report.invariants import ROUNDING_NATS
from collapse_diag.report.report import Report
from collapse_diag.report.schema import DIMENSION_KEY as DK
from collapse_diag.report.schema import PROBE_KEY as PRK
from collapse_diag.report.schema import PROVENANCE_KEY as PK
from collapse_diag.report.schema import SUMMARY_KEY as SK
from collapse_diag.report.values import (
    dim_column,
    dim_labels,
    dim_statuses,
    finite,
    setting,
    status_counts,
)

__all__ = ["decoder_text", "explain", "information_text", "probes_text", "verdict_parts"]


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def verdict_parts(report: Report) -> tuple[str, str]:
    """``("Verdict: collapsed.", reason)``; the reason is generated when none was stored."""
    verdict, reason = report.summary.get(SK.verdict), report.summary.get(SK.verdict_reason)
    if not reason:
        counts = status_counts(report)
        reason = (f"{counts.get('used', 0)} of {report.latent_dim} latent dimensions are used."
                  if counts else "The per-dimension status could not be computed.")
    label = f"Verdict: {verdict}." if verdict else "Verdict: not available."
    return label, str(reason)


def decoder_text(report: Report) -> str:
    """Whether the decoder reads z: the swap tests with their intervals (sensitivity)."""
    s, alpha = report.summary, float(setting(report, "alpha"))
    delta = finite(s.get(SK.swap_delta))
    if delta is None:
        return ("Whether the decoder reads z cannot be told: the decoder-sensitivity figures "
                "(the swap test) are missing.")
    p, sig = finite(s.get(SK.swap_p_value)), s.get(SK.swap_significant)
    reads = bool(sig) if sig is not None else (p is not None and p < alpha and delta > 0)
    ci = [finite(v) for v in s.get(SK.swap_ci) or []]
    evidence = [f"{setting(report, 'confidence'):.0%} CI {fmt_num(ci[0])} to {fmt_num(ci[1])} "
                "nats"] if len(ci) == 2 and None not in ci else []
    if p is not None:
        evidence.append(f"p {fmt_p(p)}" if p < 1e-3 else f"p = {fmt_p(p)}")
    per_token = finite(s.get(SK.swap_delta_per_token))
    if per_token is not None:
        evidence.append(f"{fmt_num(per_token)} nats per token")
    paren = f" ({'; '.join(evidence)})" if evidence else ""
    # the verdict's rule (diagnostics/verdict.py, whole_swap_negligible): absence is shown
    # only by an interval within the negligible threshold, never by p >= alpha alone
    mi, cap = finite(s.get(SK.mutual_information)), float(setting(report, "negligible_swap_nats"))
    fraction = float(setting(report, "negligible_swap_fraction"))
    threshold = whole_swap_threshold(mi, cap, fraction)
    high = ci[1] if len(ci) == 2 else None
    if reads:
        text = [f"The decoder reads z. Giving each input another input's code lowers its "
                f"log-likelihood by {fmt_num(delta)} nats on average{paren}."]
    elif high is not None and high <= threshold:
        text = [f"The decoder does not measurably read z. Giving each input another input's code "
                f"changes its log-likelihood by only {fmt_num(delta)} nats on average{paren}: "
                f"the interval ends at {fmt_num(high)} nats, within the negligible threshold of "
                f"{fmt_num(threshold)} nats, so any use of z is negligible. The decoder models x "
                "on its own, as a strong autoregressive decoder can."]
    else:
        reach = (f"the interval reaches {fmt_num(high)} nats, above the negligible threshold of "
                 f"{fmt_num(threshold)} nats" if high is not None else "there is no interval")
        if mi is not None and threshold < cap:  # the threshold is a share of a small MI
            why = (f" ({fmt_num(fraction)} x the {fmt_num(max(mi, 0.0))} nats z carries about "
                   "x). With so little information in z, swapping codes can show little either "
                   "way; whether log p(x|z) changes with z at all is what the likelihood-flatness "
                   "and Fisher figures measure.")
        else:
            why = ", so a small use of z is not ruled out; more inputs would narrow the interval."
        text = [f"Whether the decoder reads z is not decided by the swap test. Giving each input "
                f"another input's code changes its log-likelihood by {fmt_num(delta)} nats on "
                f"average{paren}: not significant at alpha = {fmt_num(alpha)}, but {reach}{why}"]
    gap = finite(s.get(SK.prior_gap))
    if gap is not None:
        text.append(f"Decoding from the input's own posterior instead of a prior draw is worth "
                    f"{fmt_num(gap)} nats per input (the prior gap).")
    per_dim = decoder_dims_text(report)
    if per_dim:
        text.append(per_dim)
    elif per_dim is None:  # a schema-1 report: Holm-corrected Wilcoxon p-values only
        pvals = dim_column(report, DK.swap_p_holm)
        if np.isfinite(pvals).any():
            count = int((pvals < alpha).sum())
            text.append(f"Swapping one coordinate at a time, {count} of {report.latent_dim} "
                        f"dimensions make a difference on their own (Holm-corrected p < "
                        f"{alpha:g}).")
    return " ".join(text)


def _interval(value: object) -> tuple[float, float] | None:
    """A ``[lo, hi]`` pair of finite numbers from report.json, or ``None``."""
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        return None
    lo, hi = finite(value[0]), finite(value[1])
    return None if lo is None or hi is None else (lo, hi)


def _with_interval(value: float, interval: tuple[float, float] | None, level: str) -> str:
    if interval is None:
        return f"{fmt_num(value)} nats"
    return f"{fmt_num(value)} nats ({level} interval {fmt_num(interval[0])} to " \
           f"{fmt_num(interval[1])})"


def information_text(report: Report) -> str:
    """How the mean KL splits into MI and marginal KL, with intervals (information)."""
    s = report.summary
    mi, mkl, kl = (finite(s.get(k)) for k in (SK.mutual_information, SK.marginal_kl, SK.kl))
    if mi is None:
        return ("How the KL splits into information about x and mismatch with the prior cannot "
                "be told: the information figures are missing.")
    level = fmt_pct(float(setting(report, "confidence")))
    mi_ci, mkl_ci = _interval(s.get(SK.mutual_information_ci)), _interval(s.get(SK.marginal_kl_ci))
    total = f"The mean KL of {fmt_num(kl)} nats splits" if kl is not None else "The KL splits"
    text = [f"{total} into {_with_interval(mi, mi_ci, level)} of mutual information between x "
            "and z (what the code tells about the input)"
            + (f" and {_with_interval(mkl, mkl_ci, level)} of marginal KL (how far the average "
               "code q(z) is from the prior; Hoffman & Johnson 2016)." if mkl is not None
               else ".")]
    if report.provenance.get(PK.has_prior):
        above = [name for name, row in zip(dim_labels(report), report.dimensions)
                 if isinstance(row, dict) and (finite(row.get(DK.mutual_information)) or 0.0)
                 > (finite(row.get(DK.kl)) or 0.0) + ROUNDING_NATS]
        text.append("The KL is measured against the model's learned prior, which may depend on "
                    "x (a conditional prior such as a VRNN's p(z_t | z_<t)): then the split does "
                    "not hold, the marginal KL is only KL minus MI, and a dimension's MI may "
                    "exceed its KL without contradiction"
                    + (f" (here {join_names(above)})." if above else "."))
    if kl is not None and kl >= float(setting(report, "kl_eps")) and max(mi, 0.0) < 0.5 * kl:
        text.append("Most of the KL pays for a mismatch between the average code and the prior, "
                    "not for information about x.")
    ceiling = finite(s.get(SK.mi_ceiling))
    zero_like, ceiling_like = s.get(SK.mi_indistinguishable_from_zero), \
        s.get(SK.mi_indistinguishable_from_ceiling)
    if zero_like is True:
        text.append("The interval reaches 0: the code carries no information about x that "
                    f"{s.get(SK.mi_examples, 'these')} inputs can detect.")
    elif s.get(SK.mi_negative) or mi < 0:
        text.append(f"The MI estimate is below zero ({fmt_num(mi)} nats). MI cannot be negative: "
                    "read it as zero within the estimator's noise.")
    if (ceiling_like is True or (ceiling_like is None and s.get(SK.mi_saturated))) \
            and ceiling is not None:
        text.append(f"The {'interval' if ceiling_like is True else 'estimate'} reaches within "
                    f"{fmt_num(setting(report, 'mi_saturation_margin'))} nats of the ceiling "
                    f"log N = {fmt_num(ceiling)} nats, so the figure is limited by the number "
                    "of inputs and is a lower bound: analyse more inputs to measure it.")
    zero_dims = [name for name, row, status in zip(dim_labels(report), report.dimensions,
                                                    dim_statuses(report))
                 if isinstance(row, dict) and row.get(DK.mi_indistinguishable_from_zero) is True
                 and status != "collapsed"]  # collapsed ones are already said to carry nothing
    if zero_dims and zero_like is not True:
        text.append(f"Per dimension, the MI interval of {join_names(zero_dims)} reaches 0: "
                    "on its own, each of these coordinates tells nothing detectable about x.")
    return " ".join(text)

def probes_text(report: Report) -> str | None:
    """What the linear probes of known factors found (probes); ``None`` without labels."""
    probes = report.summary.get(SK.probes)
    skipped = report.summary.get(SK.probes_skipped)
    probes = probes if isinstance(probes, dict) else {}
    skipped = skipped if isinstance(skipped, dict) else {}
    if not probes and not skipped:
        return None
    text = []
    for factor, probe in sorted(probes.items()):
        acc = finite(probe.get(PRK.accuracy)) if isinstance(probe, dict) else None
        base = finite(probe.get(PRK.baseline)) if isinstance(probe, dict) else None
        if acc is None or base is None:
            text.append(f"The probe for {factor} has no result.")
        elif acc - base >= PROBE_MARGIN:
            dims = [f"z{i}" for i in probe.get(PRK.dimensions) or []]
            where = f", mostly from {join_names(dims)}" if dims else ""
            text.append(f"A linear probe recovers {factor} from a sampled z at {fmt_num(acc)} vs a "
                        f"{fmt_num(base)} baseline{where}.")
        else:
            acc_mu = finite(probe.get(PRK.accuracy_mu))
            if acc_mu is not None and acc_mu - base >= PROBE_MARGIN:
                # mu(x) moves with the factor at a scale the posterior noise swamps
                text.append(f"A linear probe recovers {factor} from a sampled z at only "
                            f"{fmt_num(acc)}, against a {fmt_num(base)} baseline, but from "
                            f"mu(x) at {fmt_num(acc_mu)}: the encoder's mean still moves with "
                            f"{factor}, at a scale the posterior noise swamps, so the code the "
                            "decoder receives hardly carries it (a weak or noisy signal, "
                            "docs/statuses.md).")
            else:
                text.append(f"A linear probe recovers {factor} from a sampled z at only "
                            f"{fmt_num(acc)} (from mu(x): {fmt_num(acc_mu)}), against a "
                            f"{fmt_num(base)} baseline: neither z nor mu(x) encodes it.")
    text.extend(f"{factor} was not probed: {reason}." for factor, reason in sorted(skipped.items()))
    return "Known factors: " + " ".join(text)


def explain(report: Report) -> list[str]:
    """Paragraphs of the "What this means" section, generated from ``report``'s figures.

    Args:
        report: Any report; missing figures are named as missing.

    Returns:
        Plain-text paragraphs (no markup), in reading order.
    """
    paragraphs = [resolve(ref)(report) for spec in display_order(report_kind(report))
                  for ref in spec.explanation]
    diagnostics = sorted(k for k in report.errors if not is_render_error(k))
    if diagnostics:
        paragraphs.append(f"Some diagnostics failed ({join_names(diagnostics)}), so "
                          "what they would have said is missing here; their messages are under "
                          "'Diagnostics that failed'.")
    return [p for p in paragraphs if p]
