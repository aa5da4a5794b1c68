"""Every knob of an analysis, with its default, its meaning and its validation.

The settings are stored verbatim in ``report.json`` so that every figure records
how it was produced. Construction only stores values; :meth:`Settings.validate`
checks them (the scikit-learn convention) and is called by ``analyze``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from collapse_diag.exceptions import InvalidParameterError, invalid_parameter

__all__ = ["Settings", "DTYPES", "MAX_SEED", "UPPER_BOUNDS"]

#: Decoder precisions ``Settings.dtype`` accepts (names of torch dtypes).
DTYPES = ("float32", "bfloat16", "float16")

#: Largest seed: every generator of the run (torch, numpy, scikit-learn) takes it.
MAX_SEED = 2**32 - 1
#: Largest value of each numeric setting (inclusive). Beyond it a threshold makes every
#: figure trivially true or false, or a count exhausts memory; every float must be finite.
UPPER_BOUNDS: dict[str, float] = {
    "batch_size": 2**31 - 1,
    "max_examples": 2**62,
    "kl_eps": 100.0,
    "active_threshold": 100.0,
    "mi_samples": 10_000,
    "mi_max_components": 10**9,
    "mi_saturation_margin": 100.0,
    "swap_bootstrap": 10**6,
    "per_dim_swap_examples": 10**9,
    "prior_samples": 10_000,
    "flatness_threshold": 1e6,
    "fisher_samples": 10_000,
    "fisher_rank_rtol": 1.0,
    "fisher_rank_atol": 1e6,
    "swap_windows": 10**6,
    "per_dim_swap_max_examples": 2**62,
    "negligible_swap_nats": 1e6,
    "fisher_bootstrap": 10**6,
    "nll_samples": 10**6,
    "nll_examples": 2**62,
    "mi_minibatch_size": 10**9,
    "mi_bootstrap": 10**6,
}


@dataclass(frozen=True)
class Settings:
    """Settings of one analysis run.

    Attributes:
        seed: Seed of the run's one random generator.
        batch_size: Examples per encoder / decoder call.
        max_examples: Analyse a seeded random subset of at most this many inputs
            (``None``: all).
        device: Torch device the model runs on (``"cpu"``, ``"cuda"``, ...).
        kl_eps: A dimension is collapsed when its mean KL is below this (nats);
            also the per-input threshold of the (eps, delta)-collapse rate
            (Lucas et al. 2019).
        active_threshold: A unit is active when Var_x[mu_d(x)] >= this (Burda et al. 2015).
        mi_samples: z samples per input in the mutual-information estimator.
        mi_max_components: Most inputs the MI estimator uses; larger sets are
            subsampled (seeded) so its cost stays O(mi_max_components^2 * D).
        mi_saturation_margin: An MI estimate within this many nats of its ceiling
            log(N) is flagged as saturated.
        swap_bootstrap: Bootstrap resamples for the swap-delta confidence interval.
        confidence: Level of every confidence interval.
        alpha: Significance level of the decoder-sensitivity tests; also the
            family-wise error of the per-dimension swap intervals (simultaneous
            over the dimensions and the rounds).
        per_dim_swap_examples: Inputs in round 1 of the per-dimension swap (0: off);
            later rounds double it (see ``per_dim_swap_max_examples``). Each input
            costs ``latent_dim + 1`` decoder rows in round 1 (its own code and one
            per swapped coordinate): 128 * 33 rows is about 2 passes per input for
            a 32-dim model on 2,000 inputs.
        prior_samples: Prior draws per input for likelihood flatness and E_p log p(x|z).
        flatness_threshold: An input's likelihood is flat in z when the std over
            prior draws of log p(x|z) is below this many nats (per observation).
            The default 0.3 ~ sqrt(0.1) matches ``fisher_rank_atol``: for a locally
            linear log-likelihood, Var_{z~N(0,I)} log p(x|z) ~ sum of its Fisher
            eigenvalues, so a flat input has no direction reaching 0.1.
        fisher_samples: Posterior draws per input for the Fisher information of z.
        fisher_rank_rtol: An eigenvalue of the latent Fisher matrix counts toward
            ``identifiable_dims`` when it is >= this times the largest one...
        fisher_rank_atol: ...and >= this absolute floor (nats^2 per unit z^2).
            The floor is relative to the prior's precision, 1 (z is measured in
            prior standard deviations for a learned prior): by the
            Laplace approximation the posterior variance along an eigenvector is
            about 1 / (1 + lambda), so lambda < 0.1 means the likelihood narrows
            the prior by under 10%: practically flat, not identifiable.
        diagnostics: Names of the diagnostics to run (``None``: all). The verdict
            runs whenever kl and activity do (``analysis.VERDICT_INPUTS``).
        per_dim_swap_max_examples: Budget of the adaptive per-dimension swap:
            rounds of fresh inputs (``per_dim_swap_examples``, then doubling) stop
            once every informative dimension is decided or this many inputs are
            used (``None``: all analysed inputs). At most ``budget * (D + 1)``
            decoder rows; later rounds decode only the undecided dimensions.
        negligible_swap_nats: Cap of the negligible-effect threshold of the
            per-dimension swap: a dimension is ``ignored`` only when the upper
            bound of its swap delta is at most
            ``min(negligible_swap_nats, negligible_swap_fraction * I(x; z_d))``.
        negligible_swap_fraction: Relative part of that threshold: a decoder that
            fully used z_d would show a mean delta of at least I(x; z_d).
        fisher_bootstrap: Bootstrap resamples (over inputs) of the Fisher
            information, for the intervals of its eigenvalues and diagonal.
        nll_samples: K, codes drawn from q(z|x) per input for the importance-weighted
            NLL bound (Burda et al. 2016). Costs K decoder rows per input of the
            NLL subsample: the default 100 on 200 inputs is 20,000 rows (10 decoder
            passes over 2,000 inputs). He et al. (2019) use K = 500; check
            ``nll_convergence`` in the report to see whether K was enough.
        nll_examples: Inputs in the seeded NLL subsample (``None``: all). -ELBO,
            NLL, PPL, rate and distortion are all computed on it; the standard
            error of the NLL falls as 1 / sqrt(nll_examples).
        mi_minibatch_size: Batch size of He et al. (2019)'s minibatch MI estimator
            (``mi_minibatch``). That estimate cannot exceed log(mi_minibatch_size):
            it is biased low and given only to compare with published tables.
        mi_bootstrap: Bootstrap resamples (over inputs with their z samples) for the
            intervals on the mutual information, per-dimension MI and marginal KL;
            0 leaves the intervals out. Costs O(mi_bootstrap * N * D), no model calls.
        dtype: Precision of the decoder passes: ``"float32"`` (default), or
            ``"bfloat16"`` / ``"float16"`` under ``torch.autocast`` (matrix
            products and convolutions in the low precision, reductions such as
            log-softmax kept in float32 by autocast, every figure accumulated in
            float64). The encoder pass always runs in the model's own precision.
        swap_windows: Sequential latents only: the T steps are cut into this many
            consecutive windows (``min(swap_windows, T)``; window k covers steps
            ``[floor(k T / W), floor((k + 1) T / W))``) for the swap test per time
            window (``summary.swap_delta_by_window``). Costs ``W + 1`` decoder rows per
            input of the window swap.
    """

    seed: int = 0
    batch_size: int = 64
    max_examples: int | None = None
    device: str = "cpu"
    kl_eps: float = 0.01
    active_threshold: float = 0.01
    mi_samples: int = 4
    mi_max_components: int = 10_000
    mi_saturation_margin: float = 0.5
    swap_bootstrap: int = 2000
    confidence: float = 0.95
    alpha: float = 0.05
    per_dim_swap_examples: int = 128
    prior_samples: int = 16
    flatness_threshold: float = 0.3
    fisher_samples: int = 1
    fisher_rank_rtol: float = 1e-3
    fisher_rank_atol: float = 0.1
    diagnostics: tuple[str, ...] | None = field(default=None)
    per_dim_swap_max_examples: int | None = None
    negligible_swap_nats: float = 0.01
    negligible_swap_fraction: float = 0.1
    fisher_bootstrap: int = 200
    nll_samples: int = 100
    nll_examples: int | None = 200
    mi_minibatch_size: int = 32
    mi_bootstrap: int = 1000
    dtype: str = "float32"
    swap_windows: int = 4

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
        """Check every value; return ``self`` so calls can be chained.

        Raises:
            InvalidParameterError: naming the setting, the allowed range and the value.
        """
        ints_min = {
            "batch_size": 1,
            "mi_samples": 1,
            "mi_max_components": 2,
            "swap_bootstrap": 0,
            "per_dim_swap_examples": 0,
            "prior_samples": 2,
            "fisher_samples": 1,
            "fisher_bootstrap": 0,
            "nll_samples": 1,
            "mi_minibatch_size": 2,
            "mi_bootstrap": 0,
            "swap_windows": 1,
        }
        for name, low in ints_min.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise invalid_parameter(name, where, f"an int >= {low}", value)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not (
                0 <= self.seed <= MAX_SEED):
            raise invalid_parameter("seed", where, f"an int in [0, {MAX_SEED}]", self.seed)
        for name in ("max_examples", "per_dim_swap_max_examples", "nll_examples"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < 1):
                raise invalid_parameter(name, where, "None or an int >= 1", value)
        positives = (
            "kl_eps",
            "active_threshold",
            "mi_saturation_margin",
            "flatness_threshold",
            "fisher_rank_rtol",
            "negligible_swap_nats",
        )
        for name in positives:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise invalid_parameter(name, where, "a float > 0", value)
        if not isinstance(self.fisher_rank_atol, (int, float)) or self.fisher_rank_atol < 0:
            raise invalid_parameter(
                "fisher_rank_atol", where, "a float >= 0", self.fisher_rank_atol
            )
        for name in ("confidence", "alpha", "negligible_swap_fraction"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0 < value < 1:
                raise invalid_parameter(name, where, "a float in (0, 1)", value)
        for name, high in UPPER_BOUNDS.items():
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value <= high):
                raise invalid_parameter(name, where, f"finite and <= {high:g}", value)
        if self.dtype not in DTYPES:
            raise invalid_parameter("dtype", where, f"one of {list(DTYPES)}", self.dtype)
        if not isinstance(self.device, str) or not self.device:
            raise invalid_parameter("device", where, "a torch device string", self.device)
        return self

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form, as stored under ``settings`` in report.json."""
        out = dataclasses.asdict(self)
        if out["diagnostics"] is not None:
            out["diagnostics"] = list(out["diagnostics"])
        return out
