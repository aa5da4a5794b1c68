"""The duck-typed model protocol and its up-front check.

A model needs no base class of ours. It must have::

    encode(x) -> (mu, logvar)          Tensors [batch, latent_dim]: q(z|x) = N(mu, exp(logvar))
    log_likelihood(x, z) -> Tensor[batch]   log p(x|z), summed over the observation

and may have::

    prior(x) -> (mu, logvar)           learned / conditional Gaussian prior (default N(0, I))
    posterior(x, z) -> (mu, logvar)    sequential latents only: q(z_t | x, z_<t) (ancestral.py)
    latent_mask(x) -> Tensor[batch, T]  sequential latents only: valid steps (bool)
    num_tokens(x) -> Tensor[batch]     size of each observation (for per-token figures)
    tokenize(lines) -> x               turns text lines into a batch (for ``--data file.txt``)
    generate(z, **kw) -> Tensor[batch, ...]  what the decoder makes of z: token ids
                                       ``[batch, length]`` (integer; 0 = padding after the end)
                                       or the decoder's mean (floating), for the report's
                                       "What the decoder makes of z" (:func:`call_generate`)
    detokenize(ids) -> list[str]       token ids ``[batch, length]`` as text

:func:`check_model` validates all of this once, on one small batch, and names
the method, the expected and the actual value, and a fix. The ``call_*``
helpers are the checked calls every diagnostic goes through.

A point-mass posterior (zero variance, or a standard deviation below 1e-4 for most
entries: :data:`POINT_MASS_LOGVAR`, :data:`POINT_MASS_FRACTION`) is refused: the
Gaussian figures are undefined there. Discrete latents (VQ codes, categorical
logits) have protocols of their own: collapse_diag/model/latent_kinds.py.

Sequential latents (docs/model-protocol.md, "Sequential latents"): when
``encode(x)`` returns mu/logvar of shape ``[batch, T, latent_dim]``, z has that
shape everywhere, ``prior(x, z)`` (if defined) returns the conditional prior's
mu/logvar ``[batch, T, latent_dim]`` with step t computed from ``z[:, :t]``, and
``latent_mask(x)`` (if defined) returns ``[batch, T]`` bool (all steps valid
when absent).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from collapse_diag.config.limits import check_latent_dim
from collapse_diag.exceptions import DiagnosticError, ProtocolError
from collapse_diag.io.data import Batch, num_examples, take

__all__ = [
    "LOGVAR_BOUNDS",
    "POINT_MASS_FRACTION",
    "POINT_MASS_LOGVAR",
    "check_not_point_mass",
    "ModelInfo",
    "check_model",
    "coerce_data",
    "call_encode",
    "call_prior",
    "call_posterior",
    "call_log_likelihood",
    "call_num_tokens",
    "call_latent_mask",
    "check_rows",
    "call_generate",
    "call_detokenize",
]

_DOCS = "see docs/model-protocol.md"
#: How the encoder and the prior are named in the messages of their checks.
ENCODE, PRIOR = "encode(x)", "prior(x)"

#: Encoder and prior log-variances must lie in this closed range (docs/model-protocol.md):
#: exp(-30) ~ 1e-13 is a standard deviation of 3e-7 prior units, exp(30) one of 3e6. Outside
#: it the variance under/overflows in float32 and KL and MI figures are meaningless.
LOGVAR_BOUNDS = (-30.0, 30.0)
#: A Gaussian posterior is a point mass (near-deterministic) when its standard deviation is
#: below 1e-4 prior units (logvar < 2 ln 1e-4 ~ -18.4) for more than this fraction of its
#: (input, coordinate) entries; -inf (zero variance) anywhere is one too. KL(q || p) then grows
#: as -log sigma without saying anything about x (>= 8.7 nats per coordinate from the variance
#: alone) and I(x; z) of a deterministic code is not finite, so such a model is refused
#: (:func:`check_not_point_mass`). The zoo's legitimate near-deterministic VAE has std 1e-3.
POINT_MASS_LOGVAR = 2.0 * math.log(1e-4)
#: Share of the (input, coordinate) entries at or below :data:`POINT_MASS_LOGVAR` that
#: makes the posterior a point mass: most inputs.
POINT_MASS_FRACTION = 0.5
#: Relative tolerance of the row-independence and gradient checks of :func:`check_model`.
_ROW_RTOL = 1e-4


@dataclass(frozen=True)
class ModelInfo:
    """What :func:`check_model` learned about a model.

    Attributes:
        latent_dim: Size of z.
        dtype: Floating dtype of the encoder output; z is fed back in this dtype.
        has_prior: The model defines ``prior(x)``.
        has_num_tokens: The model defines ``num_tokens(x)``.
        steps: T for sequential latents (z of shape ``[batch, T, latent_dim]``), else ``None``.
        has_mask: The (sequential) model defines ``latent_mask(x)``.
        kind: The latent kind (collapse_diag/model/latent_kinds.py): ``gaussian``,
            ``codes`` (vector-quantised) or ``categorical``.
        classes: K, the codebook size or the classes per categorical variable (discrete
            kinds only; ``latent_dim`` is then the positions / variables).
        code_shape: The shape of one input's code map ``encode_codes(x)[i]`` (``codes`` only).
        has_posterior: Sequential latents only: the model defines ``posterior(x, z)``, the
            posterior conditioned on the sampled past (collapse_diag/model/ancestral.py).
    """

    latent_dim: int
    dtype: torch.dtype
    has_prior: bool
    has_num_tokens: bool
    steps: int | None = None
    has_mask: bool = False
    kind: str = "gaussian"
    classes: int | None = None
    code_shape: tuple[int, ...] | None = None
    has_posterior: bool = False

    @property
    def sequential(self) -> bool:
        """Z has a time axis: shape ``[batch, T, latent_dim]``."""
        return self.steps is not None


def _require_method(model: Any, name: str, signature: str) -> None:
    if not callable(getattr(model, name, None)):
        raise ProtocolError(
            f"the model ({type(model).__name__}) has no method {name}: add "
            f"`def {signature}` ({_DOCS})."
        )


def _check_pair(out: Any, method: str, batch: int, latent_dim: int | None,
                steps: int | None = None, sequential: bool = False,
                values: bool = True) -> tuple:
    """Check a (mu, logvar) pair: ``[batch, latent_dim]``, or ``[batch, T, latent_dim]``.

    ``sequential`` with ``steps=None`` (the first ``encode`` call) accepts either rank.
    ``values=False`` checks types and shapes only (no device sync); the caller then
    runs :func:`check_pair_values` once on all its rows.
    """
    if not (isinstance(out, (tuple, list)) and len(out) == 2):
        form = "[batch, T, latent_dim]" if steps is not None else "[batch, latent_dim]"
        raise ProtocolError(
            f"{method} must return a pair (mu, logvar) of Tensors {form}; "
            f"got {type(out).__name__}. Return `mu, logvar` ({_DOCS})."
        )
    rank3 = steps is not None or (sequential and isinstance(out[0], torch.Tensor)
                                  and out[0].dim() == 3)
    form = "[batch, T, latent_dim]" if rank3 else "[batch, latent_dim]"
    shape = (batch, steps, latent_dim) if rank3 else (batch, latent_dim)
    if (method == ENCODE and values and isinstance(out[1], torch.Tensor)
            and out[1].is_floating_point() and bool(torch.isneginf(out[1]).any())):
        check_not_point_mass(out[1], method)  # zero variance: say why, not only "-inf"
    for name, t in zip(("mu", "logvar"), out):
        _check_tensor(t, f"{method} {name}", shape, floating=True, finite=values)
    if out[0].shape != out[1].shape:
        raise ProtocolError(
            f"{method} returned mu of shape {tuple(out[0].shape)} but logvar of shape "
            f"{tuple(out[1].shape)}: both must be {form}."
        )
    if values:
        check_pair_values(out[0], out[1], method)
    return out[0], out[1]


def check_pair_values(mu: torch.Tensor, logvar: torch.Tensor, method: str) -> None:
    """The values of a (mu, logvar) pair: finite, logvar within :data:`LOGVAR_BOUNDS`.

    A few reads of the tensors (device syncs on a GPU): the encoder pass runs it
    once on all its rows rather than once per batch.

    Raises:
        ProtocolError: NaN/Inf, or logvar out of range (with the range found).
    """
    check_finite(mu, f"{method} mu")
    if method == ENCODE and logvar.numel() and bool(torch.isneginf(logvar).any()):
        check_not_point_mass(logvar, method)
    check_finite(logvar, f"{method} logvar")
    if logvar.numel() == 0:
        return
    low, high = LOGVAR_BOUNDS
    lo, hi = (float(v) for v in torch.stack([logvar.min(), logvar.max()]).cpu())
    if lo < low or hi > high:
        raise ProtocolError(
            f"{method} returned logvar in [{lo:.4g}, {hi:.4g}], outside the supported range "
            f"[{low:g}, {high:g}] (variances exp(logvar) that under/overflow): clamp logvar "
            f"in the model, e.g. logvar.clamp({low:g}, {high:g}) ({_DOCS})."
        )


def check_not_point_mass(logvar: torch.Tensor, method: str = ENCODE) -> None:
    """Refuse a point-mass (deterministic) Gaussian posterior, saying why and what to use.

    The posterior is a point mass when exp(logvar) is 0 anywhere, or when more than
    :data:`POINT_MASS_FRACTION` of the entries of ``logvar`` ``[batch, ...]`` are at or
    below :data:`POINT_MASS_LOGVAR` (standard deviation 1e-4 prior units). Run on the
    first inputs by :func:`check_model` and on all rows by the encoder pass; any
    ``-inf`` is refused wherever the encoder's output is checked.

    Raises:
        ProtocolError: one line: KL and MI are undefined for a deterministic code; the
            discrete protocols (VQ codes, categorical logits) or an autoencoder check.
    """
    if logvar.numel() == 0:
        return
    zero = bool(torch.isneginf(logvar).any())
    share = float((logvar <= POINT_MASS_LOGVAR).double().mean())
    if not zero and share <= POINT_MASS_FRACTION:
        return
    what = ("zero variance (logvar = -inf)" if zero else
            f"standard deviation <= 1e-4 (logvar <= {POINT_MASS_LOGVAR:.1f}) for {share:.0%} "
            "of the (input, coordinate) entries")
    raise ProtocolError(
        f"{method} returned a point-mass posterior: {what}. KL(q(z|x) || p(z)) grows as -log "
        "sigma whatever x is and I(x; z) of a deterministic code is infinite, so the Gaussian "
        "figures would be meaningless: for a VQ-VAE give encode_codes(x) and codebook_size, "
        "for categorical latents posterior_logits(x), and check a plain autoencoder as an "
        f"autoencoder (reconstruction, decoder sensitivity), not as a VAE ({_DOCS}, 'Latent "
        "kinds')."
    )


def _user_call(method: str, n: int, error: type[Exception], fn: Any, *args: Any) -> Any:
    """Call a model method; turn any failure of user code (SystemExit too) into ``error``."""
    try:
        return fn(*args)
    except (ProtocolError, DiagnosticError):
        raise
    except (Exception, SystemExit) as err:  # noqa: BLE001 - a crash inside the user's model
        first = str(err).splitlines()[0] if str(err) else ""
        raise error(
            f"{method} failed with {type(err).__name__}: {first} (on a batch of {n} "
            f"example(s); the model must accept the data as stored; {_DOCS})"
        ) from err


def _expected(shape: tuple[int | None, ...]) -> str:
    """The expected shape for a message, e.g. ``[batch=4, latent_dim]`` (built only on error)."""
    names = ("batch", "T", "latent_dim") if len(shape) == 3 else ("batch", "latent_dim")
    return "[" + ", ".join(
        names[i] if s is None else f"{names[i]}={s}" for i, s in enumerate(shape)
    ) + "]"


def _check_tensor(
    t: Any,
    what: str,
    shape: tuple[int | None, ...],
    floating: bool,
    error: type[Exception] = ProtocolError,
    finite: bool = True,
) -> None:
    if not isinstance(t, torch.Tensor):
        raise error(f"{what} must be a Tensor {_expected(shape)}; got {type(t).__name__}.")
    if t.dim() != len(shape) or any(s is not None and s != a for s, a in zip(shape, t.shape)):
        raise error(
            f"{what} must have shape {_expected(shape)}; got {tuple(t.shape)}. "
            "Keep the batch dimension first and reduce everything else."
        )
    if floating and not t.is_floating_point():
        raise error(f"{what} must be a floating-point Tensor; got dtype {t.dtype}.")
    if finite:
        check_finite(t, what, error)


def check_finite(t: torch.Tensor, what: str, error: type[Exception] = ProtocolError) -> None:
    """Raise ``error`` when ``t`` holds NaN/Inf (one read of ``t``: a device sync on a GPU)."""
    if not bool(torch.isfinite(t).all()):
        bad = int((~torch.isfinite(t)).sum())
        raise error(
            f"{what} contains {bad} NaN/Inf value(s): check the model's weights and "
            "numerics (e.g. clamp logvar, use log-softmax) before analysing it."
        )


def call_encode(model: Any, x: Batch, info: ModelInfo | None = None, values: bool = True
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """``model.encode(x)``, checked: a finite pair of Tensors ``[batch, latent_dim]``.

    Without ``info`` (the first call) ``[batch, T, latent_dim]`` is accepted too;
    with it, the shape must match what :func:`check_model` found. ``values=False``:
    types and shapes only (the caller runs :func:`check_pair_values` on all rows).
    """
    n = num_examples(x)
    out = _user_call(ENCODE, n, ProtocolError, model.encode, x)
    if info is None:
        return _check_pair(out, ENCODE, n, None, sequential=True)
    return _check_pair(out, ENCODE, n, info.latent_dim, info.steps, values=values)


def call_prior(model: Any, x: Batch, latent_dim: int, z: torch.Tensor | None = None,
               values: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """``model.prior(x)`` (or ``model.prior(x, z)`` for sequential latents), checked.

    Args:
        model: The model.
        x: Inputs.
        latent_dim: D.
        z: Sequential latents only: codes ``[batch, T, D]`` the conditional prior
            reads (step t from ``z[:, :t]``); the result must be ``[batch, T, D]``.
        values: ``False``: types and shapes only (see :func:`call_encode`).
    """
    n = num_examples(x)
    if z is None:
        return _check_pair(_user_call(PRIOR, n, ProtocolError, model.prior, x),
                           PRIOR, n, latent_dim, values=values)
    return _check_pair(_user_call("prior(x, z)", n, ProtocolError, model.prior, x, z),
                       "prior(x, z)", n, latent_dim, int(z.shape[1]))


def call_posterior(model: Any, x: Batch, z: torch.Tensor, values: bool = True
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """``model.posterior(x, z)``, checked: (mu, logvar) ``[batch, T, D]`` like ``z``.

    Sequential latents only: step t of the result is q(z_t | x, z_<t), read from
    ``z[:, :t]`` (teacher-forced), as ``prior(x, z)`` is for the conditional prior.
    """
    n = num_examples(x)
    return _check_pair(_user_call("posterior(x, z)", n, ProtocolError, model.posterior, x, z),
                       "posterior(x, z)", n, int(z.shape[2]), int(z.shape[1]), values=values)


def call_latent_mask(model: Any, x: Batch, steps: int) -> torch.Tensor:
    """``model.latent_mask(x)``, checked: bool ``[batch, T]``, at least one valid step per row."""
    n = num_examples(x)
    out = _user_call("latent_mask(x)", n, ProtocolError, model.latent_mask, x)
    if (not isinstance(out, torch.Tensor) or out.dtype != torch.bool
            or tuple(out.shape) != (n, steps)):
        got = (f"{type(out).__name__}" if not isinstance(out, torch.Tensor)
               else f"{out.dtype} of shape {tuple(out.shape)}")
        raise ProtocolError(
            f"latent_mask(x) must return a bool Tensor [batch={n}, T={steps}] (True = valid "
            f"step); got {got}. Return e.g. `torch.arange(T) < lengths[:, None]` ({_DOCS})."
        )
    if not bool(out.any(dim=1).all()):
        raise ProtocolError("latent_mask(x) marks no valid step for some input: every input "
                            f"needs at least one valid step ({_DOCS}).")
    return out


#: How a log-likelihood is named in the messages of its checks.
LOG_LIKELIHOOD = "log_likelihood(x, z)"


def call_log_likelihood(model: Any, x: Batch, z: torch.Tensor, finite: bool = True
                        ) -> torch.Tensor:
    """``model.log_likelihood(x, z)``, checked: shape ``[batch]`` and (``finite``) finite.

    Args:
        model: The model.
        x: Inputs on the model's device.
        z: Codes ``[batch, ...]``.
        finite: Check for NaN/Inf here. A caller that copies the result to the host
            anyway passes False and runs :func:`check_finite` on the copy, so a GPU
            call costs one device sync (the copy) instead of two.

    Raises:
        DiagnosticError: the decoder returned a wrong shape or NaN/Inf during a
            diagnostic (the up-front :func:`check_model` raises ProtocolError instead).
    """
    out = _user_call(LOG_LIKELIHOOD, int(z.shape[0]), DiagnosticError,
                     model.log_likelihood, x, z)
    _check_tensor(out, LOG_LIKELIHOOD, (z.shape[0],), floating=True, error=DiagnosticError,
                  finite=finite)
    return out


def call_num_tokens(model: Any, x: Batch, values: bool = True) -> torch.Tensor:
    """``model.num_tokens(x)``, checked: shape ``[batch]``, positive (``values``)."""
    out = _user_call("num_tokens(x)", num_examples(x), ProtocolError, model.num_tokens, x)
    _check_tensor(out, "num_tokens(x)", (num_examples(x),), floating=False, finite=values)
    if values:
        check_token_values(out)
    return out


def check_token_values(counts: torch.Tensor) -> None:
    """Token counts are finite and positive (the encoder pass checks all rows at once)."""
    check_finite(counts, "num_tokens(x)")
    if bool((counts <= 0).any()):
        raise ProtocolError("num_tokens(x) must be positive for every example.")


def coerce_data(model: Any, x: Batch) -> Batch:
    """Cast floating-point inputs to the floating dtype of the model's parameters (or buffers).

    A float64 array saved by numpy fed to a float32 model is the most common
    dtype mismatch; integer inputs (token ids) and models without floating
    parameters are left as they are.

    Args:
        model: The model (an ``nn.Module``, or anything with ``parameters()``).
        x: Inputs, Tensor or dict of Tensors.

    Returns:
        ``x`` with every floating Tensor in the model's dtype.
    """
    dtype = None
    for attribute in ("parameters", "buffers"):  # weights first, else buffers
        tensors = getattr(model, attribute, None)
        if dtype is None and callable(tensors):
            try:
                dtype = next((t.dtype for t in tensors() if t.is_floating_point()), None)
            except (Exception, SystemExit):  # noqa: BLE001 - an odd user object is left alone
                return x
    if dtype is None:
        return x

    def cast(t: torch.Tensor) -> torch.Tensor:
        return t.to(dtype) if t.is_floating_point() and t.dtype != dtype else t

    return cast(x) if isinstance(x, torch.Tensor) else {k: cast(v) for k, v in x.items()}


def _differs(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Rows where two log-likelihoods differ beyond rounding (relative :data:`_ROW_RTOL`)."""
    a, b = a.detach().double(), b.detach().double()
    return (a - b).abs() > _ROW_RTOL * (1.0 + a.abs())


