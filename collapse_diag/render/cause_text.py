"""The "why" paragraphs of "What this means": the cause of collapse and the remedies it suggests.

Built from ``dimensions[d].cause``, ``kl_refined``, ``kl_encoder_refined_inputs`` and
the summary's ``collapse_cause`` and ``amortization_gap`` (rule:
collapse_diag/diagnostics/cause.py, docs/statuses.md), so a sentence names a cause
only for the dimensions that have it. Remedies are worded as options, one short
paragraph per cause present.
"""

from __future__ import annotations

from collapse_diag.render.tables import fmt_num, join_names
from collapse_diag.report.report import Report
from collapse_diag.report.schema import DIMENSION_KEY as D
from collapse_diag.report.schema import SUMMARY_KEY as S
from collapse_diag.report.values import dim_column, dim_labels, finite

__all__ = ["MEANING", "REMEDIES", "cause_text", "remedies_text"]

#: What each cause says about a dimension, in the order the explanation lists them.
MEANING = dict(
    inference="the encoder lags: it outputs the prior, while the decoder's own posterior "
                 "q* does put information there (inference collapse, He et al. 2019)",
    model="the decoder's own posterior q* is also the prior and the likelihood is flat in "
             "them: no encoder could put information there (model collapse: "
             "non-identifiability, Wang, Blei & Cunningham 2021)",
    decoder="the encoder writes x into them but the decoder ignores them",
    objective="the encoder carries much more information than the decoder's own posterior "
                 "wants (as a KL floor such as free bits forces)",
    undetermined="the intervals do not decide the cause",
)

#: Standard fixes per cause (options, with their papers).
REMEDIES = dict(
    inference="For inference collapse, the fixes act on the encoder: aggressive encoder "
                 "updates before each decoder step (He et al. 2019), semi-amortized "
                 "inference that refines q per input as this report did (SA-VAE, Kim et al. "
                 "2018), or an encoder pre-trained (e.g. as an autoencoder) before the VAE "
                 "objective. These may close the gap; they do not change what the decoder can "
                 "use.",
    model="For model collapse, no encoder can help; the options act on the model or the "
             "objective: KL annealing (Bowman et al. 2016), free bits (Kingma et al. 2016), "
             "word dropout for text decoders (Bowman et al. 2016), a weaker decoder (shorter "
             "context, fewer layers), or a constraint that keeps the KL above a floor "
             "(delta-VAE, Razavi et al. 2019). Which one helps depends on the data; none is "
             "guaranteed to.",
    decoder="For dimensions the decoder ignores, the options are a decoder that depends on "
               "z more directly (z fed at every step, word dropout), or fewer latent "
               "dimensions; the encoder's information there costs KL and buys nothing.",
    objective="For an encoder forced above what the decoder's posterior wants, consider a "
                 "lower KL floor (free bits target) or annealing it away at the end of "
                 "training; the amortization gap shows what the forcing costs in ELBO.",
)


def _dims_by_cause(report: Report) -> dict[str, list[str]]:
    labels = dim_labels(report)
    out: dict[str, list[str]] = {}
    for label, row in zip(labels, report.dimensions):
        cause = row.get(D.cause) if isinstance(row, dict) else None
        if isinstance(cause, str):
            out.setdefault(cause, []).append(label)
    return out


def cause_text(report: Report) -> str | None:
    """The model's cause and the dimensions of each cause, with the gap it is read from."""
    cause = report.summary.get(S.collapse_cause)
    if not isinstance(cause, str):
        return None
    groups = _dims_by_cause(report)
    gap = finite(report.summary.get(S.amortization_gap))
    ci = report.summary.get(S.amortization_gap_ci) or [None, None]
    gap_text = ""
    if gap is not None:
        gap_text = (f" Refining q per input against the fixed decoder gains {fmt_num(gap)} nats "
                    f"of ELBO on average (the amortization gap")
        low, high = finite(ci[0]), finite(ci[1])
        gap_text += (f", {fmt_num(low)} to {fmt_num(high)})." if low is not None
                     and high is not None else ").")
    if cause == "none":
        return ("Cause of collapse: none. No dimension is shown unused, and where the encoder "
                "carries information the decoder's own posterior wants it too." + gap_text)
    parts = []
    kl_ref = dim_column(report, D.kl_refined)
    labels = dim_labels(report)
    for name, meaning in MEANING.items():
        if name not in groups:
            continue
        dims = groups[name]
        text = f"{join_names(dims)}: {meaning}"
        if name == "inference":
            wanted = [kl_ref[labels.index(d)] for d in dims]
            text += f" (q* carries {join_names(fmt_num(w) for w in wanted)} nats)"
        if name == "objective" and gap is not None:
            text += f"; this costs up to {fmt_num(gap)} nats of ELBO per input"
        parts.append(text)
    head = {"mixed": "Causes of collapse (several)",
            "undetermined": "Cause of collapse: undetermined"}.get(
                cause, f"Cause of collapse: {cause}")
    return f"{head}. " + "; ".join(parts) + "." + gap_text


def remedies_text(report: Report) -> str | None:
    """One short paragraph per cause present (options, not promises); ``None`` if none."""
    groups = _dims_by_cause(report)
    paragraphs = [REMEDIES[c] for c in REMEDIES if c in groups]
    return "\n\n".join(paragraphs) if paragraphs else None
