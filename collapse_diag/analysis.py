"""``analyze``: one encoder pass, the diagnostics, and the :class:`~collapse_diag.report.Report`.

Failures are isolated (the modelscan convention): a diagnostic that raises is
recorded in ``report.errors`` and the others still run. Problems with the model
or the inputs themselves (protocol violations, empty data, bad settings) are
raised before any diagnostic starts.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import platform
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from collapse_diag import distributed
from collapse_diag._version import __version__
from collapse_diag.data import (
    Batch,
    num_examples,
    subsample_indices,
    take,
    to_device,
    validate_data,
    validate_labels,
)
from collapse_diag.diagnostics.activity import activity_diagnostic
from collapse_diag.diagnostics.identifiability import identifiability_diagnostic
from collapse_diag.diagnostics.information import information_diagnostic
from collapse_diag.diagnostics.kl import kl_diagnostic
from collapse_diag.diagnostics.likelihood import likelihood_diagnostic
from collapse_diag.diagnostics.probes import probe_factors
from collapse_diag.diagnostics.sensitivity import sensitivity_diagnostic
from collapse_diag.diagnostics.verdict import decide_verdict, informative_dims, swap_reference
from collapse_diag.encodings import Encodings, encode_all
from collapse_diag.exceptions import CollapseDiagError, DiagnosticError, invalid_parameter
from collapse_diag.files import display_path
from collapse_diag.labels_file import resolve_labels
from collapse_diag.minimums import require_inputs
from collapse_diag.protocol import ModelInfo, check_model, coerce_data
from collapse_diag.report import Report, ReportSection
from collapse_diag.rng import generator_for
from collapse_diag.settings import Settings

__all__ = ["analyze", "DIAGNOSTICS"]


@dataclass
class _Run:
    """Everything a diagnostic may read, and the results computed so far."""

    model: Any
    data: Batch
    labels: dict[str, np.ndarray] | None
    info: ModelInfo
    encodings: Encodings
    settings: Settings
    show_progress: bool
    results: dict[str, Any] = field(default_factory=dict)

    def generator(self, name: str) -> torch.Generator:
        return generator_for(self.settings.seed, name)


def _kl(run: _Run) -> Any:
    return kl_diagnostic(run.encodings, eps=run.settings.kl_eps)


def _activity(run: _Run) -> Any:
    return activity_diagnostic(run.encodings, threshold=run.settings.active_threshold)


def _information(run: _Run) -> Any:
    s = run.settings
    kl = run.results.get("kl") or kl_diagnostic(run.encodings, eps=s.kl_eps)
    return information_diagnostic(
        run.encodings, run.generator("information"), mean_kl=kl.total, samples=s.mi_samples,
        max_components=s.mi_max_components, saturation_margin=s.mi_saturation_margin,
        bootstrap=s.mi_bootstrap, confidence=s.confidence,
    )


def _decoder_args(run: _Run, name: str) -> tuple:
    return (run.model, run.data, run.encodings, run.info, run.settings, run.generator(name))


def _sensitivity(run: _Run) -> Any:
    kl, activity = run.results.get("kl"), run.results.get("activity")
    return sensitivity_diagnostic(*_decoder_args(run, "sensitivity"),
                                  show_progress=run.show_progress,
                                  informative=informative_dims(kl, activity),
                                  information=swap_reference(run.results.get("information"), kl))


def _identifiability(run: _Run) -> Any:
    sensitivity = run.results.get("sensitivity")
    return identifiability_diagnostic(
        *_decoder_args(run, "identifiability"), show_progress=run.show_progress,
        reconstruction=sensitivity.reconstruction if sensitivity is not None else None,
    )


def _likelihood(run: _Run) -> Any:
    return likelihood_diagnostic(*_decoder_args(run, "likelihood"),
                                 show_progress=run.show_progress)


def _verdict(run: _Run) -> Any:
    kl, activity = run.results.get("kl"), run.results.get("activity")
    if kl is None or activity is None:
        raise CollapseDiagError("the verdict needs the kl and activity diagnostics, which failed.")
    return decide_verdict(kl, activity, run.results.get("sensitivity"),
                          run.results.get("identifiability"), run.settings)


def _probes(run: _Run) -> Any:
    if not run.labels:
        return None
    if run.encodings.sequential:
        raise DiagnosticError("the linear probes do not support sequential latents z [B, T, D] "
                              "yet: analyse without --labels.")
    return probe_factors(run.encodings.mu, run.labels, seed=run.settings.seed,
                         logvar=run.encodings.logvar)


#: The diagnostics, in the order they run (later ones read earlier results).
DIAGNOSTICS: dict[str, Callable[[_Run], Any]] = {
    "kl": _kl,
    "activity": _activity,
    "information": _information,
    "sensitivity": _sensitivity,
    "identifiability": _identifiability,
    "verdict": _verdict,
    "probes": _probes,
    "likelihood": _likelihood,
}


#: The verdict is not a diagnostic one may leave out: it runs whenever these run.
VERDICT_INPUTS = ("kl", "activity")


def _runs(name: str, selected: tuple[str, ...] | None) -> bool:
    """Whether ``name`` runs under ``Settings.diagnostics = selected`` (``None``: all)."""
    return (selected is None or name in selected
            or (name == "verdict" and all(n in selected for n in VERDICT_INPUTS)))


#: The diagnostics that call the decoder: they run under ``Settings.dtype``.
DECODER_DIAGNOSTICS = ("sensitivity", "identifiability")


def _precision(name: str, dtype: str, device: torch.device) -> Any:
    """``torch.autocast`` to ``dtype`` for a decoder diagnostic, else a no-op context."""
    if dtype == "float32" or name not in DECODER_DIAGNOSTICS:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=getattr(torch, dtype))


def _data_sha256(data: Batch) -> str:
    digest = hashlib.sha256()
    items = [("", data)] if isinstance(data, torch.Tensor) else sorted(data.items())
    for name, tensor in items:
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def _resolve_device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as err:
        raise invalid_parameter("device", "analyze", "a torch device such as 'cpu' or 'cuda'",
                                name) from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise invalid_parameter("device", "analyze", "a device this machine has (CUDA is not "
                                "available here; use 'cpu')", name)
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise invalid_parameter("device", "analyze", "a device this machine has", name)
    return device


def _check_dtype(dtype: str, device: torch.device) -> None:
    """Reject a low precision that autocast cannot give on ``device``."""
    if dtype == "float32":
        return
    if not torch.amp.is_autocast_available(device.type):
        raise invalid_parameter("dtype", "analyze", f"'float32' on device {device.type!r} "
                                "(autocast is not available there)", dtype)
    if dtype == "bfloat16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise invalid_parameter("dtype", "analyze", "'float16' or 'float32' on this GPU "
                                "(it has no bfloat16)", dtype)


def _merge(sections: list[ReportSection], latent_dim: int) -> tuple[dict, list[dict], dict]:
    summary: dict[str, Any] = {}
    dimensions: list[dict[str, Any]] = [{"index": d} for d in range(latent_dim)]
    distributions: dict[str, list[Any]] = {}
    for section in sections:
        summary.update(section.summary)
        for column, values in section.dimensions.items():
            for row, value in zip(dimensions, values):
                row[column] = value
        distributions.update(section.distributions)
    return summary, dimensions, distributions


def _unpack_checkpoint(model: Any, data: Batch | None, checkpoint: Mapping[str, str] | None
                       ) -> tuple[Any, Batch | None, Any, Mapping[str, str] | None, bool]:
    """``(model, data, stored labels, checkpoint record, data given)`` of a model or checkpoint."""
    from collapse_diag.checkpoint import LoadedCheckpoint

    if not isinstance(model, LoadedCheckpoint):
        return model, data, None, checkpoint, data is not None
    loaded = model
    if data is None and loaded.data is None:
        from collapse_diag.exceptions import DataError

        raise DataError(f"checkpoint {display_path(loaded.path or '')!r} holds no 'data': pass "
                        "the evaluation inputs (--data FILE).")
    record = checkpoint or {"path": display_path(loaded.path or ""), "sha256": loaded.sha256,
                            "adapter": loaded.adapter}
    return (loaded.model, loaded.data if data is None else data, loaded.labels, record,
            data is not None)


def analyze(
    model: Any,
    data: Batch | None = None,
    *,
    labels: Mapping[str, Any] | str | Path | None = None,
    checkpoint: Mapping[str, str] | None = None,
    show_progress: bool = False,
    save_encodings: str | Path | None = None,
    **settings: Any,
) -> Report:
    """Diagnose posterior collapse in a trained VAE.

    Args:
        model: A model following the protocol (docs/model-protocol.md), or a
            :class:`~collapse_diag.checkpoint.LoadedCheckpoint`: its stored inputs
            (unless ``data`` is given), labels and file (path, SHA-256, adapter) are used.
        data: Evaluation inputs: a Tensor or dict of Tensors sharing dimension 0
            (optional for a loaded checkpoint that stores them).
        labels: Optional known factors per input (name -> integer array ``[n]``), or
            a labels file (collapse_diag/labels_file.py); enables the linear probes.
            Which labels were used is recorded in ``provenance.labels``.
        checkpoint: ``{"path", "sha256"}`` of the file the model came from, recorded
            in the report.
        show_progress: Progress bars on stderr (when it is a terminal).
        save_encodings: Write mu(x) and logvar(x) of the analysed inputs to this
            ``.npz`` file (collapse_diag/encodings_file.py), for ``compare``.
        **settings: Any field of :class:`~collapse_diag.settings.Settings`
            (``seed``, ``batch_size``, ``max_examples``, ``device``, thresholds, ...).

    Returns:
        The :class:`~collapse_diag.report.Report`. Diagnostics that failed are
        named in ``report.errors``.

    Raises:
        InvalidParameterError: a bad setting.
        DataError: empty or malformed inputs or labels.
        ProtocolError: the model breaks the protocol.
    """
    cfg = Settings.from_kwargs("analyze", **settings)
    unknown = sorted(set(cfg.diagnostics or ()) - set(DIAGNOSTICS))
    if unknown:
        raise invalid_parameter("diagnostics", "analyze", f"names from {list(DIAGNOSTICS)}",
                                unknown)
    device = distributed.setup(_resolve_device(cfg.device))  # torchrun: join, cuda:LOCAL_RANK
    show_progress = show_progress and distributed.is_main()
    _check_dtype(cfg.dtype, device)
    model, data, stored, checkpoint, data_given = _unpack_checkpoint(model, data, checkpoint)
    data = validate_data(data, "the data")
    n_total = num_examples(data)
    labels, labels_note = resolve_labels(labels, stored, n_total, data_given)
    label_arrays = validate_labels(labels, n_total) if labels else None
    index = subsample_indices(n_total, cfg.max_examples, generator_for(cfg.seed, "subsample"))
    if len(index) < n_total:
        data = take(data, index)
        if label_arrays:
            label_arrays = {k: v[index.numpy()] for k, v in label_arrays.items()}

    was_training = bool(getattr(model, "training", False))
    if isinstance(model, torch.nn.Module):
        model.to(device)
        model.eval()
    try:
        data = coerce_data(model, data)
        info = check_model(model, to_device(take(data, slice(0, 4)), device))
        if info.sequential and save_encodings is not None:
            raise invalid_parameter("save_encodings", "analyze", "None for a model with "
                                    "sequential latents (compare does not read [N, T, D] "
                                    "encodings yet)", str(save_encodings))
        require_inputs(num_examples(data), [name for name in DIAGNOSTICS
                                            if _runs(name, cfg.diagnostics)])
        encodings = encode_all(model, data, info, cfg.batch_size, device, show_progress,
                               generator_for(cfg.seed, "prior"))
        run = _Run(model, data, label_arrays, info, encodings, cfg, show_progress)
        sections, errors, timings = [], {}, {}
        for name, diagnostic in DIAGNOSTICS.items():
            if not _runs(name, cfg.diagnostics):
                continue
            start = time.perf_counter()
            try:
                with _precision(name, cfg.dtype, device):
                    result = diagnostic(run)
            except (Exception, SystemExit) as err:  # noqa: BLE001 - isolate failures, record them
                errors[name] = f"{type(err).__name__}: {err}"
                result = None
            timings[name] = round(time.perf_counter() - start, 4)
            if result is not None:
                run.results[name] = result
                sections.append(result.section())
    finally:
        if isinstance(model, torch.nn.Module) and was_training:
            model.train()

    summary, dimensions, distributions = _merge(sections, info.latent_dim)
    data_sha256 = _data_sha256(data)
    if save_encodings is not None and distributed.is_main():
        from collapse_diag.encodings_file import save_encodings as write_encodings

        write_encodings(save_encodings, encodings, data_sha256)
    return Report(
        n_examples=encodings.n_examples,
        latent_dim=info.latent_dim,
        summary=summary,
        dimensions=dimensions,
        settings=cfg.to_dict(),
        checkpoint=dict(checkpoint) if checkpoint else None,
        provenance={
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "model": type(model).__name__,
            "n_examples_total": n_total,
            "data_sha256": data_sha256,
            "has_prior": info.has_prior,
            "has_num_tokens": info.has_num_tokens,
            "latent_steps": info.steps,
            "labels": labels_note,
            "device": str(device),
            "versions": {
                "collapse_diag": __version__,
                "python": platform.python_version(),
                "torch": torch.__version__,
                "numpy": np.__version__,
            },
        },
        distributions=distributions,
        errors=errors,
        timings=timings,
    )
