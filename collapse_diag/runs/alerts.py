"""Alerts where people watch training: events when a dimension or the model turns collapsed.

:class:`~collapse_diag.runs.monitor.CollapseMonitor` (and the Lightning
callback built on it) compares each measurement with the previous one and
emits a :class:`CollapseEvent` when

* a dimension's status becomes ``collapsed`` (kind ``"dimension"``, one event
  naming every dimension that turned at that step), or
* the verdict becomes ``collapsed`` (kind ``"model"``).

The first measurement is the baseline: it emits nothing (an untrained model is
often "collapsed" at step 0; what matters is a model that was not and becomes
so). Each event goes to every channel asked for:

* a Python hook, ``on_collapse(event)``;
* a log line: ``logging.getLogger("collapse_diag.monitor").warning(event.message)``;
* a TensorBoard text entry (tag ``collapse/events``) when the monitor logs to TensorBoard;
* Weights & Biases, when a wandb run is active (``wandb.init`` was called) or one is
  given: ``run.log({"collapse/event": message, "collapse/collapsed_dims": n})``
  and ``run.alert(...)`` (W&B's own notification; a no-op offline).

``stop_on`` asks the training to stop: ``"collapsed"`` when the model's
verdict becomes collapsed, ``"dimension"`` when any dimension does. The
monitor then sets ``should_stop`` (a plain loop checks it: ``if
monitor.should_stop: break``); the Lightning callback sets
``trainer.should_stop``.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from collapse_diag.exceptions import invalid_parameter
from collapse_diag.report.schema import DIMENSION_KEY as D
from collapse_diag.report.schema import SUMMARY_KEY as S
from collapse_diag.runs.trajectory import ROW_KEY as R

__all__ = ["STOP_ON", "CollapseAlerts", "CollapseEvent", "LOGGER"]

#: ``stop_on`` values: the event kind that stops training.
STOP_ON = {"collapsed": "model", "dimension": "dimension"}
#: The logger receiving one warning per event.
LOGGER = logging.getLogger("collapse_diag.monitor")
_COLLAPSED = "collapsed"


@dataclass(frozen=True)
class CollapseEvent:
    """A dimension or the model turned collapsed at a measurement.

    Attributes:
        step: The training step of the measurement.
        kind: ``"dimension"`` or ``"model"``.
        dimensions: The dimensions whose status turned ``collapsed`` (kind
            ``"dimension"``), or every collapsed dimension (kind ``"model"``).
        verdict: The verdict at this step.
        message: One line saying what happened.
    """

    step: int
    kind: str
    dimensions: tuple[int, ...]
    verdict: str
    message: str


def _statuses(row: Mapping[str, Any]) -> dict[int, str]:
    return {int(d[D.index]): str(d.get(D.status)) for d in row.get(R.dimensions) or []}


def _wandb_run(target: Any) -> Any:
    """The W&B run to log to: ``target`` itself, else the active run of an imported wandb.

    With ``target=None`` wandb is not imported here: a script that logs to W&B has
    imported it (``wandb.init``), and one that does not pays nothing.
    """
    if target is False:
        return None
    if target is not None and target is not True:
        return target
    if target is None:
        wandb = sys.modules.get("wandb")
        return getattr(wandb, "run", None)
    try:
        import wandb
    except ImportError as err:
        raise invalid_parameter("wandb", "CollapseMonitor", "None or False when wandb is "
                                'not installed (pip install "collapse-diag[wandb]")',
                                target) from err
    return wandb.run


class CollapseAlerts:
    """Turn successive monitor rows into :class:`CollapseEvent` s and send them out.

    Args:
        on_collapse: Called with each event (``None``: no hook).
        stop_on: ``None``, or a key of :data:`STOP_ON`.
        wandb: ``None`` (the active wandb run, if wandb is installed and a run
            is active), ``True`` (require wandb), ``False`` (never), or a run object.

    Raises:
        InvalidParameterError: a bad ``stop_on`` or ``on_collapse``.
    """

    def __init__(self, on_collapse: Callable[[CollapseEvent], Any] | None = None,
                 stop_on: str | None = None, wandb: Any = None) -> None:
        if on_collapse is not None and not callable(on_collapse):
            raise invalid_parameter("on_collapse", "CollapseMonitor", "a callable or None",
                                    on_collapse)
        if stop_on is not None and stop_on not in STOP_ON:
            raise invalid_parameter("stop_on", "CollapseMonitor",
                                    f"None or one of {sorted(STOP_ON)}", stop_on)
        self.on_collapse = on_collapse
        self.stop_on = stop_on
        self.wandb = wandb
        if wandb is True:  # wandb required but not installed: fails here, before training
            _wandb_run(wandb)
        self.should_stop = False
        self.events: list[CollapseEvent] = []
        self._previous: Mapping[str, Any] | None = None

    def observe(self, row: Mapping[str, Any], step: int) -> list[CollapseEvent]:
        """The events of ``row`` against the previous row (none for the first)."""
        previous, self._previous = self._previous, row
        if previous is None:
            return []
        before, now = _statuses(previous), _statuses(row)
        verdict = str((row.get(R.summary) or {}).get(S.verdict))
        was = str((previous.get(R.summary) or {}).get(S.verdict))
        events = []
        turned = tuple(d for d, s in now.items() if s == _COLLAPSED and before.get(d) != s)
        if turned:
            events.append(CollapseEvent(
                step, "dimension", turned, verdict,
                f"step {step}: latent dimension(s) {list(turned)} turned collapsed (mean KL "
                f"below kl_eps, posterior = prior); verdict {verdict}."))
        if verdict == _COLLAPSED and was != _COLLAPSED:
            dims = tuple(d for d, s in now.items() if s == _COLLAPSED)
            events.append(CollapseEvent(
                step, "model", dims, verdict,
                f"step {step}: the model turned collapsed (verdict was {was}): "
                f"{(row.get(R.summary) or {}).get(S.verdict_reason, '')}"))
        return events

    def emit(self, events: list[CollapseEvent], writer: Any = None) -> None:
        """Send ``events`` to the hook, the log, TensorBoard (``writer``) and W&B; maybe stop."""
        run = _wandb_run(self.wandb) if events else None
        for event in events:
            self.events.append(event)
            LOGGER.warning(event.message)
            if writer is not None and hasattr(writer, "add_text"):
                writer.add_text("collapse/events", event.message, event.step)
            if run is not None:
                run.log({"collapse/event": event.message,
                         "collapse/collapsed_dims": len(event.dimensions)})
                alert = getattr(run, "alert", None)
                if callable(alert):
                    try:
                        alert(title=f"collapse-diag: {event.kind} collapsed", text=event.message)
                    except Exception:  # noqa: BLE001 - offline runs cannot send alerts
                        LOGGER.debug("wandb alert not sent (offline run?)")
            if self.on_collapse is not None:
                self.on_collapse(event)
            if self.stop_on is not None and STOP_ON[self.stop_on] == event.kind:
                self.should_stop = True
