import json

from click.testing import CliRunner

import collapse_diag.examples.track_demo as track_demo
from collapse_diag.examples.track_demo import checkpoint_steps, run_track_demo
from collapse_diag_cli.main import main


def test_checkpoint_steps():
    assert checkpoint_steps(640) == [0, 10, 20, 40, 80, 160, 320, 640]
    assert checkpoint_steps(25) == [0, 10, 20, 25]


def test_demo_track_short_run(tmp_path, monkeypatch):
    """A 20-step version of the demo: both runs saved and tracked (CI-sized)."""
    real = run_track_demo
    monkeypatch.setattr(track_demo, "run_track_demo", lambda *a, **k: real(*a, steps=20, **k))
    result = CliRunner().invoke(main, ["demo", "--track", "--out", str(tmp_path), "--quiet"])
    assert result.exit_code == 0, result.output
    for run in track_demo.RUNS:
        assert sorted(p.name for p in (tmp_path / "checkpoints" / run).iterdir()) == [
            f"{run}_step00000.pt", f"{run}_step00010.pt", f"{run}_step00020.pt"]
        traj = json.loads((tmp_path / run / "trajectory.json").read_text())
        assert [r["step"] for r in traj["rows"]] == [0, 10, 20]
        assert (tmp_path / run / "trajectory.html").exists()
        assert traj["explanation"][0] in result.output
    # same initialisation: both runs start from the same model, so the same figures at step 0
    rows = [json.loads((tmp_path / r / "trajectory.json").read_text())["rows"][0]
            for r in track_demo.RUNS]
    assert rows[0]["summary"] == rows[1]["summary"]
