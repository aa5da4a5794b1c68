"""The "What this means" paragraph of a discrete latent (the discrete diagnostic), with remedies."""

from __future__ import annotations

from collapse_diag.diagnostics.registry import report_kind
from collapse_diag.render.tables import fmt_num, fmt_p
from collapse_diag.report.report import Report
from collapse_diag.report.schema import PROVENANCE_KEY as PK
from collapse_diag.report.schema import SUMMARY_KEY as SK
from collapse_diag.report.values import finite

__all__ = ["CODEBOOK_REMEDIES", "discrete_text"]

#: What to try against codebook collapse, with the sources.
CODEBOOK_REMEDIES = (
    "re-initialise dead codes from recent encoder outputs, or initialise the codebook by "
    "k-means on them (Dhariwal et al. 2020, Jukebox; Zeghidour et al. 2021, SoundStream)",
    "update the codebook by exponential moving averages instead of its gradient (van den "
    "Oord et al. 2017, appendix; Razavi et al. 2019, VQ-VAE-2)",
    "lower the commitment weight beta (0.25 in van den Oord et al. 2017), so the encoder is "
    "not pulled onto the few codes it already uses",
    "look codes up in a factorised, low-dimensional, l2-normalised space (Yu et al. 2022, "
    "ViT-VQGAN)",
)


def _codes(report: Report) -> str:
    s = report.summary
    k = report.provenance.get(PK.codebook_size)
    mi, ceiling = finite(s.get(SK.discrete_mi)), finite(s.get(SK.discrete_mi_ceiling))
    text = [f"This model's latent is a map of {report.latent_dim} codes from a codebook of "
            f"{k}. The encoder is deterministic, so the information the codes carry about the "
            f"input is exactly their entropy: I(x; c) = H(c) = {fmt_num(mi)} nats of at most "
            f"{fmt_num(ceiling)} (min(L log K, log N))."]
    if s.get(SK.codebook_perplexity) is not None:
        text.append(f"Over every position the codebook is used like "
                    f"{fmt_num(s[SK.codebook_perplexity])} equally used codes (perplexity "
                    f"exp(H)); {s.get(SK.codebook_used)} codes are used, "
                    f"{s.get(SK.codebook_dead)} never on these inputs (a code used at the "
                    f"rate 1/K shows up with {1 - float(report.settings.get('alpha', 0.05)):.0%}"
                    f" probability in {s.get(SK.dead_code_inputs_needed)} inputs).")
    if s.get(SK.codebook_collapse):
        text.append("This is codebook collapse, the form posterior collapse takes with "
                    "vector quantisation: a few codes carry the data and the rest of the "
                    "codebook gets no gradient, so it never comes back. Remedies: "
                    + "; ".join(CODEBOOK_REMEDIES) + ".")
    elif s.get(SK.codebook_collapse) is None and s.get(SK.codebook_perplexity) is not None:
        text.append("Whether the codebook collapsed cannot be told from so few inputs: give "
                    "more, so that the code positions seen reach a tenth of the codebook.")
    return " ".join(text)


def _categorical(report: Report) -> str:
    s = report.summary
    mi = s.get(SK.discrete_mi)
    joint = (f"I(x; c) of the whole code is {fmt_num(mi)} nats (exact, of at most "
             f"{fmt_num(s.get(SK.discrete_mi_ceiling))} = log N)" if mi is not None else
             "I(x; c) of the whole code is not computed (more than 4096 joint states); each "
             "variable's is in the table")
    return (f"This model's latent is {report.latent_dim} categorical variables. Their KL to "
            f"the prior is {fmt_num(s.get(SK.discrete_kl))} nats per input (closed form) and "
            f"{joint}. A variable whose KL is below kl_eps is collapsed: its posterior is the "
            "prior for every input. Against it: anneal the Gumbel-softmax temperature slowly "
            "(Jang et al. 2017; Maddison et al. 2017), or keep a minimum rate per variable "
            "(free bits, Kingma et al. 2016).")


def discrete_text(report: Report) -> str | None:
    """What the discrete figures say, with the decoder's swap test; ``None`` for Gaussians."""
    kind = report_kind(report)
    if kind == "gaussian":
        return None
    body = _codes(report) if kind == "codes" else _categorical(report)
    delta, p = (finite(report.summary.get(k)) for k in (SK.discrete_swap_delta,
                                                         SK.discrete_swap_p_value))
    if delta is not None:
        reads = p is not None and p < float(report.settings.get("alpha", 0.05)) and delta > 0
        body += (f" Giving each input another input's code {'lowers' if reads else 'changes'}"
                 f" log p(x|c) by {fmt_num(delta)} nats on average (p {fmt_p(p)}): the decoder "
                 f"{'reads' if reads else 'shows no detectable use of'} the codes.")
    return body
