"""``CollapseCallback``: a :class:`~collapse_diag.runs.monitor.CollapseMonitor` for Lightning.

Usage::

    import lightning as L
    from collapse_diag.integrations.lightning import CollapseCallback

    trainer = L.Trainer(callbacks=[CollapseCallback(heldout_batch, every_n_steps=200,
                                                    out="collapse.jsonl")])
    trainer.fit(module, train_loader)

The model analysed is the ``LightningModule`` itself, or its attribute named
``model_attr`` (e.g. ``"vae"``, or a dotted path ``"model._orig_mod"``), seen
through ``method_map`` when given (``{"encode": "encode_stats:mu_std",
"log_likelihood": "-recon_loss"}``, docs/adapters.md#method-map): no protocol
method is needed on the LightningModule. With ``stop_on="collapsed"`` (or
``"dimension"``) the callback sets ``trainer.should_stop`` when the model (a
dimension) turns collapsed; every such event also goes to ``on_collapse``, the
log, TensorBoard text and wandb (collapse_diag/runs/alerts.py).
Measurements are taken at global step 0 (before the first update), whenever
``trainer.global_step`` is a multiple of ``every_n_steps`` after a batch, and
at the end of training; only on the global-zero process. The scalars of
:func:`collapse_diag.runs.monitor.scalars` go to the trainer's loggers
(TensorBoard, CSV, ...). Needs ``lightning`` (``pip install "collapse-diag[lightning]"``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

try:
    import lightning.pytorch as pl
except ImportError as err:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "collapse_diag.integrations.lightning needs the 'lightning' package: "
        'pip install "collapse-diag[lightning]".'
    ) from err

from collapse_diag.exceptions import invalid_parameter
from collapse_diag.io.data import Batch
from collapse_diag.runs.monitor import DEFAULT_EVERY, CollapseMonitor, scalars

__all__ = ["CollapseCallback"]


class CollapseCallback(pl.Callback):
    """Run the cheap collapse diagnostics every ``every_n_steps`` optimiser steps.

    Args:
        data: Held-out inputs (a Tensor or dict of Tensors).
        every_n_steps: Measure when ``trainer.global_step`` is a multiple of this.
        out: JSONL file of the measurements (read by ``collapse-diag track``).
        model_attr: Name (or dotted path) of the attribute of the LightningModule holding
            the VAE (``None``: the module itself).
        method_map: A method map (``{protocol name: spec}`` or ``["name=spec", ...]``,
            collapse_diag/model/method_map.py) applied to that model; ``None``: its own
            methods.
        log_to_trainer: Send the scalars to the trainer's loggers.
        **monitor_args: Further arguments of :class:`~collapse_diag.runs.monitor.CollapseMonitor`
            (``full``, ``tensorboard``, settings such as ``max_examples``).
    """

    def __init__(self, data: Batch, every_n_steps: int = DEFAULT_EVERY,
                 out: str | Path | None = "collapse-monitor.jsonl", model_attr: str | None = None,
                 log_to_trainer: bool = True, method_map: Any = None,
                 **monitor_args: Any) -> None:
        super().__init__()
        self.data = data
        self.every_n_steps = every_n_steps
        self.out = out
        self.model_attr = model_attr
        self.method_map = method_map
        self.log_to_trainer = log_to_trainer
        self.monitor_args = monitor_args
        self.monitor: CollapseMonitor | None = None
        self._last_step: int | None = None

    def _model(self, pl_module: Any) -> Any:
        model = pl_module
        for part in (self.model_attr or "").split(".") if self.model_attr else []:
            if not hasattr(model, part):
                raise invalid_parameter("model_attr", "CollapseCallback",
                                        f"an attribute of {type(pl_module).__name__}",
                                        self.model_attr)
            model = getattr(model, part)
        if self.method_map:
            from collapse_diag.model.method_map import map_methods

            model = map_methods(model, self.method_map)
        return model

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        """Build the monitor (validating its arguments) before training starts."""
        if self.monitor is None and trainer.is_global_zero:
            self.monitor = CollapseMonitor(self._model(pl_module), self.data,
                                           every=self.every_n_steps, out=self.out,
                                           **self.monitor_args)

    def _measure(self, trainer: Any, force: bool = False) -> None:
        step = int(trainer.global_step)
        if self.monitor is None or step == self._last_step:
            return
        row = self.monitor.step(step, force=force)
        if row is None:
            return
        self._last_step = step
        if self.monitor.should_stop:
            trainer.should_stop = True
        if self.log_to_trainer:
            values = scalars(row)
            for logger in trainer.loggers:
                logger.log_metrics(values, step=step)

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        """Measure the model as training starts (global step 0 on a fresh run)."""
        self._measure(trainer)

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        """Measure when the global step is due."""
        self._measure(trainer)

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        """Measure the final model."""
        self._measure(trainer, force=True)

    def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
        """Close the monitor's TensorBoard writer, if any."""
        if self.monitor is not None:
            self.monitor.close()