def _gradient_reaches(model: Any, x: Batch, z: torch.Tensor, rows: torch.Tensor) -> bool:
    """Whether autograd gives a non-zero d log p(x|z) / dz at ``z`` for one of ``rows``."""
    with torch.enable_grad():
        zg = z.detach().clone().requires_grad_(True)
        out = call_log_likelihood(model, x, zg)
        if not out.requires_grad:
            return False
        (grad,) = torch.autograd.grad(out.sum(), zg, allow_unused=True)
    return grad is not None and bool((grad[rows] != 0).any())


def _check_decoder_rows(model: Any, x: Batch, z: torch.Tensor) -> None:
    """Check that the decoder's log p(x|z) is deterministic, row-wise and differentiable in z.

    Three checks on the small batch, each a few decoder calls:

    * the same call twice gives the same values (no dropout left on);
    * adding 1 to every coordinate of the code of input 0 changes only
      row 0 (no batch statistics, no mean over the batch);
    * if moving every code changes the values, autograd reaches z with a
      non-zero gradient (no ``.detach()``, ``.item()`` or numpy inside): the
      Fisher information of the identifiability diagnostic is computed from it.
    """
    n = int(z.shape[0])
    with torch.no_grad():
        base = call_log_likelihood(model, x, z)
        if bool(_differs(base, call_log_likelihood(model, x, z)).any()):
            raise ProtocolError(
                "log_likelihood(x, z) returns different values for the same x and z: it must "
                "be deterministic (call model.eval() to switch dropout off; no sampling inside)."
            )
        if n >= 2:
            moved = z.clone()
            moved[0] += 1.0
            leaked = _differs(base, call_log_likelihood(model, x, moved))[1:].nonzero()
            if len(leaked):
                rows = [int(r) + 1 for r in leaked[:5, 0]]
                raise ProtocolError(
                    f"log_likelihood(x, z) mixes rows: changing only the z of input 0 changed "
                    f"the value of input(s) {rows}. Each row must depend only on its own x and "
                    "z (no batch statistics, no sum or mean over the batch, BatchNorm in eval "
                    f"mode) ({_DOCS})."
                )
        changed = _differs(base, call_log_likelihood(model, x, z + 1.0))
    if not bool(changed.any()):
        return  # the decoder ignores z (a collapsed model): nothing to differentiate
    # a zero gradient at the codes may be a flat region (dead ReLUs): try the moved codes too
    if not any(_gradient_reaches(model, x, point, changed) for point in (z, z + 1.0)):
        raise ProtocolError(
            "log_likelihood(x, z) changes with z but no gradient reaches z: keep z on the "
            "autograd graph (no .detach(), .item(), .numpy() or torch.tensor(...) of z inside), "
            f"the Fisher information needs d log p(x|z) / dz ({_DOCS})."
        )


