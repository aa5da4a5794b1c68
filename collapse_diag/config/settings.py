"""Every knob of an analysis, declared once: default, help, range, choices.

Each :class:`Settings` field is one :func:`~collapse_diag.config.declare.setting` declaration.
Its :class:`~collapse_diag.config.declare.Setting` is the single source of the help text (the
class docstring's ``Attributes`` section, the CLI ``--help``, the settings table of
docs/cli.md), of the allowed range (:meth:`Settings.validate` and the CLI option types)
and of the choices. Adding a setting is one declaration at the end of :class:`Settings`
(then ``python -m collapse_diag_cli.setting_options docs/cli.md`` updates the docs).

The settings are stored verbatim in ``report.json`` so that every figure records
how it was produced. Construction only stores values; :meth:`Settings.validate`
checks them (the scikit-learn convention) and is called by ``analyze``.
"""

from __future__ import annotations

import dataclasses
import textwrap
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from collapse_diag.config.declare import SETTING_KEY, Setting, setting
from collapse_diag.exceptions import InvalidParameterError

__all__ = ["Settings", "Setting", "setting", "SETTINGS", "DTYPES", "MAX_SEED", "UPPER_BOUNDS"]

#: Decoder precisions ``Settings.dtype`` accepts (names of torch dtypes).
DTYPES = ("float32", "bfloat16", "float16")

#: Largest seed: every generator of the run (torch, numpy, scikit-learn) takes it.
MAX_SEED = 2**32 - 1


