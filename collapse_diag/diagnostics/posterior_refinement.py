"""The decoder's own posterior per input, and the amortization gap (Cremer, Li & Duvenaud 2018).

For a seeded subsample of M inputs (``Settings.refine_examples``), a local Gaussian
``q*(z|x) = N(m, diag(exp(s)))`` per input is refined by maximising the ELBO of the
*fixed* decoder::

    ELBO(q; x) = E_{z ~ q} log p(x|z) - KL(q || p(z|x's prior))

with the reparameterisation ``z = m + exp(s / 2) * eps`` and K common draws of eps
per input (``Settings.refine_samples``), fixed for every step (a sample-average
objective: common random numbers, so the steps compare like with like). The K draws
of each input and dimension are standardised to mean 0 and variance 1 (moment
matching, K >= 2), which makes the estimate exact for a log-likelihood quadratic
in z (the linear Gaussian VAE). The KL is in closed form.

Optimiser: Adam (Kingma & Ba 2015, betas 0.9/0.999; each (start, input) row's
step size halved whenever its ELBO fell) with learning rate ``Settings.refine_lr``
on (m, s) only, for at most ``Settings.refine_steps`` steps, run twice per input:
from the encoder's q (m = mu(x), s = logvar(x)) and from the prior. Each start
keeps the parameters with the largest ELBO seen (so q* is never worse than its
start on the optimised draws), and the start with the larger ELBO is kept. Both
starts and the K draws of a block of inputs are stacked into one decoder call per
step. An input has *converged* when its ELBO changed by less than ``REL_TOL`` *
max(1, |ELBO|) over the last ``WINDOW`` steps; a block stops early when every
start of its inputs has converged or is behind the input's other start by more than
its recent gain, extrapolated over the remaining steps, could make up (a race: the
prior start of a healthy model's input need not run to the end once the encoder's
start has converged above it). Gradients are taken with ``torch.autograd.grad``
with respect to (m, s) alone: the model's parameters and their ``.grad`` are
untouched, and no global RNG is used.

Figures, on K *fresh* draws per input (independent of those optimised on, so the
gap is not inflated by fitting the draws), the same draws for both posteriors::

    amortization_gap(x)   = ELBO(q*; x) - ELBO(q_phi; x)          >= 0 up to noise
    approximation_gap(x)  = L_K(x) - ELBO(q*; x)   (L_K: the IW bound of the likelihood
                                                    diagnostic, on the inputs both used)
    kl_refined_d          = mean_x KL(q*(z_d|x) || p(z_d))

Intervals: Student-t over inputs, at ``confidence`` for the gaps, simultaneous over
the D dimensions (error ``alpha / D``) for the per-dimension figures. Sequential
latents (N(0, I) prior) are refined on the flattened code of size T * D; a
dimension's figures sum its steps, as the encoder's ``kl`` does.

References:
    Cremer, Li & Duvenaud (2018), "Inference Suboptimality in Variational Autoencoders", ICML.
    He et al. (2019), "Lagging Inference Networks and Posterior Collapse in VAEs", ICLR.
    Kim et al. (2018), "Semi-Amortized Variational Autoencoders", ICML.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from collapse_diag.config.settings import Settings
from collapse_diag.diagnostics.estimators.swap_decision import t_interval
from collapse_diag.diagnostics.kl import gaussian_kl
from collapse_diag.exceptions import DiagnosticError
from collapse_diag.io.data import Batch, num_examples, subsample_indices, take, to_device
from collapse_diag.model.decoding import MAX_ROWS_PER_CALL
from collapse_diag.model.encodings import Encodings
from collapse_diag.model.protocol import (
    LOG_LIKELIHOOD,
    ModelInfo,
    call_log_likelihood,
    check_finite,
)
from collapse_diag.runtime import distributed
from collapse_diag.runtime.progress import progress
from collapse_diag.runtime.rng import KeyedNormals

__all__ = ["REL_TOL", "WINDOW", "RefinedPosteriors", "refine_posteriors", "standardise"]

#: Convergence: relative ELBO change over the last :data:`WINDOW` steps below this.
REL_TOL = 1e-4
#: Steps over which the convergence rule looks back.
WINDOW = 10


def standardise(noise: np.ndarray) -> np.ndarray:
    """Moment-match draws ``(..., K, D)`` along K: mean 0, variance 1 (unchanged for K < 2)."""
    if noise.shape[-2] < 2:
        return noise
    centred = noise - noise.mean(axis=-2, keepdims=True)
    return centred / np.sqrt(np.square(centred).mean(axis=-2, keepdims=True))


def _torch_kl(m: torch.Tensor, s: torch.Tensor, pm: torch.Tensor, ps: torch.Tensor
              ) -> torch.Tensor:
    """Elementwise KL(N(m, e^s) || N(pm, e^ps)) (the formula of ``gaussian_kl``), differentiable."""
    t = ps - s
    return 0.5 * (t + torch.expm1(-t) + (m - pm) ** 2 * torch.exp(-ps))


@dataclass(frozen=True)
class RefinedPosteriors:
    """What the refinement found on its subsample (M inputs, D dimensions, nats).

    Attributes:
        examples: Indices of the refined inputs, ``(M,)``.
        mean, logvar: q*(z|x), ``(M, D)``.
        elbo_encoder: ELBO(q_phi; x) on the evaluation draws, ``(M,)``.
        elbo_refined: ELBO(q*; x) on the same draws, ``(M,)``.
        kl_refined: KL(q*(z_d|x) || p(z_d)) per input and dimension, ``(M, D)``.
        kl_encoder: KL(q_phi(z_d|x) || p(z_d)) on the same inputs, ``(M, D)``.
        converged: Inputs whose ELBO met the convergence rule, ``(M,)`` bool.
        from_prior: Inputs whose kept start was the prior, ``(M,)`` bool.
        steps_run: Most steps any block ran.
        decoder_rows: Rows decoded (forward and backward counted once each row).
    """

    examples: np.ndarray
    mean: np.ndarray
    logvar: np.ndarray
    elbo_encoder: np.ndarray
    elbo_refined: np.ndarray
    kl_refined: np.ndarray
    kl_encoder: np.ndarray
    converged: np.ndarray
    from_prior: np.ndarray
    steps_run: int
    decoder_rows: int

    def amortization_gap(self, confidence: float) -> tuple[float, float, float]:
        """Mean ELBO(q*) - ELBO(q_phi) over inputs and its Student-t interval at ``confidence``."""
        mean, _, low, high = t_interval(self.elbo_refined - self.elbo_encoder, 1.0 - confidence)
        return mean, low, high


def _block_size(samples: int) -> int:
    """Inputs refined together: 2 starts x K draws x inputs <= ``MAX_ROWS_PER_CALL`` rows."""
    return max(1, MAX_ROWS_PER_CALL // (2 * samples))


def _param_dtype(device: str) -> torch.dtype:
    return torch.float32 if str(device).startswith("mps") else torch.float64


def _elbo(model: Any, x_rep: Batch, info: ModelInfo, m: torch.Tensor, s: torch.Tensor,
          pm: torch.Tensor, ps: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """ELBO per (start, input): ``m, s`` ``(S, b, D)``, ``eps`` ``(K, b, D)`` -> ``(S, b)``.

    One decoder call on ``S * K * b`` rows ordered (start, draw, input); ``x_rep`` holds the
    b inputs tiled ``S * K`` times in that order.
    """
    z = m[:, None] + torch.exp(0.5 * s)[:, None] * eps[None]  # (S, K, b, D)
    n_start, k, b, d = z.shape
    ll = call_log_likelihood(model, x_rep, z.reshape(-1, d).to(info.dtype), finite=False)
    ll = ll.to(m.dtype).reshape(n_start, k, b)
    return ll.mean(dim=1) - _torch_kl(m, s, pm, ps).sum(dim=-1)


def _refine_block(model: Any, x: Batch, info: ModelInfo, settings: Settings,
                  mu: np.ndarray, logvar: np.ndarray, pmu: np.ndarray, plv: np.ndarray,
                  noise: np.ndarray, fresh: np.ndarray) -> dict[str, np.ndarray]:
    """Refine b inputs from both starts; evaluate q* and q_phi on the ``fresh`` draws."""
    device, dtype = settings.device, _param_dtype(settings.device)
    b, k = mu.shape[0], settings.refine_samples

    def t(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.ascontiguousarray(a), dtype=dtype).to(device)

    x_rep = to_device(take(x, torch.from_numpy(np.tile(np.arange(b), 2 * k))), device)
    pm, ps = t(pmu), t(plv)
    m = torch.stack([t(mu), pm.clone()]).requires_grad_(True)
    s = torch.stack([t(logvar), ps.clone()]).requires_grad_(True)
    eps = t(noise.transpose(1, 0, 2))  # (K, b, D)
    adam = _Adam((m, s), settings.refine_lr)
    history: list[torch.Tensor] = []
    best = (m.detach().clone(), s.detach().clone(), None)
    steps = 0
    with torch.enable_grad():
        for step in range(1, settings.refine_steps + 2):
            elbo = _elbo(model, x_rep, info, m, s, pm, ps, eps)
            check_finite(elbo.detach(), LOG_LIKELIHOOD, DiagnosticError)
            best = _keep_best(best, m, s, elbo.detach())
            history.append(elbo.detach())
            done = len(history) > WINDOW and bool(
                (_converged(history) | _behind(history, settings.refine_steps - step)).all())
            if step > settings.refine_steps or done:
                break
            steps = step
            gm, gs = torch.autograd.grad(elbo.sum(), [m, s])
            if len(history) > 1:
                adam.halve(history[-1] < history[-2])
            adam.ascend((gm, gs))
    with torch.no_grad():
        m_best, s_best, final = best
        keep = final[1] > final[0]  # (b,): the prior's start did better
        conv = _converged(history) if len(history) > WINDOW else torch.zeros_like(final, dtype=bool)
        index = keep.long()[None, :, None].expand(1, b, m.shape[-1])
        m_star = m_best.gather(0, index)[0]
        s_star = s_best.gather(0, index)[0]
        both_m = torch.stack([m_star, t(mu)])
        both_s = torch.stack([s_star, t(logvar)])
        evaluated = _elbo(model, x_rep, info, both_m, both_s, pm, ps,
                          t(fresh.transpose(1, 0, 2)))
    host = evaluated.detach().to("cpu", torch.float64)
    check_finite(host, LOG_LIKELIHOOD, DiagnosticError)
    keep_np = keep.cpu().numpy()
    return {
        "mean": m_star.detach().cpu().double().numpy(),
        "logvar": s_star.detach().cpu().double().numpy(),
        "elbo_refined": host[0].numpy(), "elbo_encoder": host[1].numpy(),
        "converged": conv.gather(0, keep.long()[None])[0].cpu().numpy(),
        "from_prior": keep_np, "steps": np.full(b, steps),
    }


class _Adam:
    """Adam (Kingma & Ba 2015, betas 0.9 / 0.999, eps 1e-8) ascending, one step size per row.

    The step size of a (start, input) row is halved whenever that row's ELBO fell from one
    step to the next (so a deterministic objective settles instead of oscillating at the
    scale of the learning rate). A few lines instead of ``torch.optim.Adam``, whose import
    costs seconds (torch._dynamo) and which has one learning rate for all rows.
    """

    def __init__(self, params: tuple[torch.Tensor, ...], lr: float) -> None:
        self.params = params
        self.lr = torch.full(params[0].shape[:2], float(lr), dtype=params[0].dtype,
                             device=params[0].device)
        self.m1 = [torch.zeros_like(p) for p in params]
        self.m2 = [torch.zeros_like(p) for p in params]
        self.t = 0

    def halve(self, fell: torch.Tensor) -> None:
        """Halve the step size of the rows whose ELBO fell, ``fell`` ``(S, b)`` bool."""
        self.lr = torch.where(fell, 0.5 * self.lr, self.lr)

    def ascend(self, grads: tuple[torch.Tensor, ...]) -> None:
        """One Adam step up the gradients (in place, outside autograd)."""
        self.t += 1
        c1, c2 = 1 - 0.9**self.t, 1 - 0.999**self.t
        with torch.no_grad():
            for p, g, m1, m2 in zip(self.params, grads, self.m1, self.m2):
                m1.mul_(0.9).add_(g, alpha=0.1)
                m2.mul_(0.999).addcmul_(g, g, value=0.001)
                p.add_(self.lr[..., None] * (m1 / c1) / ((m2 / c2).sqrt() + 1e-8))


def _keep_best(best: tuple, m: torch.Tensor, s: torch.Tensor, elbo: torch.Tensor) -> tuple:
    """Per (start, input) row, the parameters with the largest ELBO so far and that ELBO."""
    best_m, best_s, best_elbo = best
    if best_elbo is None:
        return m.detach().clone(), s.detach().clone(), elbo
    better = elbo > best_elbo
    pick = better[..., None]
    return (torch.where(pick, m.detach(), best_m), torch.where(pick, s.detach(), best_s),
            torch.where(better, elbo, best_elbo))


def _behind(history: list[torch.Tensor], remaining: int) -> torch.Tensor:
    """Per (start, input): this start cannot catch up with the input's other start.

    Its ELBO is below the other start's by more than its gain over the last
    :data:`WINDOW` steps, extrapolated linearly over the ``remaining`` steps (gains
    shrink as a start converges, so the extrapolation is generous to it).
    """
    now, before = history[-1], history[-1 - WINDOW]
    deficit = now.flip(0) - now
    return deficit > (now - before).clamp(min=0.0) * (remaining / WINDOW)


def _converged(history: list[torch.Tensor]) -> torch.Tensor:
    """Per (start, input): |ELBO_t - ELBO_{t-WINDOW}| < REL_TOL * max(1, |ELBO_t|)."""
    now, before = history[-1], history[-1 - WINDOW]
    return (now - before).abs() < REL_TOL * now.abs().clamp(min=1.0)


def refine_posteriors(model: Any, data: Batch, encodings: Encodings, info: ModelInfo,
                      settings: Settings, generator: torch.Generator,
                      examples: np.ndarray | None = None,
                      show_progress: bool = False) -> RefinedPosteriors:
    """Refine q*(z|x) on a seeded subsample (module docstring: objective, optimiser, rule).

    Random draws (CPU): from ``generator``, the subsample (unless ``examples`` is given),
    then two keyed streams of ``(M, K, D)`` normals (``"refine"`` for the optimisation,
    ``"refine-eval"`` for the evaluation), so nothing depends on ``batch_size`` or on
    the number of processes (under ``torchrun`` each refines its shard of the subsample).

    Decoder cost: at most ``M * 2K * (refine_steps + 1)`` rows forward and backward
    plus ``M * 2K`` forward rows for the evaluation, in calls of at most
    ``MAX_ROWS_PER_CALL`` rows.

    Args:
        model: Protocol model on ``settings.device``, in eval mode.
        data: The N analysed inputs on the CPU, in the order of ``encodings``.
        encodings: Encoder outputs of ``data``.
        info: Result of ``check_model``.
        settings: Uses ``refine_examples``, ``refine_samples``, ``refine_steps``,
            ``refine_lr``, ``device``.
        generator: The diagnostic's seeded CPU generator.
        examples: Indices of the inputs to refine (default: a seeded subsample of
            ``refine_examples``).
        show_progress: Progress bar on stderr.

    Raises:
        DiagnosticError: data and encodings disagree, the decoder returned NaN/Inf, or
            the latents are sequential with a conditional prior (not supported).
    """
    if encodings.sequential:
        if info.has_prior:
            raise DiagnosticError(
                "the refinement diagnostic does not support sequential latents with a "
                "conditional prior prior(x, z) yet (the prior moves with every draw of z).")
        from collapse_diag.diagnostics.sequence_fisher import FlatModel

        flat_info = dataclasses.replace(info, latent_dim=info.steps * info.latent_dim,
                                        steps=None, has_mask=False)
        return refine_posteriors(FlatModel(model, info.steps, info.latent_dim), data,
                                 encodings.flat(), flat_info, settings, generator,
                                 examples, show_progress)
    n, dim, k = encodings.n_examples, encodings.latent_dim, settings.refine_samples
    if num_examples(data) != n:
        raise DiagnosticError(f"data holds {num_examples(data)} inputs but encodings {n}.")
    sub = (subsample_indices(n, settings.refine_examples, generator).numpy()
           if examples is None else np.asarray(examples, dtype=np.int64))
    mu, logvar = encodings.mu[sub], encodings.logvar[sub]
    pmu, plv = (p[sub] for p in encodings.prior())
    opt = KeyedNormals(generator, "refine", len(sub), (k, dim))
    fresh = KeyedNormals(generator, "refine-eval", len(sub), (k, dim))
    block = _block_size(k)
    keys = ("mean", "logvar", "elbo_refined", "elbo_encoder", "converged", "from_prior", "steps")

    def compute(first: int, stop: int) -> tuple[np.ndarray, ...]:
        parts: dict[str, list[np.ndarray]] = {key: [] for key in keys}
        starts = range(first, stop, block)
        for lo in progress(starts, "refinement", len(starts), show_progress):
            hi = min(lo + block, stop)
            x = take(data, torch.from_numpy(sub[lo:hi]))
            out = _refine_block(model, x, info, settings, mu[lo:hi], logvar[lo:hi],
                                pmu[lo:hi], plv[lo:hi], standardise(opt.rows(lo, hi)),
                                standardise(fresh.rows(lo, hi)))
            for key in keys:
                parts[key].append(out[key])
        return tuple(np.concatenate(parts[key]) if parts[key] else
                     np.empty((0, dim) if key in ("mean", "logvar") else 0) for key in keys)

    got = dict(zip(keys, distributed.map_shard(len(sub), compute)))
    steps = int(got["steps"].max()) if len(got["steps"]) else 0
    return RefinedPosteriors(
        examples=sub, mean=got["mean"], logvar=got["logvar"],
        elbo_encoder=got["elbo_encoder"], elbo_refined=got["elbo_refined"],
        kl_refined=gaussian_kl(got["mean"], got["logvar"], pmu, plv),
        kl_encoder=gaussian_kl(mu, logvar, pmu, plv),
        converged=got["converged"].astype(bool), from_prior=got["from_prior"].astype(bool),
        steps_run=steps, decoder_rows=int((2 * k * (got["steps"] + 2)).sum()),
    )