def _copy(x: Batch) -> Batch:
    return x.clone() if isinstance(x, torch.Tensor) else {k: v.clone() for k, v in x.items()}


def _check_unchanged(before: Batch, after: Batch) -> None:
    """The model did not write into its inputs (the caller's tensors, and the next calls)."""
    pairs = ([("x", before, after)] if isinstance(before, torch.Tensor)
             else [(f"x[{k!r}]", before[k], after[k]) for k in before])
    for name, a, b in pairs:
        if not torch.equal(a, b) and not (a.is_floating_point() and torch.equal(a.isnan(),
                                                                                b.isnan())
                                           and torch.equal(a.nan_to_num(), b.nan_to_num())):
            raise ProtocolError(
                f"the model writes into its input {name}: a call of encode / log_likelihood "
                "changed it in place. Work on a copy (x = x.clone()) or use out-of-place "
                f"operations, so the same inputs can be decoded again ({_DOCS})."
            )


def _is_discrete(x: Batch) -> bool:
    tensors = [x] if isinstance(x, torch.Tensor) else list(x.values())
    return all(not t.is_floating_point() and not t.is_complex() for t in tensors)


def check_rows(model: Any, x: Batch, mu: torch.Tensor | None = None) -> None:
    """The row-wise checks of :func:`check_model` on one small batch ``x``.

    ``analyze`` runs them on the first inputs (inside :func:`check_model`) and again
    on a seeded random batch, so a model that misbehaves only later is caught:
    ``encode`` keeps rows independent (no batch statistics), ``log_likelihood`` is
    deterministic, row-wise and differentiable in z (:func:`_check_decoder_rows`),
    neither writes into ``x``, and for discrete (integer) inputs ``log p(x|z) <= 0``.

    Raises:
        ProtocolError: naming what broke and a fix.
    """
    before = _copy(x)
    with torch.no_grad():
        if mu is None:
            mu = call_encode(model, x)[0]
        if num_examples(x) >= 2:
            alone = call_encode(model, take(x, slice(0, 1)))[0]
            if bool(_differs(alone.reshape(-1), mu[:1].reshape(-1)).any()):
                raise ProtocolError(
                    "encode(x) mixes rows: the mu of input 0 differs when it is encoded alone "
                    "and in a batch. Each row must depend only on its own x (no batch "
                    f"statistics: BatchNorm in eval mode, no mean over the batch) ({_DOCS})."
                )
        ll = call_log_likelihood(model, x, mu)
    if _is_discrete(x) and bool((ll.detach().double() > 1e-6).any()):
        raise ProtocolError(
            f"log_likelihood(x, z) is {float(ll.max()):.6g} > 0 for discrete (integer) inputs: "
            "a log-probability of tokens is at most 0. Return log p(x|z) (e.g. minus the summed "
            f"cross-entropy), not a loss or a negative log-likelihood ({_DOCS})."
        )
    _check_unchanged(before, x)  # first: a changed x would read as a non-deterministic decoder
    _check_decoder_rows(model, x, mu)
    _check_unchanged(before, x)


