"""Which kind of latent a model has, told from its methods, and the discrete kinds' protocol.

Three kinds (docs/model-protocol.md, "Latent kinds"), each told by the method that
defines its posterior:

* ``gaussian``: ``encode(x) -> (mu, logvar)`` (collapse_diag/model/protocol.py).
* ``codes`` (vector-quantised: VQ-VAE, VQ-GAN tokenisers): ``encode_codes(x)`` returns
  integer indices ``[batch, *positions]`` into a codebook of ``codebook_size`` entries
  (an int attribute or a method returning one); ``log_likelihood(x, codes)`` decodes
  indices of that shape. The encoder is deterministic.
* ``categorical`` (Gumbel-softmax, dVAE): ``posterior_logits(x)`` returns logits
  ``[batch, D, K]`` of D categorical variables with K classes each; the optional
  ``prior_logits(x)`` the prior's (default uniform), same shape; ``log_likelihood(x, z)``
  decodes one-hot codes ``z`` (float ``[batch, D, K]``).

A model defining two of these is refused (one kind per analysis). The discrete kinds
are checked here as :func:`~collapse_diag.model.protocol.check_model` checks a
Gaussian one, and encoded once into :class:`DiscreteEncodings`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from collapse_diag.config.limits import check_latent_dim
from collapse_diag.exceptions import DiagnosticError, ProtocolError
from collapse_diag.io.data import Batch, num_examples, take, to_device
from collapse_diag.model.decoding import shard_batches
from collapse_diag.model.protocol import (
    LOG_LIKELIHOOD,
    ModelInfo,
    _user_call,
    call_log_likelihood,
    call_num_tokens,
    check_finite,
    check_model,
    check_rows,
)
from collapse_diag.runtime import distributed

__all__ = ["CATEGORICAL", "CODES", "GAUSSIAN", "KINDS", "DiscreteEncodings", "check_latent_model",
           "check_latent_rows", "detect_kind", "encode_discrete", "one_hot"]

GAUSSIAN, CODES, CATEGORICAL = "gaussian", "codes", "categorical"
#: Kind -> the method whose presence tells it.
KINDS = {GAUSSIAN: "encode", CODES: "encode_codes", CATEGORICAL: "posterior_logits"}
_DESCRIBED = {GAUSSIAN: "encode(x) (a Gaussian posterior)",
              CODES: "encode_codes(x) (vector-quantised codes)",
              CATEGORICAL: "posterior_logits(x) (categorical latents)"}
_DOCS = "see docs/model-protocol.md, 'Latent kinds'"
#: Relative tolerance of the row checks (as collapse_diag/model/protocol.py's).
_RTOL = 1e-4


def detect_kind(model: Any) -> str:
    """The model's latent kind, from which posterior method it defines.

    Raises:
        ProtocolError: it defines none (the Gaussian protocol's message) or several.
    """
    found = [kind for kind, method in KINDS.items() if callable(getattr(model, method, None))]
    if len(found) > 1:
        both = " and ".join(_DESCRIBED[k] for k in found)
        raise ProtocolError(
            f"the model ({type(model).__name__}) defines {both}"
            ": one analysis reads one kind of latent. Expose only the posterior you want "
            "diagnosed (wrap the model, or rename the other method; --map maps names) "
            f"({_DOCS})."
        )
    return found[0] if found else GAUSSIAN


def _classes(model: Any) -> int:
    size = getattr(model, "codebook_size", None)
    size = size() if callable(size) else size
    if isinstance(size, torch.Tensor) and size.numel() == 1:
        size = int(size)
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ProtocolError(
            f"a model with encode_codes(x) needs codebook_size, the number K >= 1 of codebook "
            f"entries (an int attribute or method); got {size!r} ({_DOCS})."
        )
    return int(size)


def call_codes(model: Any, x: Batch, info: ModelInfo | None = None) -> torch.Tensor:
    """``model.encode_codes(x)``, checked: integer ``[batch, *positions]`` within [0, K)."""
    n = num_examples(x)
    codes = _user_call("encode_codes(x)", num_examples(x), ProtocolError, model.encode_codes, x)
    k = _classes(model) if info is None else info.classes
    if (not isinstance(codes, torch.Tensor) or codes.is_floating_point() or codes.is_complex()
            or codes.dtype == torch.bool or codes.dim() < 1 or codes.shape[0] != n):
        got = (type(codes).__name__ if not isinstance(codes, torch.Tensor)
               else f"{codes.dtype} of shape {tuple(codes.shape)}")
        raise ProtocolError(f"encode_codes(x) must return an integer Tensor [batch={n}, "
                            f"*positions] of codebook indices; got {got} ({_DOCS}).")
    if info is not None and tuple(codes.shape[1:]) != info.code_shape:
        raise ProtocolError(f"encode_codes(x) returned code maps of shape "
                            f"{tuple(codes.shape[1:])}, earlier {info.code_shape}: one shape "
                            "for every input.")
    if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= k):
        raise ProtocolError(f"encode_codes(x) returned indices in [{int(codes.min())}, "
                            f"{int(codes.max())}], outside [0, codebook_size = {k}) ({_DOCS}).")
    return codes.long()


def _check_logits(out: Any, method: str, n: int, shape: tuple[int, int] | None) -> torch.Tensor:
    if (not isinstance(out, torch.Tensor) or not out.is_floating_point() or out.dim() != 3
            or out.shape[0] != n or (shape is not None and tuple(out.shape[1:]) != shape)):
        got = (type(out).__name__ if not isinstance(out, torch.Tensor)
               else f"{out.dtype} of shape {tuple(out.shape)}")
        want = "D, K" if shape is None else f"D={shape[0]}, K={shape[1]}"
        raise ProtocolError(f"{method} must return floating logits [batch={n}, {want}] (D "
                            f"categorical variables of K classes); got {got} ({_DOCS}).")
    check_finite(out, method)
    return out


def call_logits(model: Any, x: Batch, info: ModelInfo | None = None, prior: bool = False
                ) -> torch.Tensor:
    """``posterior_logits(x)`` (or ``prior_logits(x)``), checked: finite ``[batch, D, K]``."""
    method = "prior_logits(x)" if prior else "posterior_logits(x)"
    fn = model.prior_logits if prior else model.posterior_logits
    shape = None if info is None else (info.latent_dim, int(info.classes or 0))
    n = num_examples(x)
    return _check_logits(_user_call(method, n, ProtocolError, fn, x), method, n, shape)


def one_hot(index: torch.Tensor, classes: int, dtype: torch.dtype) -> torch.Tensor:
    """One-hot codes ``[..., K]`` of class indices ``[...]`` in ``dtype``."""
    return torch.nn.functional.one_hot(index, classes).to(dtype)


def _differs(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a, b = a.detach().double(), b.detach().double()
    return (a - b).abs() > _RTOL * (1.0 + a.abs())


def _check_discrete_decoder(model: Any, x: Batch, z: torch.Tensor, moved: torch.Tensor) -> None:
    """Deterministic and row-wise: the same call twice agrees; moving row 0's code moves only it."""
    base = call_log_likelihood(model, x, z)
    if bool(_differs(base, call_log_likelihood(model, x, z)).any()):
        raise ProtocolError(f"{LOG_LIKELIHOOD} returns different values for the same x and "
                            "codes: it must be deterministic (model.eval(), no sampling inside).")
    if len(z) >= 2:
        leaked = _differs(base, call_log_likelihood(model, x, moved))[1:]
        if bool(leaked.any()):
            raise ProtocolError(f"{LOG_LIKELIHOOD} mixes rows: changing only the code of input "
                                "0 changed other inputs' values. Each row must depend only on "
                                f"its own x and code ({_DOCS}).")


def check_latent_rows(model: Any, x: Batch, info: ModelInfo) -> None:
    """The row-wise checks on one small batch, for the model's kind (``analyze`` reruns them)."""
    if info.kind == GAUSSIAN:
        check_rows(model, x)
        return
    try:
        with torch.no_grad():
            if info.kind == CODES:
                codes = call_codes(model, x, info)
                moved = codes.clone()
                moved[0] = (moved[0] + 1) % int(info.classes)
                _check_discrete_decoder(model, x, codes, moved)
            else:
                logits = call_logits(model, x, info)
                k = int(info.classes)
                index = logits.argmax(-1)
                moved = index.clone()
                moved[0] = (moved[0] + 1) % k
                _check_discrete_decoder(model, x, one_hot(index, k, logits.dtype),
                                        one_hot(moved, k, logits.dtype))
    except DiagnosticError as err:
        raise ProtocolError(str(err)) from err


def check_latent_model(model: Any, batch: Batch) -> ModelInfo:
    """:func:`~collapse_diag.model.protocol.check_model` for any latent kind.

    Gaussian models go through ``check_model``; discrete ones get the same checks of
    their own methods (types, shapes, ranges, finite, deterministic and row-wise decoder)
    on at most 4 inputs.

    Raises:
        ProtocolError: naming what is wrong and a fix.
    """
    kind = detect_kind(model)
    if kind == GAUSSIAN:
        return check_model(model, batch)
    if not callable(getattr(model, "log_likelihood", None)):
        raise ProtocolError(f"the model ({type(model).__name__}) has no method log_likelihood: "
                            "add `def log_likelihood(self, x, z) -> Tensor[batch]` that decodes "
                            f"the codes ({_DOCS}).")
    small = take(batch, slice(0, min(4, num_examples(batch))))
    training = isinstance(model, torch.nn.Module) and model.training
    if training:
        model.eval()
    try:
        with torch.no_grad():
            has_tokens = callable(getattr(model, "num_tokens", None))
            if has_tokens:
                call_num_tokens(model, small)
            if kind == CODES:
                k = _classes(model)
                codes = call_codes(model, small)
                info = ModelInfo(latent_dim=max(1, int(np.prod(codes.shape[1:]))),
                                 dtype=torch.float32, has_prior=False, has_num_tokens=has_tokens,
                                 kind=CODES, classes=k, code_shape=tuple(codes.shape[1:]))
            else:
                logits = call_logits(model, small)
                has_prior = callable(getattr(model, "prior_logits", None))
                info = ModelInfo(latent_dim=int(logits.shape[1]), dtype=logits.dtype,
                                 has_prior=has_prior, has_num_tokens=has_tokens,
                                 kind=CATEGORICAL, classes=int(logits.shape[2]))
                if info.latent_dim == 0 or info.classes == 0:
                    raise ProtocolError("posterior_logits(x) returned D = 0 or K = 0.")
                if has_prior:
                    call_logits(model, small, info, prior=True)
        # one report row per code position / variable: the limit every report reader applies
        check_latent_dim(info.latent_dim, "encode_codes(x) (code positions)" if kind == CODES
                         else "posterior_logits(x) (categorical variables)", ProtocolError)
        check_latent_rows(model, small, info)
    finally:
        if training:
            model.train()
    return info


@dataclass(frozen=True)
class DiscreteEncodings:
    """The one encoder pass of a discrete model, for every analysed input.

    Attributes:
        codes: ``codes`` kind: codebook indices, int64 ``(N, L)`` (each input's code map
            flattened, L = its number of positions); ``None`` for categorical.
        logits: ``categorical`` kind: log q(c_d = k | x) normalised, float64 ``(N, D, K)``.
        prior_logits: log p(c_d = k) normalised ``(N, D, K)``, or ``None`` (uniform).
        classes: K.
        num_tokens: Size of each observation ``(N,)``, or ``None``.
    """

    codes: np.ndarray | None
    logits: np.ndarray | None
    prior_logits: np.ndarray | None
    classes: int
    num_tokens: np.ndarray | None = None
    sequential = False
    steps = None

    @property
    def n_examples(self) -> int:
        """N."""
        return int(len(self.codes if self.codes is not None else self.logits))

    @property
    def latent_dim(self) -> int:
        """L positions (codes) or D variables (categorical)."""
        return int((self.codes if self.codes is not None else self.logits).shape[1])


def encode_discrete(model: Any, data: Batch, info: ModelInfo, batch_size: int,
                    device: torch.device | str = "cpu", show_progress: bool = False
                    ) -> DiscreteEncodings:
    """Run ``encode_codes`` / ``posterior_logits`` (and ``prior_logits``, ``num_tokens``) once.

    Logits are normalised to log-probabilities (``log_softmax`` in float64). Under
    ``torchrun`` each process encodes its shard and the results are gathered.
    """
    k = int(info.classes)

    def compute(start: int, stop: int) -> tuple[np.ndarray, ...]:
        first, prior, tokens = [], [], []
        with torch.no_grad():
            for _rows, batch in shard_batches(data, start, stop, batch_size, "encoder pass",
                                              show_progress):
                batch = to_device(batch, device)
                if info.kind == CODES:
                    first.append(call_codes(model, batch, info).reshape(num_examples(batch), -1)
                                 .cpu())
                else:
                    first.append(torch.log_softmax(call_logits(model, batch, info).double(),
                                                   -1).cpu())
                    if info.has_prior:
                        prior.append(torch.log_softmax(
                            call_logits(model, batch, info, prior=True).double(), -1).cpu())
                if info.has_num_tokens:
                    tokens.append(call_num_tokens(model, batch).double().cpu())
        tail = (info.latent_dim,) if info.kind == CODES else (info.latent_dim, k)
        dtype = np.int64 if info.kind == CODES else np.float64
        out = [torch.cat(first).numpy() if first else np.empty((0, *tail), dtype=dtype)]
        if prior or (info.has_prior and info.kind == CATEGORICAL):
            out.append(torch.cat(prior).numpy() if prior else np.empty((0, *tail)))
        if info.has_num_tokens:
            out.append(torch.cat(tokens).numpy() if tokens else np.empty(0))
        return tuple(out)

    parts = list(distributed.map_shard(num_examples(data), compute))
    first = parts.pop(0)
    prior = parts.pop(0) if info.kind == CATEGORICAL and info.has_prior else None
    tokens = parts.pop(0) if info.has_num_tokens else None
    if info.kind == CODES:
        return DiscreteEncodings(first, None, None, k, tokens)
    return DiscreteEncodings(None, first, prior, k, tokens)