@dataclass(frozen=True)
class Settings:
    """Settings of one analysis run.

    Each field is one :func:`setting` declaration; the ``Attributes`` section below is
    generated from them (:data:`SETTINGS`).
    """

    seed: int = setting(
        0, "Seed of the run's one random generator: same seed and inputs, same numbers.",
        details="It also seeds scikit-learn, which takes 32 bits.", low=0, high=MAX_SEED,
        expected=f"an int in [0, {MAX_SEED}]")
    batch_size: int = setting(
        64, "Examples per encoder/decoder call (lower it if the device runs out of memory).",
        low=1, high=2**31 - 1)
    max_examples: int | None = setting(
        None, "Analyse a seeded random subset of at most this many inputs.",
        none_means="all inputs", low=1, high=2**62)
    device: str = setting(
        "cpu", "Torch device the model runs on: cpu, cuda, cuda:1, mps.",
        expected="a torch device string")
    kl_eps: float = setting(
        0.01, "A dimension is collapsed when its mean KL is below this (nats); also the "
        "per-input threshold of the (eps, delta)-collapse rate (Lucas et al. 2019).",
        low=0, low_open=True, high=100.0)
    active_threshold: float = setting(
        0.01, "A unit is active when Var_x[mu_d(x)] is at least this (Burda et al. 2015).",
        low=0, low_open=True, high=100.0)
    mi_samples: int = setting(
        4, "z samples per input in the mutual-information estimator (fewer when inputs "
        "used x mi_samples exceeds mi_max_queries).", low=1, high=10_000)
    mi_max_components: int = setting(
        10_000, "Most inputs the MI estimator uses; larger sets are subsampled (seeded).",
        details="Its cost stays O(mi_max_components^2 * D).", low=2, high=10**9)
    mi_saturation_margin: float = setting(
        0.5, "An MI estimate within this many nats of its ceiling log(N) is flagged as "
        "saturated.", low=0, low_open=True, high=100.0)
    swap_bootstrap: int = setting(
        2000, "Bootstrap resamples for the swap-delta confidence interval.", low=0, high=10**6)
    confidence: float = setting(
        0.95, "Level of every confidence interval.", low=0, low_open=True, high=1,
        high_open=True)
    alpha: float = setting(
        0.05, "Significance level of the decoder-sensitivity tests; also the family-wise "
        "error of the per-dimension swap intervals.",
        details="The intervals are simultaneous over the dimensions and the rounds.",
        low=0, low_open=True, high=1, high_open=True)
    per_dim_swap_examples: int = setting(
        128, "Inputs in round 1 of the per-dimension swap (0: off); later rounds double it "
        "until every dimension is decided.",
        details="Each input costs latent_dim + 1 decoder rows in round 1 (its own code and "
        "one per swapped coordinate): 128 * 33 rows is about 2 passes per input for a "
        "32-dim model on 2,000 inputs. See ``per_dim_swap_max_examples``.",
        low=0, high=10**9)
    prior_samples: int = setting(
        16, "Prior draws per input for likelihood flatness and E_p log p(x|z).",
        low=2, high=10_000)
    flatness_threshold: float = setting(
        0.3, "An input's likelihood is flat in z when the std over prior draws of "
        "log p(x|z) is below this many nats (per observation).",
        details="The default 0.3 ~ sqrt(0.1) matches ``fisher_rank_atol``: for a locally "
        "linear log-likelihood, Var_{z~N(0,I)} log p(x|z) ~ sum of its Fisher "
        "eigenvalues, so a flat input has no direction reaching 0.1.",
        low=0, low_open=True, high=1e6)
    fisher_samples: int = setting(
        1, "Posterior draws per input for the Fisher information of z.", low=1, high=10_000)
    fisher_rank_rtol: float = setting(
        1e-3, "An eigenvalue of the latent Fisher matrix counts toward identifiable_dims "
        "when it is at least this times the largest one (and fisher_rank_atol).",
        low=0, low_open=True, high=1.0)
    fisher_rank_atol: float = setting(
        0.1, "Absolute floor of the eigenvalues counted toward identifiable_dims (nats^2 "
        "per unit z^2).",
        details="The floor is relative to the prior's precision, 1 (z is measured in "
        "prior standard deviations for a learned prior): by the Laplace approximation "
        "the posterior variance along an eigenvector is about 1 / (1 + lambda), so "
        "lambda < 0.1 means the likelihood narrows the prior by under 10%: practically "
        "flat, not identifiable.", low=0, high=1e6)
    diagnostics: tuple[str, ...] | None = setting(
        None, "Names of the diagnostics to run.", none_means="all",
        details="The verdict runs whenever kl and activity do (``analysis.VERDICT_INPUTS``). "
        "The names are checked against the diagnostics ``analyze`` knows.")
    per_dim_swap_max_examples: int | None = setting(
        None, "Budget of the adaptive per-dimension swap, in inputs: its rounds stop once "
        "every informative dimension is decided or this many inputs are used.",
        none_means="all analysed inputs",
        details="At most ``budget * (D + 1)`` decoder rows; later rounds decode only the "
        "undecided dimensions.", low=1, high=2**62)
    negligible_swap_nats: float = setting(
        0.01, "Cap of the negligible-effect threshold of the per-dimension swap (nats).",
        details="A dimension is ``ignored`` only when the upper bound of its swap delta is "
        "at most ``min(negligible_swap_nats, negligible_swap_fraction * I(x; z_d))``.",
        low=0, low_open=True, high=1e6)
    negligible_swap_fraction: float = setting(
        0.1, "Relative part of that threshold: a dimension is ignored only when its swap "
        "delta's upper bound is also at most this times I(x; z_d).",
        details="A decoder that fully used z_d would show a mean delta of at least I(x; z_d).",
        low=0, low_open=True, high=1, high_open=True)
    fisher_bootstrap: int = setting(
        200, "Bootstrap resamples (over inputs) of the Fisher information, for the "
        "intervals of its eigenvalues and diagonal.", low=0, high=10**6)
    nll_samples: int = setting(
        100, "K to start the importance-weighted NLL bound with (K decoder rows per input); "
        "doubled while the bound still moves, up to nll_max_samples.",
        details="Burda et al. (2016). The default 100 on 200 inputs is 20,000 rows (10 "
        "decoder passes over 2,000 inputs). He et al. (2019) use K = 500; "
        "``nll_converged`` and ``nll_convergence`` in the report say whether K was enough.",
        low=1, high=10**6)
    nll_examples: int | None = setting(
        200, "Inputs in the seeded subsample for -ELBO, NLL, PPL, rate and distortion.",
        none_means="all inputs",
        details="The standard error of the NLL falls as 1 / sqrt(nll_examples).",
        low=1, high=2**62)
    mi_minibatch_size: int = setting(
        32, "Batch size of He et al. (2019)'s minibatch MI estimator (mi_minibatch).",
        details="That estimate cannot exceed log(mi_minibatch_size), so it is biased low "
        "for informative codes, and it reads above 0 when the posteriors equal the prior "
        "(biased high near 0): given only to compare with published tables.",
        low=2, high=10**9)
    mi_bootstrap: int = setting(
        1000, "Bootstrap resamples for the intervals on the mutual information, "
        "per-dimension MI and marginal KL (0: no intervals).",
        details="Costs O(mi_bootstrap * N * D), no model calls.", low=0, high=10**6)
    dtype: str = setting(
        "float32", "Precision of the decoder passes (bfloat16 / float16 under "
        "torch.autocast); figures are accumulated in float64 either way (docs/performance.md).",
        details="Matrix products and convolutions run in the low precision, reductions "
        "such as log-softmax stay in float32 under autocast. The encoder pass always runs "
        "in the model's own precision.", choices=DTYPES)
    swap_windows: int = setting(
        4, "Sequential latents only: the T steps are cut into this many consecutive "
        "windows for the swap test per time window.",
        details="``min(swap_windows, T)`` windows; window k covers steps "
        "``[floor(k T / W), floor((k + 1) T / W))`` (``summary.swap_delta_by_window``). "
        "Costs ``W + 1`` decoder rows per input of the window swap.", low=1, high=10**6)
    refine_examples: int | None = setting(
        32, "Inputs in the seeded subsample whose posterior q*(z|x) is refined against the "
        "fixed decoder (amortization gap, kl_refined, cause).",
        none_means="all inputs",
        details="Taken from the likelihood diagnostic's subsample when it ran, so that the "
        "approximation gap is paired per input. The intervals narrow as 1 / sqrt(M).",
        low=2, high=2**62)
    refine_samples: int = setting(
        4, "K common draws of z per input in the refined ELBO (moment-matched; K decoder rows "
        "per input, start and step).", low=1, high=10_000)
    refine_steps: int = setting(
        100, "Most Adam steps of the refinement (it stops earlier once every input has "
        "converged).", low=1, high=10**6)
    refine_lr: float = setting(
        0.05, "Learning rate of the refinement's Adam optimiser (on the posterior mean and "
        "log-variance).", low=0, low_open=True, high=10.0)
    objective_kl_ratio: float = setting(
        2.0, "Cause 'objective': the encoder's KL in a used dimension exceeds this many times "
        "what the decoder's own posterior wants (kl_refined), beyond the intervals.",
        low=1, low_open=True, high=1000.0)
    decoded_samples: int = setting(
        256, "Codes drawn from the aggregate posterior and decoded with the model's "
        "generate(z) for the output-diversity figure (What the decoder makes of z).",
        details="One decoder pass per code (a greedy decode for text), in batches of "
        "batch_size, sharded under torchrun; the differ fraction's exact interval narrows "
        "as 1 / sqrt(decoded_samples).", low=2, high=100_000)
    decoded_examples: int = setting(
        6, "Inputs shown beside their reconstruction, and codes (prior draws, other inputs' "
        "codes) decoded side by side, in What the decoder makes of z.", low=1, high=64)
    decoded_steps: int = setting(
        7, "Points along each traversal (per dimension) and homotopy (between two inputs' "
        "codes) in What the decoder makes of z.", low=2, high=33)
    decoded_dims: int = setting(
        10, "Dimensions traversed in What the decoder makes of z, largest KL first.",
        low=1, high=1024)
    decoded_bootstrap: int = setting(
        1000, "Bootstrap resamples of the continuous-output variance ratio's interval.",
        low=0, high=10**6)
    nll_max_samples: int = setting(
        400, "Budget of K for the NLL bound: K is doubled from nll_samples while the last "
        "doubling changed the NLL by at least its standard error, up to this.",
        details="The change is paired per input (the bound with K against the first K/2 of "
        "the same draws), so a converged model costs no extra draws; one that never settles "
        "costs up to this many decoder rows per subsampled input, and the report says "
        "``nll_converged: false``. At most nll_samples when lower.", low=1, high=10**6)
    mi_max_queries: int = setting(
        10_000, "Most z draws the MI estimator evaluates in all (inputs used x draws per "
        "input): above it each input gets fewer than mi_samples draws, at least 1.",
        details="Draws per input ``S = max(1, min(mi_samples, mi_max_queries // M))`` "
        "(``mi_samples_used`` in the report), so the full-vector cost is O(M * max(M, "
        "mi_max_queries) * D) rather than O(M^2 * mi_samples * D). The bootstrap interval "
        "resamples each input with its draws, so it includes the draws' noise.",
        low=1, high=10**9)

    @classmethod
    def from_kwargs(cls, where: str = "analyze", **kwargs: Any) -> Settings:
        """Build settings from keyword arguments, rejecting unknown names.

        Raises:
            InvalidParameterError: an unknown setting name.
        """
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(kwargs) - names)
        if unknown:
            raise InvalidParameterError(
                f"{where} got unknown setting(s) {unknown}; valid settings are {sorted(names)}."
            )
        if kwargs.get("diagnostics") is not None:
            kwargs["diagnostics"] = tuple(kwargs["diagnostics"])
        return cls(**kwargs).validate(where)

    def validate(self, where: str = "analyze") -> Settings:
        """Check every value against its declaration; return ``self`` so calls can be chained.

        Raises:
            InvalidParameterError: naming the setting, the allowed range and the value.
        """
        for name, declared in SETTINGS.items():
            declared.check(getattr(self, name), where)
        return self

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form, as stored under ``settings`` in report.json."""
        out = dataclasses.asdict(self)
        if out["diagnostics"] is not None:
            out["diagnostics"] = list(out["diagnostics"])
        return out


def _declarations() -> dict[str, Setting]:
    """Each field's :class:`Setting`, completed with its name, kind, optionality and default."""
    hints = typing.get_type_hints(Settings)
    out: dict[str, Setting] = {}
    for f in dataclasses.fields(Settings):
        # A field declared without setting() gets no help and no range, and
        # tests/test_setting_options.py fails.
        declared = f.metadata.get(SETTING_KEY, Setting(help=""))
        args = typing.get_args(hints[f.name])
        optional = type(None) in args
        base = next(a for a in args if a is not type(None)) if optional else hints[f.name]
        out[f.name] = dataclasses.replace(declared, name=f.name, kind=typing.get_origin(base)
                                          or base, optional=optional, default=f.default)
    return out


#: Setting name -> its complete declaration, in field order (read-only).
SETTINGS: Mapping[str, Setting] = MappingProxyType(_declarations())

#: Largest value of each bounded numeric setting (inclusive), from the declarations.
UPPER_BOUNDS: Mapping[str, float] = MappingProxyType({
    name: s.high for name, s in SETTINGS.items() if s.high is not None and not s.high_open})


def _attributes_section() -> str:
    lines = ["", "", "    Attributes:"]
    for s in SETTINGS.values():
        text = " ".join(part for part in (
            s.help, f"``None``: {s.none_means}." if s.none_means else "", s.details) if part)
        lines += textwrap.wrap(f"{s.name}: {text}", 92, initial_indent=" " * 8,
                               subsequent_indent=" " * 12, break_on_hyphens=False)
    return "\n".join(lines) + "\n"


Settings.__doc__ = (Settings.__doc__ or "").rstrip() + _attributes_section()