def _check_padding(model: Any, x: Batch, z: torch.Tensor) -> None:
    """Check that a sequence model's figures do not depend on how much padding a batch has.

    ``encode`` and ``log_likelihood`` of the inputs as given must equal those of
    the same inputs without their common trailing padding, with 8 more padding
    columns, and of each input called alone at its own length
    (:mod:`collapse_diag.model.padding`), within the relative tolerance
    :data:`_ROW_RTOL`: |a - b| <= 1e-4 (1 + |a|). The padding value is checked
    with ``num_tokens`` when the model has it; without it, integer inputs are
    checked when a padding value shows itself
    (:func:`~collapse_diag.model.padding.guess_pad`). A variant the model fails on
    is skipped (e.g. a maximum length), and so are sequential latents.
    """
    if z.dim() != 2 or not isinstance(x, torch.Tensor):
        return
    with torch.no_grad():
        found = _padding_variants(model, x)
        if not found:
            return
        variants, guessed = found
        base_ll, base_mu = call_log_likelihood(model, x, z), call_encode(model, x)[0]
        for how, rows, variant in variants:
            try:
                ll = call_log_likelihood(model, variant, z[rows])
                mu = call_encode(model, variant)[0]
            except (ProtocolError, DiagnosticError):
                continue
            for method, a, b in (("encode(x) mu", base_mu[rows], mu),
                                 ("log_likelihood(x, z)", base_ll[rows], ll)):
                bad = _differs(a, b).reshape(len(a), -1).any(dim=1).nonzero()
                if len(bad):
                    i = int(bad[0, 0])
                    raise ProtocolError(
                        f"{method} depends on the padding of the batch: for input {rows[i]} it "
                        f"is {float(a[i].flatten()[0]):.6g} as given and "
                        f"{float(b[i].flatten()[0]):.6g} {how} (relative tolerance "
                        f"{_ROW_RTOL:g}): mask the padded positions (pack_padded_sequence, "
                        "ignore_index) so each input's value does not depend on what it is "
                        f"batched with (docs/adapters.md#padding).{guessed}"
                    )


