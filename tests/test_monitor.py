import json

import pytest
import torch
from training_models import TinyVAE, tiny_data

from collapse_diag.analysis import analyze
from collapse_diag.config.presets import CHEAP
from collapse_diag.exceptions import InvalidParameterError
from collapse_diag.render.trajectory import write_trajectory
from collapse_diag.runs.monitor import CollapseMonitor, scalars
from collapse_diag.runs.track import track as run_track
from collapse_diag.runs.trajectory import row_from_report


def track(sources, out, *, formats=("json", "md", "html"), **kwargs):
    """``track`` then ``write_trajectory`` into the same folder, as the CLI does."""
    result = run_track(sources, out, **kwargs)
    write_trajectory(result.trajectory, out, formats)
    return result



def _train(model, monitor, steps, switch_off=None):
    """A plain PyTorch loop; checks the training flags the loop sees at every step."""
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    gen = torch.Generator().manual_seed(1)
    x = tiny_data(512, seed=2)
    model.train()
    model.frozen.eval()
    seen = []
    for step in range(steps + 1):
        seen.append((model.training, model.drop.training, model.frozen.training,
                     torch.is_grad_enabled()))
        if switch_off and step in switch_off:
            model.switch_off(switch_off[step])
        monitor.step(step)
        if step < steps:
            opt.zero_grad()
            model.loss(x[(step * 64) % 512:][:64], gen).backward()
            opt.step()
    return seen


def test_monitor_lines_modes_and_rng(tmp_path):
    model = TinyVAE()
    out = tmp_path / "log" / "monitor.jsonl"
    monitor = CollapseMonitor(model, tiny_data(300), every=3, out=out)
    seen = _train(model, monitor, steps=9)
    # every step of the loop saw the flags it set: train, dropout on, batch norm frozen
    assert seen == [(True, True, False, True)] * 10
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["step"] for line in lines] == [0, 3, 6, 9]
    assert all(line["kind"] == "collapse-diag monitor" and line["schema_version"] == 1
               for line in lines)
    assert lines[0]["settings"]["diagnostics"] == list(CHEAP["diagnostics"])
    assert lines[0]["settings"]["max_examples"] == CHEAP["max_examples"]
    assert {"kl", "mu_variance", "status", "swap_delta"} <= set(lines[0]["dimensions"][0])
    # the monitor never draws from the global RNG (the loop's dropout does), so training
    # with and without it draws the same numbers
    rng = torch.get_rng_state()
    monitor.step(10, force=True)
    assert torch.equal(torch.get_rng_state(), rng)
    assert model.training and model.drop.training and not model.frozen.training


def test_monitor_row_equals_an_analysis_in_eval_mode(tmp_path):
    model = TinyVAE()
    model.train()
    data = tiny_data(300)
    row = CollapseMonitor(model, data, every=1, out=None).step(0)
    model.eval()
    reference = row_from_report(analyze(model, data, **CHEAP).to_dict(), 0)
    assert row == reference  # dropout off (eval), same seed: identical figures


def test_monitor_log_tracks_a_collapse(tmp_path):
    """Switching dimensions off at known steps: the JSONL's trajectory names those steps."""
    torch.manual_seed(0)  # TinyVAE's init and the SGD noise: not whatever earlier tests left
    model = TinyVAE()
    out = tmp_path / "monitor.jsonl"
    monitor = CollapseMonitor(model, tiny_data(300), every=2, out=out)
    _train(model, monitor, steps=10, switch_off={3: 1, 7: 0})
    result = track([out], tmp_path / "traj")
    events = result.trajectory["events"]
    # z1 off from step 3: first measured collapsed at 4; z0 off from 7: at 8; z2 never
    assert events["dimension_collapse_steps"] == [8, 4, None]
    assert result.trajectory["source"] == "monitor"
    assert result.trajectory["preset"] == "cheap"
    assert [r["step"] for r in result.trajectory["rows"]] == [0, 2, 4, 6, 8, 10]
    # switched off, a dimension's KL is 0 to within the drift SGD gives its decoder column
    # afterwards (the noise of z_d feeds its gradient, ~1e-6 nats over these steps): far
    # below kl_eps = 0.01, so bounded at kl_eps / 1000
    for row in result.trajectory["rows"][4:]:
        assert row["dimensions"][0]["kl"] < 1e-5 and row["dimensions"][1]["kl"] < 1e-5
    assert (tmp_path / "traj" / "trajectory.html").exists()


def test_monitor_validates_up_front(tmp_path):
    with pytest.raises(InvalidParameterError, match="every"):
        CollapseMonitor(TinyVAE(), tiny_data(10), every=0)
    with pytest.raises(InvalidParameterError, match="kl_eps"):
        CollapseMonitor(TinyVAE(), tiny_data(10), kl_eps=-1.0)


def test_tensorboard_scalars(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    model = TinyVAE()
    monitor = CollapseMonitor(model, tiny_data(200), every=2, out=None,
                              tensorboard=tmp_path / "tb")
    rows = [monitor.step(s) for s in range(5)]
    monitor.close()
    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    events = acc.Scalars("collapse/kl")
    assert [e.step for e in events] == [0, 2, 4]
    expected = [scalars(r)["collapse/kl"] for r in rows if r is not None]
    assert [e.value for e in events] == pytest.approx(expected, rel=1e-6)
    assert "collapse/kl_z2" in acc.Tags()["scalars"]


def test_tensorboard_missing_is_one_clear_error(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if not installed
    with pytest.raises(InvalidParameterError, match="pip install tensorboard"):
        CollapseMonitor(TinyVAE(), tiny_data(10), tensorboard="tb")
    assert CollapseMonitor(TinyVAE(), tiny_data(10), out=None).writer is None
