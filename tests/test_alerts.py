"""Issue 25: events when a dimension or the model turns collapsed, and stopping on request."""

import logging

import pytest
from training_models import TinyVAE, tiny_data

from collapse_diag.exceptions import InvalidParameterError
from collapse_diag.runs.alerts import LOGGER
from collapse_diag.runs.monitor import CollapseMonitor


def _collapse_in_two_steps(monitor, model):
    """Step 0 healthy (the baseline), step 1 one dimension off, step 2 all three off."""
    rows = [monitor.step(0)]
    model.switch_off(1)  # q(z_1|x) = p(z_1) exactly: KL 0 (training_models.py)
    rows.append(monitor.step(1))
    model.switch_off(0)
    model.switch_off(2)
    rows.append(monitor.step(2))
    return rows


def test_events_go_to_the_hook_the_log_and_tensorboard_and_stop_training(tmp_path, caplog):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    model, events = TinyVAE(), []
    monitor = CollapseMonitor(model, tiny_data(300), every=1, out=None, wandb=False,
                              on_collapse=events.append, stop_on="collapsed",
                              tensorboard=tmp_path / "tb")
    with caplog.at_level(logging.WARNING, logger=LOGGER.name):
        rows = _collapse_in_two_steps(monitor, model)
    monitor.close()
    statuses = [[d["status"] for d in row["dimensions"]] for row in rows]
    assert "collapsed" not in statuses[0] and statuses[1][1] == "collapsed"
    assert rows[2]["summary"]["verdict"] == "collapsed"
    assert [(e.step, e.kind, e.dimensions) for e in events] == [
        (1, "dimension", (1,)), (2, "dimension", (0, 2)), (2, "model", (0, 1, 2))]
    assert monitor.should_stop
    assert [r.getMessage() for r in caplog.records] == [e.message for e in events]
    assert "turned collapsed" in events[0].message
    tb = EventAccumulator(str(tmp_path / "tb")).Reload()
    assert "collapse/events/text_summary" in tb.Tags()["tensors"]
    assert [t.step for t in tb.Tensors("collapse/events/text_summary")] == [1, 2, 2]


def test_stop_on_dimension_and_the_baseline_emits_nothing(tmp_path):
    model = TinyVAE()
    model.switch_off(2)  # collapsed before the first measurement: the baseline, no event
    monitor = CollapseMonitor(model, tiny_data(300), every=1, out=None, wandb=False,
                              stop_on="dimension")
    monitor.step(0)
    assert monitor.alerts.events == [] and not monitor.should_stop
    model.switch_off(0)
    monitor.step(1)
    assert [e.dimensions for e in monitor.alerts.events] == [(0,)] and monitor.should_stop
    with pytest.raises(InvalidParameterError, match="stop_on"):
        CollapseMonitor(model, tiny_data(30), stop_on="loss")
    with pytest.raises(InvalidParameterError, match="on_collapse"):
        CollapseMonitor(model, tiny_data(30), on_collapse="print")


def test_wandb_required_but_missing_is_one_clear_error(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb raises ImportError
    with pytest.raises(InvalidParameterError, match="collapse-diag\\[wandb\\]"):
        CollapseMonitor(TinyVAE(), tiny_data(30), wandb=True)
    assert CollapseMonitor(TinyVAE(), tiny_data(30), out=None).alerts.events == []


def test_wandb_offline_receives_the_events(tmp_path, monkeypatch):
    wandb = pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    run = wandb.init(project="collapse-diag-test", dir=str(tmp_path), mode="offline")
    try:
        model = TinyVAE()
        monitor = CollapseMonitor(model, tiny_data(300), every=1, out=None)  # the active run
        _collapse_in_two_steps(monitor, model)
        assert run.summary["collapse/collapsed_dims"] == 3  # the last event: the model's
        assert "the model turned collapsed" in run.summary["collapse/event"]
    finally:
        run.finish()