def _padding_variants(model: Any, x: torch.Tensor
                      ) -> tuple[list[tuple[str, list[int], torch.Tensor]], str] | None:
    """``([(how, rows, variant), ...], note)`` for the padding check, or ``None``."""
    from collapse_diag.model.padding import alone, guess_pad, padded_variants, variants_by_pad

    rows = list(range(x.shape[0]))
    if callable(getattr(model, "num_tokens", None)):
        if x.dim() < 2 or x.shape[1] < 2:
            return None
        counts = call_num_tokens(model, x)
        batched = padded_variants(x, lambda v: call_num_tokens(model, v))
        pad, note = x[int(torch.argmin(counts)), -1:].squeeze(0), ""
    else:
        guess = guess_pad(x)
        if guess is None:
            return None
        counts, batched, pad = None, variants_by_pad(x, guess), guess
        note = (f" (No num_tokens: token id {guess} was taken for padding, as it ends the "
                "inputs in trailing runs; if it is content, define num_tokens(x) and the check "
                "counts the tokens instead.)")
    out = [("without their common trailing padding" if name == "trimmed"
            else "with 8 more padding columns", rows, v) for name, v in batched.items()]
    for row, single in alone(x, pad):
        try:
            same = counts is None or torch.equal(call_num_tokens(model, single).cpu(),
                                                 counts[row:row + 1].cpu())
        except (ProtocolError, DiagnosticError):
            same = False
        if same:
            out.append(("called alone, without the padding of the batch", [row], single))
    return out, note


