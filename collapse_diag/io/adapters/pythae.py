"""The ``pythae`` adapter: a pythae model folder (``model.save(dir)``) as a protocol model.

pythae (Chadebec et al. 2022, https://github.com/clementchadebec/benchmark_VAE)
writes ``model_config.json`` (the config, with the class in ``name``),
``model.pt`` (``{"model_state_dict": ...}``) and, for user-defined networks,
``encoder.pkl`` / ``decoder.pkl`` (cloudpickle). Needs ``pythae``
(``pip install "collapse-diag[pythae]"``).

What runs:

* default networks (``uses_default_encoder`` / ``uses_default_decoder`` true):
  the config class named in the JSON is looked up in a fixed allow-list
  (:data:`SUPPORTED`), pythae builds the model from it (``VAE(VAEConfig(...))``),
  and the weights are read from ``model.pt`` with ``weights_only=True``:
  nothing from the folder runs;
* custom networks: their pickles hold Python code, so the folder is loaded
  with pythae's own loader (``VAE.load_from_folder``, which unpickles them
  with cloudpickle) only with ``--trust-checkpoint``.

The mapping to the protocol (:class:`PythaeVAE`), for pythae's Gaussian VAEs
with the N(0, I) prior::

    encode(x)            = encoder(x).embedding, encoder(x).log_covariance   (a log-variance)
    log_likelihood(x, z) = -recon_loss(decoder(z).reconstruction, x) - c
      "mse": recon_loss = 0.5 * sum_i (r_i - x_i)^2,   c = (D / 2) log(2 pi)
             (log N(x; r, I), the density pythae's 0.5-scaled squared error is minus, up to c)
      "bce": recon_loss = sum_i BCE(r_i, x_i),         c = 0   (Bernoulli; torch clamps log at -100)

with D the number of input values; recon_loss is exactly pythae's
``loss_function`` reconstruction term (pythae/models/vae/vae_model.py).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from collapse_diag.exceptions import CheckpointError
from collapse_diag.io.checkpoint_kinds import PYTHAE_FILES, is_pythae_folder
from collapse_diag.io.files import MAX_CONFIG_BYTES, display_path, read_text_limited
from collapse_diag.io.model_building import file_sha256, finish, fit_weights, read_payload

__all__ = ["SUPPORTED", "PythaeVAE", "load_pythae_folder"]

#: pythae config classes read, and the model class each builds: the Gaussian VAEs with an
#: N(0, I) prior, an ``embedding`` / ``log_covariance`` encoder and the mse / bce loss above.
SUPPORTED = {
    "VAEConfig": "VAE",
    "BetaVAEConfig": "BetaVAE",
    "DisentangledBetaVAEConfig": "DisentangledBetaVAE",
    "BetaTCVAEConfig": "BetaTCVAE",
    "IWAEConfig": "IWAE",
}


class PythaeVAE(nn.Module):
    """A pythae VAE seen through the collapse-diag protocol (formulas in the module docstring).

    Args:
        vae: The pythae model (``pythae.models.VAE`` or a class of :data:`SUPPORTED`).
    """

    def __init__(self, vae: nn.Module) -> None:
        super().__init__()
        self.vae = vae
        self.reconstruction_loss = str(vae.model_config.reconstruction_loss)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z|x) = N(embedding, exp(log_covariance)); x ``[batch, *input_dim]``."""
        out = self.vae.encoder(x)
        return out.embedding, out.log_covariance

    def reconstruction_loss_term(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Pythae's per-input reconstruction loss of ``x`` given ``z``: Tensor ``[batch]``."""
        recon = self.vae.decoder(z)["reconstruction"].reshape(x.shape[0], -1)
        target = x.reshape(x.shape[0], -1)
        if self.reconstruction_loss == "mse":
            return 0.5 * F.mse_loss(recon, target, reduction="none").sum(dim=-1)
        return F.binary_cross_entropy(recon, target, reduction="none").sum(dim=-1)

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """The log-likelihood: minus the reconstruction loss, minus c (module docstring)."""
        loss = self.reconstruction_loss_term(x, z)
        if self.reconstruction_loss == "mse":
            size = x[0].numel()
            return -loss - 0.5 * size * math.log(2 * math.pi)
        return -loss


def _import_pythae() -> Any:
    try:
        import pythae.models as models
    except ImportError as err:
        raise CheckpointError(
            "this is a pythae model folder, and reading it needs pythae: "
            'pip install "collapse-diag[pythae]".'
        ) from err
    return models


def load_pythae_folder(path: str | Path, factory: str | None = None, config: Any = None,
                       trust_checkpoint: bool = False,
                       state_dict_prefix: str | None = None) -> Any:
    """The ``pythae`` adapter: see the module docstring.

    Returns:
        A :class:`~collapse_diag.io.checkpoint.LoadedCheckpoint` (adapter ``pythae``, no
        data; ``sha256`` is that of ``model.pt``, ``factory`` the pythae class).

    Raises:
        CheckpointError: not a pythae folder, pythae missing, an unsupported or
            invalid config, custom networks without trust, weights that do not fit.
    """
    folder = Path(path)
    shown = display_path(folder)
    if factory or config or state_dict_prefix:
        raise CheckpointError(f"--factory, --config and --state-dict-prefix cannot be used with "
                              f"the pythae folder {shown!r}: its model_config.json says it all.")
    if not is_pythae_folder(folder):
        raise CheckpointError(f"{shown!r} is not a pythae model folder: it must hold "
                              f"{' and '.join(PYTHAE_FILES)} (written by model.save(dir)).")
    text = read_text_limited(folder / "model_config.json", "pythae config", MAX_CONFIG_BYTES,
                             CheckpointError)
    try:
        raw = json.loads(text)
    except ValueError as err:
        raise CheckpointError(f"{shown}/model_config.json is not valid JSON ({err}).") from err
    name = raw.get("name") if isinstance(raw, dict) else None
    if name not in SUPPORTED:
        raise CheckpointError(
            f"the pythae model in {shown!r} is {name!r}; this adapter reads {sorted(SUPPORTED)} "
            "(Gaussian VAEs with an N(0, I) prior); wrap other models with collapse_diag.wrap."
        )
    models = _import_pythae()
    model_class = getattr(models, SUPPORTED[name])
    custom = not (raw.get("uses_default_encoder", True) and raw.get("uses_default_decoder", True))
    if custom:
        if not trust_checkpoint:
            raise CheckpointError(
                f"the pythae model in {shown!r} has a custom encoder/decoder saved as "
                "encoder.pkl/decoder.pkl with cloudpickle, which runs Python code when loaded; "
                "pass --trust-checkpoint if you trust the folder (pythae's "
                f"{model_class.__name__}.load_from_folder then loads it)."
            )
        try:
            vae = model_class.load_from_folder(str(folder))
        except (Exception, SystemExit) as err:  # noqa: BLE001 - pythae / unpickling failures
            raise CheckpointError(f"pythae could not load {shown!r}: {type(err).__name__}: "
                                  f"{str(err).splitlines()[0] if str(err) else ''}") from err
    else:
        try:
            vae = model_class(getattr(models, name)(
                **{k: v for k, v in raw.items() if k != "name"}))
        except (Exception, SystemExit) as err:  # noqa: BLE001 - pydantic validation and more
            first = " ".join(str(err).split())[:300]
            raise CheckpointError(f"the config in {shown}/model_config.json is not a valid "
                                  f"{name}: {type(err).__name__}: {first}") from err
        _, payload, _ = read_payload(folder / "model.pt", trust_checkpoint=False)
        state = payload.get("model_state_dict") if isinstance(payload, dict) else None
        if not isinstance(state, dict):
            raise CheckpointError(f"{shown}/model.pt has no 'model_state_dict' (written by "
                                  "pythae's model.save).")
        fit_weights(vae, state, folder / "model.pt", f"pythae.models:{model_class.__name__}")
    return finish(PythaeVAE(vae), None, None, folder, file_sha256(folder / "model.pt"),
                  f"pythae.models:{model_class.__name__}", dict(raw), "pythae")
