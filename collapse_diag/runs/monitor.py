"""``CollapseMonitor``: the cheap diagnostics, every N steps, inside a training loop.

Usage in a plain PyTorch loop::

    from collapse_diag.runs.monitor import CollapseMonitor

    monitor = CollapseMonitor(model, heldout_batch, every=500, out="runs/collapse.jsonl")
    for step in range(n_steps):
        ...                       # forward, backward, optimiser step
        monitor.step(step)        # or monitor(step): runs when step % every == 0
    # later: collapse-diag track runs/collapse.jsonl --out runs/trajectory

Each due call analyses the same held-out batch with the same seed (the cheap
preset of :mod:`collapse_diag.config.presets`, or the full analysis) under
``torch.no_grad()`` with the model in eval mode, then restores every
submodule's own training flag, so dropout and batch norm behave in training as
before. It draws only from its own seeded generators (never the global RNG),
appends one JSON line (a trajectory row, see :mod:`collapse_diag.runs.trajectory`)
and, when asked, logs scalars to TensorBoard.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from collapse_diag.analysis import analyze
from collapse_diag.config.presets import preset_settings
from collapse_diag.config.settings import Settings
from collapse_diag.exceptions import invalid_parameter
from collapse_diag.io.data import Batch, num_examples, subsample_indices, take, validate_data
from collapse_diag.report.schema import DIMENSION_KEY as D
from collapse_diag.report.schema import SUMMARY_KEY as S
from collapse_diag.report.schema import TOP_LEVEL_KEY as T
from collapse_diag.runs.alerts import CollapseAlerts
from collapse_diag.runs.trajectory import MONITOR_KEY as M
from collapse_diag.runs.trajectory import (
    MONITOR_KIND,
    SCALAR_FIELDS,
    TRAJECTORY_SCHEMA_VERSION,
    row_from_report,
)
from collapse_diag.runs.trajectory import ROW_KEY as R
from collapse_diag.runtime import distributed
from collapse_diag.runtime.rng import generator_for

__all__ = ["DEFAULT_EVERY", "CollapseMonitor", "scalars"]

#: Default steps between two measurements (its overhead: benchmarks/bench_monitor.py).
DEFAULT_EVERY = 500
#: The Settings field naming the device (a setting, not the report's provenance.device).
_DEVICE = "device"


def scalars(row: Mapping[str, Any], prefix: str = "collapse") -> dict[str, float]:
    """The numbers of a monitor row as flat scalar names (for TensorBoard or a logger).

    ``prefix/kl``, ``prefix/mutual_information``, ... (the summary figures of
    :data:`~collapse_diag.runs.trajectory.SCALAR_FIELDS`), ``prefix/kl_z{d}``,
    ``prefix/kl_refined_z{d}`` (when the full preset ran the refinement) and
    ``prefix/status_{name}`` (dimensions per status); missing figures are left out.
    """
    summary = row.get(R.summary) or {}
    out = {f"{prefix}/{k}": float(summary[k]) for k in SCALAR_FIELDS
           if isinstance(summary.get(k), (int, float)) and not isinstance(summary[k], bool)}
    for dim in row.get(R.dimensions) or []:
        if isinstance(dim.get(D.kl), (int, float)):
            out[f"{prefix}/kl_z{dim[D.index]}"] = float(dim[D.kl])
        if isinstance(dim.get(D.kl_refined), (int, float)):
            out[f"{prefix}/kl_refined_z{dim[D.index]}"] = float(dim[D.kl_refined])
    for name, count in (summary.get(S.status_counts) or {}).items():
        out[f"{prefix}/status_{name}"] = float(count)
    return out


def _tensorboard_writer(target: Any) -> Any:
    if target is None or target is False:
        return None
    if hasattr(target, "add_scalar"):
        return target
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as err:
        raise invalid_parameter(
            "tensorboard", "CollapseMonitor", "None when the tensorboard package is not "
            "installed (pip install tensorboard, or collapse-diag[tensorboard])", target) from err
    return SummaryWriter(log_dir=str(target))


class CollapseMonitor:
    """Run the cheap collapse diagnostics on a fixed held-out batch during training.

    Args:
        model: The model being trained (follows the protocol, docs/model-protocol.md).
        data: Held-out inputs (a Tensor or dict of Tensors), kept on the CPU; at most
            ``max_examples`` of them (a seeded subset, chosen once) are analysed.
        every: Measure when ``step % every == 0``.
        out: JSONL file receiving one line per measurement (appended; ``None``: none).
        full: Run the full analysis instead of the cheap preset (slower).
        tensorboard: A log folder or a ``SummaryWriter`` to receive the scalars of
            :func:`scalars` (needs the ``tensorboard`` package); ``None``: no logging.
        on_collapse: Called with a :class:`~collapse_diag.runs.alerts.CollapseEvent` when a
            dimension or the model turns collapsed (events also go to the
            ``collapse_diag.monitor`` logger, TensorBoard text and an active wandb run:
            collapse_diag/runs/alerts.py).
        stop_on: ``"collapsed"`` (the verdict) or ``"dimension"`` (any dimension): set
            :attr:`should_stop` when it turns collapsed; ``None``: never.
        wandb: ``None`` (log events to the active wandb run, if any), ``False``, ``True``
            (wandb required) or a wandb run.
        **settings: :class:`~collapse_diag.config.settings.Settings` fields overriding the
            preset. ``device`` defaults to the device of the model's parameters.

    Raises:
        InvalidParameterError: a bad ``every``, setting or ``tensorboard`` target
            (checked here, before training starts).
        DataError: empty or malformed ``data``.
    """

    def __init__(self, model: Any, data: Batch, every: int = DEFAULT_EVERY,
                 out: str | Path | None = "collapse-monitor.jsonl", *, full: bool = False,
                 tensorboard: Any = None, on_collapse: Any = None, stop_on: str | None = None,
                 wandb: Any = None, **settings: Any) -> None:
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise invalid_parameter("every", "CollapseMonitor", "an int >= 1", every)
        self.model = model
        self.every = every
        self.out = None if out is None else Path(out)
        self.full = full
        self.settings = preset_settings(full, settings)
        cfg = Settings.from_kwargs("CollapseMonitor", **self.settings)
        data = validate_data(data, "the monitor's data")
        index = subsample_indices(num_examples(data), cfg.max_examples,
                                  generator_for(cfg.seed, "subsample"))
        self.data = take(data, index)
        self.alerts = CollapseAlerts(on_collapse, stop_on, wandb)
        self.writer = _tensorboard_writer(tensorboard)
        self.rows: list[dict[str, Any]] = []

    @property
    def should_stop(self) -> bool:
        """Whether ``stop_on``'s event happened (plain loop: ``if monitor.should_stop: break``)."""
        return self.alerts.should_stop

    def _device(self) -> str:
        if _DEVICE in self.settings:
            return str(self.settings[_DEVICE])
        params = getattr(self.model, "parameters", None)
        first = next(iter(params()), None) if callable(params) else None
        return str(first.device) if first is not None else "cpu"

    def due(self, step: int) -> bool:
        """Whether :meth:`step` measures at ``step``."""
        return step % self.every == 0

    def step(self, step: int, force: bool = False) -> dict[str, Any] | None:
        """Measure at ``step`` when it is due (or ``force``).

        Returns:
            The row written (see :func:`~collapse_diag.runs.trajectory.row_from_report`),
            or ``None`` when not due.
        """
        if not (force or self.due(step)):
            return None
        modules = list(self.model.modules()) if isinstance(self.model, torch.nn.Module) else []
        flags = [m.training for m in modules]
        start = time.perf_counter()
        try:
            # Alone even inside a DDP job: a callback runs it on one rank only (lightning's
            # on global zero), where sharding would wait forever for the other ranks.
            with torch.no_grad(), distributed.local():
                report = analyze(self.model, self.data,
                                 **dict(self.settings, device=self._device()))
        finally:
            for module, flag in zip(modules, flags):
                module.training = flag
        record = report.to_dict()
        row = row_from_report(record, step)
        line = {M.kind: MONITOR_KIND, M.schema_version: TRAJECTORY_SCHEMA_VERSION, **row,
                M.preset: "full" if self.full else "cheap", M.settings: record[T.settings],
                M.seconds: round(time.perf_counter() - start, 4)}
        if self.out is not None:
            self.out.parent.mkdir(parents=True, exist_ok=True)
            with open(self.out, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(line, allow_nan=False) + "\n")
        if self.writer is not None:
            for name, value in scalars(row).items():
                self.writer.add_scalar(name, value, step)
            self.writer.flush()
        self.rows.append(row)
        self.alerts.emit(self.alerts.observe(row, step), self.writer)
        return row

    __call__ = step

    def close(self) -> None:
        """Close the TensorBoard writer, if any."""
        if self.writer is not None:
            self.writer.close()