def check_model(model: Any, batch: Batch) -> ModelInfo:
    """Validate the model protocol once, on a small batch, before any diagnostic runs.

    Calls every method the model defines on (at most 4 examples of) ``batch``
    under ``torch.no_grad()`` and checks types, shapes, dtypes and finiteness,
    that logvar lies in :data:`LOGVAR_BOUNDS`, and that ``log_likelihood`` is
    deterministic, keeps rows independent and lets a gradient reach z. A model in
    training mode is checked in eval mode (as ``analyze`` runs it) and put back.

    Args:
        model: The model to check.
        batch: Inputs (Tensor or dict of Tensors) on the model's device.

    Returns:
        A :class:`ModelInfo` describing the model.

    Raises:
        ProtocolError: naming the method, what was expected, what came back and a fix.
    """
    _require_method(model, "encode", "encode(self, x) -> (mu, logvar)")
    _require_method(model, "log_likelihood", "log_likelihood(self, x, z) -> Tensor[batch]")
    training = isinstance(model, torch.nn.Module) and model.training
    if training:  # dropout / batch statistics off for the check, as analyze runs the model
        model.eval()
    try:
        return _check_model(model, batch)
    finally:
        if training:
            model.train()


def _check_model(model: Any, batch: Batch) -> ModelInfo:
    small = take(batch, slice(0, min(4, num_examples(batch))))
    n = num_examples(small)
    before = _copy(small)
    try:
        with torch.no_grad():
            mu, logvar = call_encode(model, small)
            check_not_point_mass(logvar)
            latent_dim = int(mu.shape[-1])
            steps = int(mu.shape[1]) if mu.dim() == 3 else None
            if latent_dim == 0 or steps == 0:
                raise ProtocolError("encode(x) returned latent_dim 0 or T = 0: z must have a "
                                    "dimension (and a step).")
            check_latent_dim(latent_dim, "encode(x)", ProtocolError)
            has_prior = callable(getattr(model, "prior", None))
            if has_prior:
                call_prior(model, small, latent_dim, mu if steps is not None else None)
            has_posterior = steps is not None and callable(getattr(model, "posterior", None))
            if has_posterior:
                call_posterior(model, small, mu)
            has_mask = steps is not None and callable(getattr(model, "latent_mask", None))
            if has_mask:
                call_latent_mask(model, small, steps)
            has_num_tokens = callable(getattr(model, "num_tokens", None))
            if has_num_tokens:
                call_num_tokens(model, small)
        try:
            check_rows(model, small, mu)
            _check_padding(model, small, mu)
        except DiagnosticError as err:
            raise ProtocolError(str(err)) from err
    except ProtocolError:
        raise
    except (Exception, SystemExit) as err:  # noqa: BLE001 - a crash inside the user's model
        raise ProtocolError(
            f"calling the model on a batch of {n} example(s) failed with "
            f"{type(err).__name__}: {err} (the model must accept the data as stored; {_DOCS})"
        ) from err
    _check_unchanged(before, small)
    return ModelInfo(
        latent_dim=latent_dim,
        dtype=mu.dtype,
        has_prior=has_prior,
        has_num_tokens=has_num_tokens,
        steps=steps,
        has_mask=has_mask,
        has_posterior=has_posterior,
    )


