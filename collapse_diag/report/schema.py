"""Every field of ``report.json``, declared once (schema version 2).

A :class:`Field` names a key, its unit, what it means and which diagnostic
writes it. The writers (the ``section()`` of each diagnostic in
collapse_diag/diagnostics/, assembled by collapse_diag/analysis.py) and the
readers (render/, plots, cli/terminal.py, demo, compare, trajectory) use these
names; tests/test_schema.py fails when a real ``analyze`` run writes, or a
reader reads, a key that is not declared here, and when docs/report-schema.md
is stale (its tables are generated from here: collapse_diag/report/schema_doc.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "DIMENSION",
    "DIMENSION_KEY",
    "DISTRIBUTION_KEY",
    "DISTRIBUTIONS",
    "Field",
    "Keys",
    "NLL_CONVERGENCE",
    "NLL_CONVERGENCE_KEY",
    "PROBE",
    "PROBE_KEY",
    "PROVENANCE",
    "PROVENANCE_KEY",
    "RENAMED_STATUSES",
    "STATUSES",
    "SUMMARY",
    "SUMMARY_KEY",
    "SWAP_WINDOW",
    "SWAP_WINDOW_KEY",
    "DIVERSITY_WINDOW",
    "DIVERSITY_WINDOW_KEY",
    "TOP_LEVEL",
    "TOP_LEVEL_KEY",
    "VERDICTS",
    "CAUSES",
]

#: The per-dimension statuses (``dimensions[d].status``, keys of ``summary.status_counts``),
#: in the order every reader shows them: from "the decoder uses it" to "collapsed".
#: The rule that assigns them is collapse_diag/diagnostics/verdict.py (docs/statuses.md).
STATUSES = ("used", "undetermined", "ignored", "uninformative", "collapsed")

#: The verdicts (``summary.verdict``), from "the decoder uses every dimension" to "collapsed";
#: ``codebook collapse`` for vector-quantised latents only (collapse_diag/diagnostics/codebook.py).
#: The rule is collapse_diag/diagnostics/verdict.py (docs/statuses.md).
VERDICTS = ("healthy", "undetermined", "partial", "collapsed", "codebook collapse")

#: Why a dimension is (or is not) unused (``dimensions[d].cause``; rule in
#: collapse_diag/diagnostics/cause.py, table in docs/statuses.md). ``summary.collapse_cause``
#: takes these and ``mixed`` (several causes decided).
CAUSES = ("none", "inference", "model", "decoder", "objective", "undetermined")

#: Statuses renamed since schema version 1: old name -> current name.
RENAMED_STATUSES = {"active": "used"}


@dataclass(frozen=True)
class Field:
    """One report field.

    Attributes:
        name: The JSON key.
        unit: Unit or kind of the value (``nats``, ``count``, ``label``, ...).
        writer: The diagnostic (entry of ``analysis.DIAGNOSTICS``) that writes it;
            ``None`` for fields ``analyze`` itself writes.
        description: What the value is (the text docs/report-schema.md shows).
    """

    name: str
    unit: str
    writer: str | None
    description: str


def _f(name: str, unit: str, writer: str | None, description: str) -> Field:
    return Field(name, unit, writer, description)


def _index(fields: tuple[Field, ...]) -> dict[str, Field]:
    return {f.name: f for f in fields}


#: ``summary``: model-level figures.
SUMMARY: dict[str, Field] = _index((
    _f("kl", "nats", "kl",
       "mean over inputs of KL(q(z|x) || p(z)), summed over dimensions"),
    _f("collapsed_units", "count", "kl",
       "dimensions with mean KL < `kl_eps`"),
    _f("active_units", "count", "activity",
       "dimensions with Var_x[mu_d(x)] >= `active_threshold` (Burda et al. 2015)"),
    _f("signal_counts", "count per signal", "activity",
       '`{"clear": n, "noisy": n, "weak": n}`: dimensions per `signal`'),
    _f("mutual_information", "nats", "information",
       "I_q(x; z), aggregate posterior over the analysed set (estimated; may be negative through"
       " noise)"),
    _f("marginal_kl", "nats", "information",
       "KL(q(z) || p(z)) = `kl` - `mutual_information` (Hoffman & Johnson 2016)"),
    _f("mi_ceiling", "nats", "information",
       "log(M), M = inputs used by the MI estimator; no estimate can exceed it"),
    _f("mi_examples", "count", "information",
       "M (= N unless N > `mi_max_components`)"),
    _f("mi_samples_used", "count", "information",
       "z draws per input in the MI estimator: `mi_samples`, fewer (at least 1) when M x "
       "`mi_samples` exceeds `mi_max_queries`"),
    _f("mi_saturated", "boolean", "information",
       "estimate within `mi_saturation_margin` of the ceiling"),
    _f("mi_negative", "boolean", "information",
       "estimate below 0 (estimator noise; reported, not clipped)"),
    _f("mutual_information_ci", "[nats, nats]", "information",
       "[lo, hi] percentile-bootstrap interval of `mutual_information` at `confidence` "
       "(`mi_bootstrap` resamples of the inputs with their z samples, mixture components fixed; "
       "docs/reading-the-report.md); null when `mi_bootstrap` = 0"),
    _f("marginal_kl_ci", "[nats, nats]", "information",
       "[lo, hi] interval of `marginal_kl`, from the same resamples of KL_i - h_i"),
    _f("mi_indistinguishable_from_zero", "boolean", "information",
       "the MI interval's lower end is <= 1e-9 nats (0 up to the estimator's rounding): no "
       "information about x detectable with these inputs; null without intervals"),
    _f("mi_indistinguishable_from_ceiling", "boolean", "information",
       "the MI interval's upper end reaches `mi_ceiling` - `mi_saturation_margin`: the figure "
       "may be limited by M, read it as a lower bound; null without intervals"),
    _f("swap_delta", "nats", "sensitivity",
       "mean_i [log p(x_i|z_i) - log p(x_i|z_pi(i))], z_i ~ q(z|x_i), pi a seeded derangement"),
    _f("swap_delta_per_token", "nats per token", "sensitivity",
       "the same per token (null without `num_tokens`)"),
    _f("swap_ci", "[nats, nats]", "sensitivity",
       "[low, high] bootstrap CI of `swap_delta` at `confidence`"),
    _f("swap_p_value", "p-value", "sensitivity",
       "one-sided Wilcoxon signed-rank p-value, H1: own z is preferred"),
    _f("swap_significant", "boolean", "sensitivity",
       "`swap_p_value` < `alpha`"),
    _f("per_dim_swap_examples", "count", "sensitivity",
       "inputs the adaptive per-dimension swap decoded (the most any dimension used)"),
    _f("per_dim_swap_rounds", "count", "sensitivity",
       "rounds run (sizes `per_dim_swap_examples` setting, doubling, up to the budget)"),
    _f("per_dim_swap_budget", "count", "sensitivity",
       "B = min(N, `per_dim_swap_max_examples`): the most inputs the rounds may use"),
    _f("per_dim_swap_error", "probability", "sensitivity",
       "two-sided error of each per-dimension interval, alpha / (R D) (Bonferroni over R planned"
       " rounds and D dimensions)"),
    _f("decoder_use_counts", "count per decision", "sensitivity",
       '`{"used": n, "ignored": n, "undetermined": n}` over `dimensions[d].decoder_use`'),
    _f("reconstruction", "nats", "sensitivity",
       "E_x E_{z~q(z|x)} log p(x|z)"),
    _f("reconstruction_per_token", "nats per token", "sensitivity",
       "the same per token (null without `num_tokens`)"),
    _f("prior_reconstruction", "nats", "identifiability",
       "E_x E_{z~p(z)} log p(x|z)"),
    _f("prior_reconstruction_per_token", "nats per token", "identifiability",
       "the same per token (null without `num_tokens`)"),
    _f("prior_gap", "nats", "identifiability",
       "`reconstruction` - `prior_reconstruction`"),
    _f("likelihood_flatness", "nats", "identifiability",
       "mean over inputs of std_k log p(x|z_k), z_k ~ p(z), k = 1..`prior_samples`"),
    _f("likelihood_flatness_per_token", "nats per token", "identifiability",
       "the same per token (null without `num_tokens`)"),
    _f("flat_fraction", "fraction", "identifiability",
       "fraction of inputs whose std (nats per observation) < `flatness_threshold`"),
    _f("fisher_eigenvalues", "nats^2 per prior variance", "identifiability",
       "eigenvalues (descending) of E[g g^T], g = d/dz log p(x|z), z ~ q(z|x)"),
    _f("identifiable_dims", "count", "identifiability",
       "eigenvalues >= max(`fisher_rank_rtol` * largest, `fisher_rank_atol`) (point estimates)"),
    _f("fisher_rank_cutoff", "nats^2 per prior variance", "identifiability",
       "the cut-off `identifiable_dims` counts against: max(`fisher_rank_rtol` * largest"
       " eigenvalue, `fisher_rank_atol`)"),
    _f("fisher_eigenvalues_ci", "[[nats^2 per prior variance] x2]", "identifiability",
       "[[low, high], ...]: percentile bootstrap (over inputs, `fisher_bootstrap` resamples, "
       "level `confidence`) interval of each eigenvalue, sorted within each resample"),
    _f("fisher_contraction", "fraction", "identifiability",
       "1 - 1/(1 + lambda) per eigenvalue: the share by which one observation narrows the prior "
       "along that direction"),
    _f("fisher_contraction_ci", "[[fraction] x2]", "identifiability",
       "[[low, high], ...] of it, from `fisher_eigenvalues_ci`"),
    _f("fisher_directions", "label per direction", "identifiability",
       "grade per eigen-direction: `identifiable` / `weak` / `inconclusive` / `flat` "
       "(docs/statuses.md)"),
    _f("identifiability_counts", "count per grade", "identifiability",
       '`{"identifiable": n, "weak": n, "inconclusive": n, "flat": n}` over `fisher_directions`'),
    _f("status_counts", "count per status", "verdict",
       '`{"used": n, "ignored": n, "undetermined": n, "collapsed": n, "uninformative": n}`'),
    _f("verdict", "label", "verdict",
       "`healthy` / `undetermined` / `partial` / `collapsed` (rule in docs/statuses.md)"),
    _f("verdict_reason", "text", "verdict",
       "one sentence a person can read"),
    _f("probes", "accuracy (fraction) per factor", "probes",
       '`{factor: {"accuracy", "baseline", "dimensions": [int], "accuracy_mu", "folds"}}` when '
       "inputs carry labels: `accuracy` is the cross-validated accuracy of a linear probe on one"
       " seeded posterior sample z = mu + sigma * eps per input (the code the decoder receives),"
       " `accuracy_mu` the same probe on mu(x), `baseline` the majority-class share, "
       "`dimensions` those whose one-dimensional probe beats the baseline by 0.05"),
    _f("probes_skipped", "text per factor", "probes",
       "`{factor: reason}` for factors that cannot be probed (one class, a class seen once)"),
    _f("neg_elbo", "nats", "likelihood",
       "-ELBO = `rate` + `distortion`, nats per input, on the NLL subsample"),
    _f("neg_elbo_per_token", "nats per token", "likelihood",
       "sum of -ELBO over the subsample / its total tokens (null without `num_tokens`)"),
    _f("nll", "nats", "likelihood",
       "importance-weighted bound on -log p(x) (Burda et al. 2016): mean over the subsample of "
       "-(logsumexp_k log w_k - log K), log w_k = log p(x|z_k) + log p(z_k) - log q(z_k|x), z_k "
       "~ q(z|x), float64"),
    _f("nll_se", "nats", "likelihood",
       "standard error of `nll` over inputs, std(ddof=1) / sqrt(`nll_examples`) (null for one "
       "input)"),
    _f("nll_per_token", "nats per token", "likelihood",
       "total NLL / total tokens of the subsample (null without `num_tokens`)"),
    _f("nll_samples", "count", "likelihood",
       "K, codes drawn per input (setting `nll_samples`)"),
    _f("nll_examples", "count", "likelihood",
       "inputs in the seeded NLL subsample (min(N, setting `nll_examples`))"),
    _f("nll_convergence", "nats per sample count", "likelihood",
       '`{"samples": [1, 10, 100, ..., K], "nll": [...], "nll_se": [...]}`: the bound with the '
       "first K' of the same draws"),
    _f("nll_converged", "boolean", "likelihood",
       "the doubling of K stopped because the last doubling changed the NLL by less than its "
       "standard error (`nll_change` < `nll_change_se`); false: the budget `nll_max_samples` "
       "stopped it first (read `nll` as an upper bound still falling); null: K = 1 with no "
       "doubling allowed"),
    _f("nll_change", "nats", "likelihood",
       "NLL with K/2 minus NLL with K, paired per input (the first half of the same draws)"),
    _f("nll_change_se", "nats", "likelihood",
       "standard error of `nll_change` over inputs (0 for one input)"),
    _f("ppl", "perplexity (exp of nats per token)", "likelihood",
       "exp(`nll_per_token`) (null without `num_tokens`)"),
    _f("rate", "nats", "likelihood",
       "R = mean KL(q(z|x) || p(z)) over the NLL subsample (Alemi et al. 2018; equals `kl` when "
       "the subsample is every input); for sequential latents with `prior(x, z)` or `posterior(x,"
       " z)`, the one-draw estimate mean_k log q(z_k|x) - log p(z_k|x) over the K ancestral "
       "draws (so `nll` at K = 1 equals `neg_elbo`)"),
    _f("distortion", "nats", "likelihood",
       "D = mean over the subsample of -(1/K) sum_k log p(x|z_k)"),
    _f("mi_minibatch", "nats", "likelihood",
       "He et al. (2019)'s minibatch MI over all N inputs in batches of `mi_minibatch_size` "
       "consecutive inputs, one code per input; at most log(`mi_minibatch_size`). Its bias "
       "depends on the regime: low when I(x; z) nears that cap, high near 0 (the posteriors "
       "equal the prior and it still reads > 0). For comparison with published tables only; "
       "`mutual_information` is the whole-set estimate"),
    _f("mi_minibatch_size", "count", "likelihood",
       "its batch size"),
    _f("amortization_gap", "nats", "refinement",
       "mean over the refined inputs of ELBO(q*) - ELBO(q_phi) (Cremer et al. 2018): q* the "
       "local Gaussian posterior refined against the fixed decoder, both ELBOs on the same fresh"
       " `refine_samples` draws"),
    _f("amortization_gap_ci", "[nats, nats]", "refinement",
       "[low, high] Student-t interval over inputs at `confidence`"),
    _f("approximation_gap", "nats", "refinement",
       "mean over the refined inputs of L_K(x) - ELBO(q*), L_K the IW bound of the likelihood "
       "diagnostic (null when it did not run)"),
    _f("approximation_gap_ci", "[nats, nats]", "refinement",
       "[low, high] Student-t interval over inputs at `confidence` (null without it)"),
    _f("refinement_examples", "count", "refinement",
       "M, inputs refined (min(N, `refine_examples`))"),
    _f("refinement_converged", "count", "refinement",
       "refined inputs whose ELBO changed by less than 1e-4 relative over the last 10 steps"),
    _f("refinement_steps", "count", "refinement",
       "most Adam steps any input ran (at most `refine_steps`)"),
    _f("collapse_cause", "label", "refinement",
       "`none` / `inference` / `model` / `decoder` / `objective` / `undetermined` / `mixed` "
       "(several decided): why the dimensions the report shows unused are unused (rule in "
       "docs/statuses.md)"),
    _f("cause_counts", "count per cause", "refinement",
       '`{"none": n, "inference": n, "model": n, "decoder": n, "objective": n, '
       '"undetermined": n}` over `dimensions[d].cause`'),
    _f("kl_by_step", "nats per step", "kl",
       "sequential latents: list over the T steps of the KL summed over dimensions, each "
       "dimension's masked mean over the inputs valid at that step (`dimensions[d].kl_by_step`"
       " summed over d; null at a step no input reaches); null for vector latents"),
    _f("swap_delta_by_window", "nats and p-value per window", "sensitivity",
       'sequential latents: list of `{"start", "stop", "swap_delta", "p_value", '
       '"examples"}`, '
       "one per time window (steps `start` .. `stop` - 1, 0-based; `min(swap_windows, T)` "
       "windows): mean over the paired inputs with a valid step in the window of log p(x|z) - "
       "log p(x|z with those steps from the partner's z), one-sided Wilcoxon p-value, inputs "
       "used; null for vector latents"),
    _f("swap_unpaired_inputs", "count", "sensitivity",
       "sequential latents: inputs with no other input of the same valid length (identical "
       "`latent_mask`), left out of every swap statistic; null for vector latents"),
    _f("codebook_counts", "count per code", "discrete",
       "codes: list over the K codebook entries of how often each is used, over every "
       "position of the analysed inputs; null for other latents"),
    _f("codebook_entropy", "nats", "discrete",
       "codes: H = -sum_k p_k log p_k of that usage; null for other latents"),
    _f("codebook_perplexity", "count", "discrete",
       "codes: exp(`codebook_entropy`), the number of equally used codes with that entropy "
       "(at most K); null for other latents"),
    _f("codebook_used", "count", "discrete",
       "codes: codebook entries used at least once; null for other latents"),
    _f("codebook_dead", "count", "discrete",
       "codes: entries never used on the analysed inputs (K - `codebook_used`); null for other"
       " latents"),
    _f("dead_code_usage_bound", "probability", "discrete",
       "codes: 1 - alpha^(1/(N L)): a code never seen in the N L draws has usage below this at "
       "confidence 1 - `alpha`; null for other latents"),
    _f("dead_code_inputs_needed", "count", "discrete",
       "codes: inputs needed to see a code of usage 1/K at least once with probability 1 - "
       "`alpha`: ceil(log(alpha) / log(1 - 1/K) / L); null for other latents"),
    _f("codebook_collapse", "boolean", "discrete",
       "codes: `codebook_perplexity` < 0.1 K (CODEBOOK_COLLAPSE_SHARE); null when N L < 0.1 K "
       "(the inputs cannot show more) or for other latents"),
    _f("discrete_kl", "nats", "discrete",
       "categorical: mean over inputs of sum_d KL(q(c_d|x) || p(c_d)), closed form; null for "
       "other latents"),
    _f("discrete_mi", "nats", "discrete",
       "codes or categorical: I(x; c) of the whole code, exact over the analysed inputs: H(code "
       "map) for a deterministic VQ encoder; enumerated over the K^D states for categorical "
       "(null when K^D > 4096)"),
    _f("discrete_mi_ceiling", "nats", "discrete",
       "codes or categorical: the most `discrete_mi` can be: min(L log K, log N) for codes, "
       "log N for categorical"),
    _f("discrete_swap_delta", "nats", "discrete",
       "codes or categorical: mean_i log p(x_i|c_i) - log p(x_i|c_pi(i)), pi a seeded "
       "derangement (categorical: c_i one draw of q(c|x_i))"),
    _f("discrete_swap_p_value", "p-value", "discrete",
       "codes or categorical: one-sided Wilcoxon signed-rank p-value of it"),
    _f("discrete_reconstruction", "nats", "discrete",
       "codes or categorical: mean log p(x|c) at the own codes"),
    _f("discrete_swap_inputs", "count", "discrete",
       "codes or categorical: inputs of the per-position swap (at most 256, seeded)"),
    _f("output_kind", "label", "decoded",
       "what the model's `generate(z)` returns: `tokens` (integer ids), `continuous` (the "
       "decoder's mean) or `unavailable` (no `generate`: every other field of this diagnostic "
       "is null)"),
    _f("output_diversity", "fraction", "decoded",
       "how much the decoded output changes with z, on `decoded_samples` seeded codes z_j ~ "
       "q(z) (aggregate posterior) against the decode at the mean of q(z): tokens, the mean "
       "share of tokens that change (token edit distance over the longer length); continuous,"
       " sum_p Var_j g_p(z_j) / sum_p Var_j x_p (the decoder mean's variance across the codes "
       "over that of the inputs they were drawn from); 0 when the decoder ignores z; null when"
       " the inputs are not comparable with the outputs"),
    _f("output_diversity_ci", "[fraction, fraction]", "decoded",
       "[low, high] percentile-bootstrap interval over the codes at `confidence` "
       "(`decoded_bootstrap` resamples; null when 0)"),
    _f("differ_fraction", "fraction", "decoded",
       "tokens: fraction of the decodes that differ at all from the decode at the mean of q(z)"
       "; null for continuous outputs"),
    _f("differ_fraction_ci", "[fraction, fraction]", "decoded",
       "[low, high] exact (Clopper-Pearson) binomial interval of it at `confidence`"),
    _f("decoded_samples", "count", "decoded",
       "M, codes decoded for `output_diversity` (setting `decoded_samples`)"),
    _f("distinct_1", "fraction", "decoded",
       "tokens: distinct unigrams / unigrams over the M decodes (Li et al. 2016; falls as M "
       "grows, compare at equal M); null for continuous outputs"),
    _f("distinct_2", "fraction", "decoded",
       "the same for bigrams"),
    _f("decoded_views", "decoded outputs", "decoded",
       '`{"reconstructions", "from_codes", "homotopy", "traversal", "shape"}`: what the '
       "report shows in What the decoder makes of z (text, or images rounded to 4 decimals of "
       "shape `shape`); docs/reading-the-report.md; sequential latents add `windows`: per time "
       "window, the shown other inputs' codes put into the mean of q(z) at its steps only"),
    _f("output_diversity_by_window", "fraction and interval per window", "decoded",
       'sequential latents: list of `{"start", "stop", "output_diversity", '
       '"output_diversity_ci"}`, one per time window (the windows of `swap_delta_by_window`): '
       "`output_diversity` of the same M codes varied only at the window's steps, the mean "
       "of q(z) elsewhere; 0 for a window the decoder does not read; null for vector latents "
       "or without `generate`"),
))

#: ``dimensions[d]``: one row per latent dimension.
DIMENSION: dict[str, Field] = _index((
    _f("index", "index", None,
       "d"),
    _f("kl", "nats", "kl",
       "mean over inputs of KL(q(z_d|x) || p(z_d))"),
    _f("kl_collapse_rate", "fraction", "kl",
       "fraction of inputs with KL_d(x) < `kl_eps` (Lucas et al. 2019)"),
    _f("mu_variance", "squared latent units", "activity",
       "Var_x[mu_d(x)]"),
    _f("posterior_variance", "squared latent units", "activity",
       "E_x[sigma_d^2(x)]"),
    _f("active", "boolean", "activity",
       "`mu_variance` >= `active_threshold`"),
    _f("signal", "label", "activity",
       "`weak` (Var mu < `active_threshold`) / `noisy` (E sigma^2 > Var mu) / `clear`"),
    _f("mutual_information", "nats", "information",
       "I(x; z_d), same estimator in one dimension"),
    _f("mutual_information_ci", "[nats, nats]", "information",
       "[lo, hi] bootstrap interval of the dimension's MI (same resamples as the summary's; not "
       "adjusted for the D dimensions); absent when `mi_bootstrap` = 0"),
    _f("mi_indistinguishable_from_zero", "boolean", "information",
       "the dimension's interval reaches 0 (lower end <= 1e-9 nats)"),
    _f("swap_delta", "nats", "sensitivity",
       "mean over the inputs the per-dimension swap used for d of log p(x|z) - log p(x|z with "
       "coordinate d from z_pi(i))"),
    _f("swap_ci", "[nats, nats]", "sensitivity",
       "[low, high]: the decision interval: Student-t intervals of the mean at error "
       "`per_dim_swap_error` after each round, intersected over the rounds so that a decision "
       "never reverts; it decides `decoder_use` and may exclude `swap_delta` (null bounds: not "
       "run / unbounded)"),
    _f("swap_estimate_ci", "[nats, nats]", "sensitivity",
       "[low, high]: the interval of `swap_delta`: bootstrap-t of the mean over all the inputs "
       "d used, at error `per_dim_swap_error`; simultaneous over the D dimensions at 1 - "
       "`alpha` at whatever round d stopped; always contains `swap_delta` (null bounds: not "
       "run / unbounded)"),
    _f("swap_examples", "count", "sensitivity",
       "inputs used for d (decided dimensions leave the rounds)"),
    _f("swap_threshold", "nats", "sensitivity",
       "negligible-effect threshold min(`negligible_swap_nats`, `negligible_swap_fraction` * "
       "I(x; z_d))"),
    _f("decoder_use", "label", "sensitivity",
       "`used` (low > 0) / `ignored` (high <= `swap_threshold`) / `undetermined`"),
    _f("swap_inputs_needed", "count", "sensitivity",
       "for an undetermined d: inputs likely to decide it at its observed mean and std; else "
       "null"),
    _f("swap_delta_per_token", "nats per token", "sensitivity",
       "the same per token (null without `num_tokens`)"),
    _f("swap_p_value", "p-value", "sensitivity",
       "one-sided Wilcoxon p-value of the per-dimension swap (uncorrected; reported, decides "
       "nothing)"),
    _f("swap_p_holm", "p-value", "verdict",
       "the same, Holm-corrected over the D dimensions (null when not computed)"),
    _f("fisher", "nats^2 per prior variance", "identifiability",
       "E_x E_{z~q} (d/dz_d log p(x|z))^2, z in prior standard deviations (as is for N(0, I))"),
    _f("fisher_ci", "[nats^2 per prior variance] x2", "identifiability",
       "[low, high] bootstrap interval of `fisher`"),
    _f("contraction", "fraction", "identifiability",
       "1 - 1/(1 + `fisher`)"),
    _f("contraction_ci", "[fraction, fraction]", "identifiability",
       "[low, high] of it"),
    _f("identifiability", "label", "identifiability",
       "grade of d from `fisher_ci`: `identifiable` / `weak` / `inconclusive` / `flat`"),
    _f("status", "label", "verdict",
       "`used` / `ignored` / `undetermined` / `collapsed` / `uninformative` (rule in "
       "docs/statuses.md)"),
    _f("kl_refined", "nats", "refinement",
       "mean over the refined inputs of KL(q*(z_d|x) || p(z_d)): the information the decoder's "
       "own posterior puts in d"),
    _f("kl_refined_ci", "[nats, nats]", "refinement",
       "[low, high] Student-t interval over inputs, simultaneous over the D dimensions at 1 - "
       "`alpha`"),
    _f("kl_encoder_refined_inputs", "nats", "refinement",
       "the encoder's mean KL(q_phi(z_d|x) || p(z_d)) on the same inputs (beside `kl_refined`)"),
    _f("kl_excess_low", "nats", "refinement",
       "lower end of the interval of KL_d - `objective_kl_ratio` * KL*_d on the refined inputs:"
       " above `kl_eps`, a used dimension's cause is `objective` (kept so `render --kl-eps`"
       " can re-derive the causes)"),
    _f("cause", "label", "refinement",
       "`none` / `inference` / `model` / `decoder` / `objective` / `undetermined` (rule in "
       "docs/statuses.md)"),
    _f("kl_by_step", "nats per step", "kl",
       "sequential latents: list over the T steps of the mean KL(q(z_t,d|x) || p(z_t,d|z_<t, "
       "x)) over the inputs valid at step t, nats (null at a step no input reaches); null for "
       "vector latents"),
    _f("mu_variance_by_step", "squared latent units per step", "activity",
       "sequential latents: Var_x[mu_t,d(x)] per step over the valid inputs; null for vector "
       "latents"),
    _f("posterior_variance_by_step", "squared latent units per step", "activity",
       "sequential latents: E_x[sigma_t,d^2(x)] per step over the valid inputs; null for "
       "vector latents"),
    _f("discrete_kl", "nats", "discrete",
       "categorical: mean over inputs of KL(q(c_d|x) || p(c_d)); null for other latents"),
    _f("discrete_mi", "nats", "discrete",
       "codes or categorical: I(x; c_d), exact: H(c_l) at VQ position l, mean_x KL(q(c_d|x) "
       "|| qbar_d) for a categorical variable"),
    _f("usage_perplexity", "count", "discrete",
       "codes or categorical: exp(H) of the aggregate code / class distribution at the "
       "position (at most K)"),
    _f("codes_used", "count", "discrete",
       "codes: distinct codebook entries at the position; null for other latents"),
    _f("discrete_swap_delta", "nats", "discrete",
       "codes or categorical: mean log p(x|c) - log p(x|c with position d from c_pi(i)) over "
       "the swapped inputs (null: position not tested, more than 64 positions)"),
    _f("discrete_swap_p_holm", "p-value", "discrete",
       "codes or categorical: its one-sided Wilcoxon p-value, Holm-corrected over the tested "
       "positions"),
))

#: ``distributions``: per-input values kept for plots and paired comparisons (length N,
#: or the NLL subsample's size for the likelihood's).
DISTRIBUTIONS: dict[str, Field] = _index((
    _f("swap_delta", "nats", "sensitivity",
       "per-input whole-vector swap delta"),
    _f("likelihood_std", "nats per observation", "identifiability",
       "per-input std over prior draws of log p(x|z) (nats per observation)"),
    _f("kl_per_input", "nats", "kl",
       "per-input total KL(q(z|x) || p(z))"),
    _f("nll_inputs", "input indices", "likelihood",
       "indices of the NLL subsample's inputs (length `nll_examples`), the order of the next "
       "two lists; `compare` pairs models on them"),
    _f("nll_per_input", "nats", "likelihood",
       "-L_K(x) per subsampled input (its mean is `nll`)"),
    _f("neg_elbo_per_input", "nats", "likelihood",
       "rate + distortion per subsampled input (its mean is `neg_elbo`)"),
))

#: ``summary.probes[factor]``: one linear probe per labelled factor.
PROBE: dict[str, Field] = _index((
    _f("accuracy", "fraction", "probes",
       "cross-validated accuracy of a linear probe on one seeded posterior sample z = mu + sigma"
       " * eps per input (the code the decoder receives)"),
    _f("accuracy_mu", "fraction", "probes", "the same probe on mu(x)"),
    _f("baseline", "fraction", "probes", "the majority-class share"),
    _f("dimensions", "dimension indices", "probes",
       "those whose one-dimensional probe beats the baseline by the probe margin"),
    _f("folds", "count", "probes", "cross-validation folds used"),
))

#: ``summary.nll_convergence``: the bound at growing sample counts.
NLL_CONVERGENCE: dict[str, Field] = _index((
    _f("samples", "count", "likelihood",
       "sample counts K' = 1, 10, 100, ... below `nll_samples`, `nll_samples`, then each "
       "doubled K"),
    _f("nll", "nats", "likelihood",
       "the bound with the first K' draws, one per entry of `samples`"),
    _f("nll_se", "nats", "likelihood", "its standard error over inputs (null for one input)"),
))

#: ``summary.swap_delta_by_window[j]``: one time window of a sequential latent.
SWAP_WINDOW: dict[str, Field] = _index((
    _f("start", "step", "sensitivity", "first step of the window (0-based)"),
    _f("stop", "step", "sensitivity", "one past its last step"),
    _f("swap_delta", "nats", "sensitivity",
       "mean log p(x|z) - log p(x|z with the window's steps from the partner's z)"),
    _f("p_value", "probability", "sensitivity", "one-sided Wilcoxon signed-rank p-value"),
    _f("examples", "count", "sensitivity", "paired inputs with a valid step in the window"),
))

#: ``summary.output_diversity_by_window[j]``: the decoded diversity per time window.
DIVERSITY_WINDOW: dict[str, Field] = _index((
    _f("start", "step", "decoded", "first step of the window (0-based)"),
    _f("stop", "step", "decoded", "one past its last step"),
    _f("output_diversity", "fraction", "decoded",
       "`output_diversity` (same measure, same M codes) with the codes varied at the window's "
       "steps only"),
    _f("output_diversity_ci", "[fraction, fraction]", "decoded",
       "its percentile-bootstrap interval at `confidence` (null when `decoded_bootstrap` is 0)"),
))

#: ``provenance``: how the report was produced (written by ``analyze``).
PROVENANCE: dict[str, Field] = _index((
    _f("created", "ISO 8601 time (UTC)", None, "when the report was made"),
    _f("model", "text", None, "class name of the model"),
    _f("n_examples_total", "count", None, "inputs given, before the `max_examples` subsample"),
    _f("distinct_inputs", "count", None, "analysed inputs that differ from each other (equal"
       " inputs count once): repeats add no evidence, and the minimum inputs apply to these"),
    _f("data_sha256", "hex digest", None, "SHA-256 of the analysed inputs (names, dtypes, shapes,"
       " bytes)"),
    _f("has_prior", "boolean", None, "the model has a learned prior p(z)"),
    _f("has_num_tokens", "boolean", None, "the model reports `num_tokens`"),
    _f("latent_steps", "count", None, "T for sequential latents (z of shape [B, T, D]); null for"
       " vector latents"),
    _f("latent_kind", "label", None, "`gaussian` / `codes` (vector-quantised) / `categorical`:"
       " which protocol the model follows (docs/model-protocol.md, 'Latent kinds')"),
    _f("codebook_size", "count", None, "K, codebook entries (`codes`) or classes per variable "
       "(`categorical`); null for Gaussian latents"),
    _f("labels", "text", None, "which known factors the probes used, in words"
       " (collapse_diag/io/labels.py)"),
    _f("method_map", "name -> spec", None, "the method map the model was seen through"
       " (`--map`, `collapse_diag.map_methods`), or null"),
    _f("rethresholded", "{from, to, not_rederived} | null", None,
       "set by `collapse-diag render --kl-eps ...` (collapse_diag/runs/rethreshold.py): the"
       " run's values of the changed thresholds (`from`), the new ones (`to`), and the figures"
       " left as the run computed them or set to null (`not_rederived`)"),
    _f("device", "text", None, "torch device the analysis ran on"),
    _f("versions", "text per package", None, "collapse_diag, python, torch, numpy versions"),
    _f("upgraded_from_schema", "version", None,
       "the report was read from this older schema version and upgraded"),
))

#: The keys of ``report.json`` itself.
TOP_LEVEL: dict[str, Field] = _index((
    _f("schema_version", "version", None, "version of this schema"),
    _f("collapse_diag_version", "version", None, "collapse-diag version that wrote the report"),
    _f("checkpoint", "{path, sha256, adapter} | null", None, "the file the model came from;"
       " with `factory` and `config_source` when an adapter chose the factory's config"
       " (a Lightning file's hyper_parameters, Hugging Face folders)"),
    _f("settings", "setting values", None, "every setting (collapse_diag/config/settings.py)"),
    _f("n_examples", "count", None, "N analysed inputs"),
    _f("latent_dim", "count", None, "D"),
    _f("summary", "fields", None, "model-level figures (SUMMARY)"),
    _f("dimensions", "rows", None, "one row per latent dimension (DIMENSION)"),
    _f("distributions", "lists", None, "per-input values kept for plots and paired "
       "comparisons (DISTRIBUTIONS)"),
    _f("errors", "text per failed part", None,
       "diagnostics (by name), plots (`plot:<name>`) and documents (`document:<format>`) "
       "that failed"),
    _f("warnings", "text", None,
       "report invariants the figures break (collapse_diag/report/invariants.py), one line "
       "each: `invariant: what breaks it`; empty when every relation holds"),
    _f("provenance", "fields", None, "versions, model, data hash, created time (PROVENANCE)"),
    _f("timings", "seconds per diagnostic", None, "not deterministic"),
))


class Keys:
    """The declared keys of one part of the report, as attributes.

    ``SUMMARY_KEY.kl == "kl"``; an undeclared name raises ``AttributeError`` at
    its first use, so a misspelt key fails loudly instead of rendering as
    "figure missing". Writers and readers spell report keys through these,
    never as string literals (tests/test_schema.py).
    """

    __slots__ = ("_part", "_names")

    def __init__(self, part: str, names: Iterable[str]) -> None:
        """``part`` names the JSON part in errors; ``names``: its keys (a dict of Fields too)."""
        object.__setattr__(self, "_part", part)
        object.__setattr__(self, "_names", frozenset(names))

    def __getattr__(self, name: str) -> str:
        if name in self._names:
            return name
        raise AttributeError(f"{name!r} is not a declared {self._part} key "
                             "(collapse_diag/report/schema.py)")

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("schema keys are read-only")

    def __dir__(self) -> list[str]:
        return sorted(self._names)


SUMMARY_KEY = Keys("summary", SUMMARY)
DIMENSION_KEY = Keys("dimensions[d]", DIMENSION)
DISTRIBUTION_KEY = Keys("distributions", DISTRIBUTIONS)
PROBE_KEY = Keys("summary.probes[factor]", PROBE)
NLL_CONVERGENCE_KEY = Keys("summary.nll_convergence", NLL_CONVERGENCE)
SWAP_WINDOW_KEY = Keys("summary.swap_delta_by_window[j]", SWAP_WINDOW)
DIVERSITY_WINDOW_KEY = Keys("summary.output_diversity_by_window[j]", DIVERSITY_WINDOW)
PROVENANCE_KEY = Keys("provenance", PROVENANCE)
TOP_LEVEL_KEY = Keys("report", TOP_LEVEL)
