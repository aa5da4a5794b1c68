"""Every knob of an analysis, with its default, its meaning and its validation.

The settings are stored verbatim in ``report.json`` so that every figure records
how it was produced. Construction only stores values; :meth:`Settings.validate`
checks them (the scikit-learn convention) and is called by ``analyze``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from collapse_diag.exceptions import InvalidParameterError, invalid_parameter

__all__ = ["Settings", "DTYPES"]

#: Decoder precisions ``Settings.dtype`` accepts (names of torch dtypes).
DTYPES = ("float32", "bfloat16", "float16")


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
        alpha: Significance level of the decoder-sensitivity tests.
        per_dim_swap_examples: Inputs in the per-dimension swap subsample. Each
            costs ``latent_dim + 1`` decoder rows (its own code and one per swapped
            coordinate): 128 * 33 rows is about 2 passes per input for a 32-dim
            model on 2,000 inputs.
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
        diagnostics: Names of the diagnostics to run (``None``: all).
        mi_bootstrap: Bootstrap resamples (over inputs with their z samples) for the
            intervals on the mutual information, per-dimension MI and marginal KL;
            0 leaves the intervals out. Costs O(mi_bootstrap * N * D), no model calls.
        dtype: Precision of the decoder passes: ``"float32"`` (default), or
            ``"bfloat16"`` / ``"float16"`` under ``torch.autocast`` (matrix
            products and convolutions in the low precision, reductions such as
            log-softmax kept in float32 by autocast, every figure accumulated in
            float64). The encoder pass always runs in the model's own precision.
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
    mi_bootstrap: int = 1000
    dtype: str = "float32"

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
            "mi_bootstrap": 0,
        }
        for name, low in ints_min.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise invalid_parameter(name, where, f"an int >= {low}", value)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise invalid_parameter("seed", where, "an int >= 0", self.seed)
        if self.max_examples is not None and (
            isinstance(self.max_examples, bool)
            or not isinstance(self.max_examples, int)
            or self.max_examples < 1
        ):
            raise invalid_parameter("max_examples", where, "None or an int >= 1", self.max_examples)
        positives = (
            "kl_eps",
            "active_threshold",
            "mi_saturation_margin",
            "flatness_threshold",
            "fisher_rank_rtol",
        )
        for name in positives:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise invalid_parameter(name, where, "a float > 0", value)
        if not isinstance(self.fisher_rank_atol, (int, float)) or self.fisher_rank_atol < 0:
            raise invalid_parameter(
                "fisher_rank_atol", where, "a float >= 0", self.fisher_rank_atol
            )
        for name in ("confidence", "alpha"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0 < value < 1:
                raise invalid_parameter(name, where, "a float in (0, 1)", value)
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
