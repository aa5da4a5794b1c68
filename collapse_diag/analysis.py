"""``analyze``: one encoder pass, the diagnostics, the :class:`~collapse_diag.report.report.Report`.

``analyze`` runs in named steps: validate the settings (:func:`_settings`),
prepare the inputs (:func:`_inputs`: checkpoint, data, labels, subsample), put
the model in eval mode on its device, check it and refuse what cannot work
(:func:`_check_before_encoding`), run the one encoder pass (``encode_all``),
run the diagnostics of :data:`collapse_diag.diagnostics.registry.SPECS` in
order (:func:`_run_diagnostics`), and assemble the report (:func:`_merge`,
:func:`_provenance`).

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
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from collapse_diag._version import __version__
from collapse_diag.config.settings import Settings
from collapse_diag.diagnostics.minimums import require_inputs
from collapse_diag.diagnostics.qualifications import report_warnings
from collapse_diag.diagnostics.registry import SPEC_BY_NAME, SPECS
from collapse_diag.diagnostics.spec import DiagnosticSpec, RunContext
from collapse_diag.exceptions import DiagnosticError, ProtocolError, invalid_parameter
from collapse_diag.io.data import (
    Batch,
    count_distinct,
    num_examples,
    subsample_indices,
    take,
    to_device,
    validate_data,
    validate_labels,
)
from collapse_diag.io.files import display_path
from collapse_diag.io.labels import resolve_labels
from collapse_diag.model.causality import check_teacher_forcing
from collapse_diag.model.encodings import encode_all
from collapse_diag.model.latent_kinds import (
    GAUSSIAN,
    check_latent_model,
    check_latent_rows,
    encode_discrete,
)
from collapse_diag.model.protocol import ModelInfo, coerce_data
from collapse_diag.report.report import Report, ReportSection
from collapse_diag.report.schema import DIMENSION_KEY as DK
from collapse_diag.report.schema import PROVENANCE_KEY as PK
from collapse_diag.runtime import distributed
from collapse_diag.runtime.rng import generator_for

__all__ = ["analyze", "DIAGNOSTICS", "RUN_SETTINGS"]

#: Diagnostic name -> its ``run`` (collapse_diag/diagnostics/registry.py), in run order.
#: ``analyze`` calls each through this mapping, so a benchmark may wrap them
#: (benchmarks/bench_analyze.py); its keys are the names ``Settings.diagnostics`` takes.
DIAGNOSTICS: dict[str, Callable[[RunContext], Any]] = {spec.name: spec.run for spec in SPECS}

#: Settings that ``analyze`` itself or several diagnostics read; every other field of
#: :class:`~collapse_diag.config.settings.Settings` is owned by one spec (``spec.settings``).
#: (``fisher_rank_*``: identifiability and the verdict.)
RUN_SETTINGS = ("seed", "batch_size", "max_examples", "device", "confidence", "alpha",
                "diagnostics", "dtype", "fisher_rank_rtol", "fisher_rank_atol",
                "swap_windows")  # the time windows of the sensitivity and decoded diagnostics

#: The verdict is not a diagnostic one may leave out: it runs whenever these run.
VERDICT_INPUTS = SPEC_BY_NAME["verdict"].runs_with

#: The diagnostics whose decoder passes run under ``Settings.dtype``.
DECODER_DIAGNOSTICS = tuple(spec.name for spec in SPECS if spec.uses_decoder)


def _runs(spec: DiagnosticSpec, selected: tuple[str, ...] | None, kind: str = GAUSSIAN) -> bool:
    """Whether ``spec`` runs under ``Settings.diagnostics = selected`` (``None``: all).

    Only the diagnostics of the model's latent kind run (``spec.kinds``).
    """
    return kind in spec.kinds and (
        selected is None or spec.name in selected
        or (bool(spec.runs_with) and all(n in selected for n in spec.runs_with)))


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
    if device.type == "meta":
        raise invalid_parameter("device", "analyze", "a device that holds data ('meta' "
                                "tensors have none)", name)
    try:  # any other type torch parses (xla, vulkan, hpu, ...): usable only if it allocates
        torch.empty(1, device=device)
    except (RuntimeError, TypeError, ValueError, NotImplementedError, AssertionError) as err:
        raise invalid_parameter("device", "analyze", "a device torch can use on this machine",
                                name) from err
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
    dimensions: list[dict[str, Any]] = [{DK.index: d} for d in range(latent_dim)]
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
    from collapse_diag.io.checkpoint import LoadedCheckpoint

    if not isinstance(model, LoadedCheckpoint):
        return model, data, None, checkpoint, data is not None
    loaded = model
    if data is None and loaded.data is None:
        from collapse_diag.exceptions import DataError

        raise DataError(f"checkpoint {display_path(loaded.path or '')!r} holds no 'data': pass "
                        "the evaluation inputs (--data FILE).")
    record = checkpoint or {"path": display_path(loaded.path or ""), "sha256": loaded.sha256,
                            "adapter": loaded.adapter}
    if checkpoint is None and loaded.config_source:
        record.update(factory=loaded.factory, config_source=loaded.config_source)
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
            :class:`~collapse_diag.io.checkpoint.LoadedCheckpoint`: its stored inputs
            (unless ``data`` is given), labels and file (path, SHA-256, adapter) are used.
        data: Evaluation inputs: a Tensor or dict of Tensors sharing dimension 0
            (optional for a loaded checkpoint that stores them).
        labels: Optional known factors per input (name -> integer array ``[n]``), or
            a labels file (collapse_diag/io/labels.py); enables the linear probes.
            Which labels were used is recorded in ``provenance.labels``.
        checkpoint: ``{"path", "sha256"}`` of the file the model came from, recorded
            in the report.
        show_progress: Progress bars on stderr (when it is a terminal).
        save_encodings: Write mu(x) and logvar(x) of the analysed inputs to this
            ``.npz`` file (collapse_diag/report/encodings_file.py), for ``compare``.
        **settings: Any field of :class:`~collapse_diag.config.settings.Settings`
            (``seed``, ``batch_size``, ``max_examples``, ``device``, thresholds, ...).

    Returns:
        The :class:`~collapse_diag.report.report.Report`. Diagnostics that failed are
        named in ``report.errors``.

    Raises:
        InvalidParameterError: a bad setting.
        DataError: empty or malformed inputs or labels.
        ProtocolError: the model breaks the protocol.
    """
    cfg = _settings(settings)
    device = distributed.setup(_resolve_device(cfg.device))  # torchrun: join, cuda:LOCAL_RANK
    show_progress = show_progress and distributed.is_main()
    _check_dtype(cfg.dtype, device)
    inputs = _inputs(model, data, labels, checkpoint, cfg)
    model, data = inputs.model, inputs.data
    with _eval_mode(model, device), _host_blas_on_one_thread():
        data, info = _checked(model, data, device, cfg.seed)
        distinct = _check_before_encoding(info, save_encodings, data, cfg)
        encodings = (encode_all(model, data, info, cfg.batch_size, device, show_progress,
                                generator_for(cfg.seed, "prior")) if info.kind == GAUSSIAN
                     else encode_discrete(model, data, info, cfg.batch_size, device,
                                          show_progress))
        context = RunContext(model, data, inputs.labels, info, encodings, cfg, show_progress)
        sections, errors, timings = _run_diagnostics(context, device)
    summary, dimensions, distributions = _merge(sections, info.latent_dim)
    data_sha256 = _data_sha256(data)
    if save_encodings is not None and distributed.is_main():
        from collapse_diag.report.encodings_file import save_encodings as write_encodings

        write_encodings(save_encodings, encodings, data_sha256)
    report = Report(
        n_examples=encodings.n_examples,
        latent_dim=info.latent_dim,
        summary=summary,
        dimensions=dimensions,
        settings=cfg.to_dict(),
        checkpoint=dict(inputs.checkpoint) if inputs.checkpoint else None,
        provenance=_provenance(model, inputs, info, data_sha256, device, distinct),
        distributions=distributions,
        errors=errors,
        timings=timings,
    )
    report.warnings = report_warnings(report)
    return report