#: How ``generate`` and ``detokenize`` are named in the messages of their checks.
GENERATE, DETOKENIZE = "generate(z)", "detokenize(ids)"


def call_generate(model: Any, z: torch.Tensor) -> torch.Tensor:
    """``model.generate(z)``, checked: integer ids ``[batch, L]`` or finite floats ``[batch, ...]``.

    The optional method of docs/model-protocol.md ("generate"): token ids for a
    text decoder (greedy decoding: deterministic; positions after a row's end hold
    0), the decoder's mean for continuous data. Called under ``torch.no_grad()``.

    Raises:
        DiagnosticError: it failed, or returned something else (what came back and a fix).
    """
    n = int(z.shape[0])
    with torch.no_grad():
        out = _user_call(GENERATE, n, DiagnosticError, model.generate, z)
    if not isinstance(out, torch.Tensor) or out.dim() < 2 or int(out.shape[0]) != n:
        got = (type(out).__name__ if not isinstance(out, torch.Tensor)
               else f"shape {tuple(out.shape)}")
        raise DiagnosticError(
            f"{GENERATE} must return a Tensor [batch={n}, ...] (token ids [batch, length] or "
            f"the decoder's mean); got {got} ({_DOCS}).")
    if out.is_floating_point():
        check_finite(out, GENERATE, DiagnosticError)
    elif out.dim() != 2 or out.is_complex():
        raise DiagnosticError(
            f"{GENERATE} returned a non-floating Tensor of shape {tuple(out.shape)}: token ids "
            f"must be an integer Tensor [batch, length] ({_DOCS}).")
    return out.detach()


def call_detokenize(model: Any, ids: torch.Tensor) -> list[str]:
    """``model.detokenize(ids)``, checked: one string per row of ``ids`` ``[batch, length]``.

    Raises:
        DiagnosticError: it failed or did not return ``batch`` strings.
    """
    n = int(ids.shape[0])
    out = _user_call(DETOKENIZE, n, DiagnosticError, model.detokenize, ids)
    if not isinstance(out, (list, tuple)) or len(out) != n or not all(
            isinstance(line, str) for line in out):
        raise DiagnosticError(f"{DETOKENIZE} must return a list of {n} strings, one per row "
                              f"of ids; got {type(out).__name__} ({_DOCS}).")
    return list(out)