def _settings(settings: dict[str, Any]) -> Settings:
    """The validated settings; ``diagnostics`` must name registered diagnostics."""
    cfg = Settings.from_kwargs("analyze", **settings)
    unknown = sorted(set(cfg.diagnostics or ()) - set(DIAGNOSTICS))
    if unknown:
        raise invalid_parameter("diagnostics", "analyze", f"names from {list(DIAGNOSTICS)}",
                                unknown)
    return cfg


class _Inputs(NamedTuple):
    """The model and the inputs to analyse, after the ``max_examples`` subsample."""

    model: Any
    data: Batch
    labels: dict[str, np.ndarray] | None
    labels_note: str
    checkpoint: Mapping[str, str] | None
    n_total: int


def _inputs(model: Any, data: Batch | None, labels: Mapping[str, Any] | str | Path | None,
            checkpoint: Mapping[str, str] | None, cfg: Settings) -> _Inputs:
    """Unpack a checkpoint, validate the data and labels, draw the seeded subsample."""
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
    return _Inputs(model, data, label_arrays, labels_note, checkpoint, n_total)


@contextlib.contextmanager
def _eval_mode(model: Any, device: torch.device) -> Iterator[None]:
    """An ``nn.Module`` on ``device`` in eval mode; its training mode is restored after."""
    was_training = bool(getattr(model, "training", False))
    if isinstance(model, torch.nn.Module):
        model.to(device)
        model.eval()
    try:
        yield
    finally:
        if isinstance(model, torch.nn.Module) and was_training:
            model.train()


@contextlib.contextmanager
def _host_blas_on_one_thread() -> Iterator[None]:
    """The OpenBLAS of numpy and scipy on one thread during the analysis (torch's untouched).

    The toolkit's numpy/scipy linear algebra is small (per-dimension statistics,
    probes), and OpenBLAS's idle workers spin after each call, competing with the
    model for the cores (seen in the Fisher bootstrap's former numpy loop: 0.8-4 CPU
    seconds of spinning on 2 cores). The limit is lifted afterwards.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


def _checked(model: Any, data: Batch, device: torch.device, seed: int = 0
             ) -> tuple[Batch, ModelInfo]:
    """The inputs coerced to the model's dtype, and the protocol check.

    :func:`~collapse_diag.model.protocol.check_model` on the first four inputs, and its
    row-wise checks again on four others drawn with the run's seed (a model that
    breaks the protocol only later in the data is caught before any figure), and the
    teacher-forcing contract of ``posterior(x, z)`` / ``prior(x, z)``
    (:func:`~collapse_diag.model.causality.check_teacher_forcing`).
    """
    data = coerce_data(model, data)
    # the model runs on a copy: the caller's tensors stay as they are, whatever the model does
    data = (data.clone() if isinstance(data, torch.Tensor)
            else {k: v.clone() for k, v in data.items()})
    info = check_latent_model(model, to_device(take(data, slice(0, 4)), device))
    check_teacher_forcing(model, to_device(take(data, slice(0, 4)), device), info,
                          generator_for(seed, "teacher_forcing"), device)
    n = num_examples(data)
    if n > 4:
        rows = 4 + torch.randperm(n - 4, generator=generator_for(seed, "protocol"))[:4]
        try:
            check_latent_rows(model, to_device(take(data, rows.sort().values), device), info)
        except DiagnosticError as err:
            raise ProtocolError(str(err)) from err
    return data, info


def model_info(model: Any, data: Batch, device: str = "cpu") -> ModelInfo:
    """What ``analyze`` learns of ``model`` before its encoder pass (latent shape, prior, ...).

    The same protocol check on the first four inputs, in eval mode (the mode is restored).

    Raises:
        DataError: empty or malformed inputs.
        ProtocolError: the model breaks the protocol.
    """
    data = validate_data(data, "the data")
    resolved = _resolve_device(device)
    with _eval_mode(model, resolved):
        return _checked(model, data, resolved)[1]


def _check_before_encoding(info: ModelInfo, save_encodings: str | Path | None, data: Batch,
                           cfg: Settings) -> int:
    """Refuse before the encoder pass: saved sequential encodings, too few (distinct) inputs.

    Returns:
        How many of the inputs are distinct.
    """
    if info.sequential and save_encodings is not None:
        raise invalid_parameter("save_encodings", "analyze", "None for a model with "
                                "sequential latents (compare does not read [N, T, D] "
                                "encodings yet)", str(save_encodings))
    if info.kind != GAUSSIAN and save_encodings is not None:
        raise invalid_parameter("save_encodings", "analyze", f"None for a model with {info.kind}"
                                " latents (compare reads Gaussian encodings only)",
                                str(save_encodings))
    distinct = count_distinct(data)
    require_inputs(num_examples(data), [spec.name for spec in SPECS
                                        if _runs(spec, cfg.diagnostics, info.kind)], distinct)
    return distinct


def _run_diagnostics(context: RunContext, device: torch.device
                     ) -> tuple[list[ReportSection], dict[str, str], dict[str, float]]:
    """Run the selected diagnostics in registry order, isolating failures (modelscan).

    Returns:
        The report sections of the results, the error message per failed
        diagnostic and the seconds each took.
    """
    cfg = context.settings
    sections: list[ReportSection] = []
    errors: dict[str, str] = {}
    timings: dict[str, float] = {}
    for spec in SPECS:
        if not _runs(spec, cfg.diagnostics, context.info.kind):
            continue
        start = time.perf_counter()
        try:  # the section too: a result that cannot say its fields is a failed diagnostic
            with _precision(spec.name, cfg.dtype, device):
                result = DIAGNOSTICS[spec.name](context)
            section = None if result is None else result.section()
        except (Exception, SystemExit) as err:  # noqa: BLE001 - isolate failures, record them
            errors[spec.name] = f"{type(err).__name__}: {err}"
            result = section = None
        timings[spec.name] = round(time.perf_counter() - start, 4)
        if result is not None:
            context.results[spec.name] = result
        if section is not None:
            sections.append(section)
    return sections, errors, timings


def _provenance(model: Any, inputs: _Inputs, info: ModelInfo, data_sha256: str,
                device: torch.device, distinct: int) -> dict[str, Any]:
    """How the report was produced (schema ``PROVENANCE``)."""
    return {
        PK.created: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        PK.model: type(model).__name__,
        PK.n_examples_total: inputs.n_total,
        PK.distinct_inputs: distinct,
        PK.data_sha256: data_sha256,
        PK.has_prior: info.has_prior,
        PK.has_num_tokens: info.has_num_tokens,
        PK.latent_steps: info.steps,
        PK.latent_kind: info.kind,
        PK.codebook_size: info.classes,
        PK.labels: inputs.labels_note,
        PK.method_map: getattr(model, "method_map", None),
        PK.device: str(device),
        PK.versions: {
            "collapse_diag": __version__,
            "python": platform.python_version(),
            "torch": torch.__version__,
            "numpy": np.__version__,
        },
    }
