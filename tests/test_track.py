"""`track` over checkpoints of a run whose collapse schedule is set by construction.

ToyVAE (tests/toy_models.py) has its exact posterior as encoder: a dimension with
decoder weight w_d = 0 has q(z_d|x) = N(0, 1) = p(z_d) for every x, so its KL is
exactly 0 (collapsed at any kl_eps > 0), while w_d >= 0.5 keeps it far above
kl_eps. The schedule below therefore fixes every event exactly.
"""

import json

import pytest
import torch
from click.testing import CliRunner

import collapse_diag.runs.track as track_module
from collapse_diag import save_checkpoint
from collapse_diag.exceptions import CheckpointError
from collapse_diag.render.trajectory import write_trajectory
from collapse_diag.runs.track import checkpoint_step, order_checkpoints
from collapse_diag.runs.track import track as run_track
from collapse_diag_cli.main import main

# step -> decoder weights w (noise s = 0.5)
SCHEDULE = {
    0: [2.0, 1.0, 0.5],
    100: [2.0, 1.0, 0.0],   # z2 collapses between 0 and 100
    200: [1.0, 0.5, 0.0],
    300: [0.0, 0.5, 0.0],   # z0 collapses between 200 and 300
    400: [0.0, 0.0, 0.0],   # z1 collapses between 300 and 400: every dimension collapsed
    500: [0.0, 0.0, 0.0],
}

def track(sources, out, *, formats=("json", "md", "html"), **kwargs):
    """``track`` then ``write_trajectory`` into the same folder, as the CLI does."""
    result = run_track(sources, out, **kwargs)
    write_trajectory(result.trajectory, out, formats)
    return result



def _save(folder, step, weights, data, name=None, with_step=True):
    from toy_models import ToyVAE

    model = ToyVAE(weights=tuple(weights), noise=0.5)
    path = folder / (name or f"ckpt_{step:04d}.pt")
    save_checkpoint(path, model, "models:ToyVAE", {"weights": weights, "noise": 0.5},
                    data=data, step=step if with_step else None)
    return path


@pytest.fixture
def run_folder(user_dir):
    from toy_models import ToyVAE

    data = ToyVAE(weights=(2.0, 1.0, 0.5)).sample(300)
    folder = user_dir / "run"
    for step, weights in SCHEDULE.items():
        _save(folder, step, weights, data)
    return folder, data


def test_track_names_collapse_steps(run_folder, tmp_path):
    folder, data = run_folder
    result = track([folder], tmp_path / "out")
    traj = json.loads((tmp_path / "out" / "trajectory.json").read_text())
    assert traj == result.trajectory
    assert traj["schema_version"] == 1 and traj["preset"] == "cheap"
    assert [r["step"] for r in traj["rows"]] == list(SCHEDULE)
    events = traj["events"]
    assert events["dimension_collapse_steps"] == [300, 400, 100]
    assert events["verdict_collapsed_step"] == 400
    assert events["dimension_revival_steps"] == [[], [], []]
    assert [(e["dimension"], e["step"], e["previous_step"]) for e in events["transitions"]] == [
        (2, 100, 0), (0, 300, 200), (1, 400, 300)]
    # per-dimension KL: equal to torch.distributions' KL on the same inputs (1e-6); exactly 0
    # where w = 0 (posterior = prior), far above kl_eps elsewhere
    from toy_models import ToyVAE

    for row in traj["rows"]:
        weights = SCHEDULE[row["step"]]
        mu, logvar = ToyVAE(weights=tuple(weights)).encode(data)
        q = torch.distributions.Normal(mu.double(), (0.5 * logvar.double()).exp())
        p = torch.distributions.Normal(torch.zeros_like(q.loc), torch.ones_like(q.loc))
        reference = torch.distributions.kl_divergence(q, p).mean(dim=0)
        for dim, w, ref in zip(row["dimensions"], weights, reference.tolist()):
            assert dim["kl"] == pytest.approx(ref, rel=1e-6, abs=1e-9)
            assert dim["kl"] == 0.0 if w == 0 else dim["kl"] > 0.1
            assert set(dim) >= {"kl", "mu_variance", "status", "swap_delta"}
        assert row["summary"]["verdict"] in ("healthy", "partial", "collapsed")
        assert row["checkpoint"]["sha256"]
    assert traj["rows"][-1]["summary"]["verdict"] == "collapsed"
    assert traj["rows"][0]["summary"]["verdict"] != "collapsed"
    text = " ".join(traj["explanation"])
    assert "z2 collapsed between steps 0 and 100 and stayed collapsed" in text
    assert "z1 collapsed between steps 300 and 400" in text
    assert "The verdict first became collapsed at step 400" in text
    for name in ("trajectory.md", "trajectory.html"):
        assert (tmp_path / "out" / name).stat().st_size > 0
    html = (tmp_path / "out" / "trajectory.html").read_text()
    assert html.count("data:image/png;base64,") == 3 and "<script src" not in html
    assert {p.name for p in (tmp_path / "out" / "trajectory-plots").iterdir()} == {
        "kl_heatmap.png", "status.png", "curves.png"}


def test_rerun_analyses_only_new_checkpoints(run_folder, tmp_path, monkeypatch):
    folder, data = run_folder
    calls = []
    real = track_module.analyze
    monkeypatch.setattr(track_module, "analyze", lambda *a, **k: calls.append(1) or real(*a, **k))
    first = track([folder], tmp_path / "out")
    assert len(calls) == len(SCHEDULE) and not first.reused
    _save(folder, 600, [0.0, 0.0, 1.0], data)  # z2 revives
    second = track([folder], tmp_path / "out")
    assert len(calls) == len(SCHEDULE) + 1
    assert [p.name for p in second.analysed] == ["ckpt_0600.pt"]
    assert len(second.reused) == len(SCHEDULE)
    events = second.trajectory["events"]
    assert events["dimension_revival_steps"] == [[], [], [600]]
    assert events["dimension_collapse_steps"] == [300, 400, None]
    assert "z2 revived between steps 500 and 600" in " ".join(second.trajectory["explanation"])
    # the cached rows equal freshly computed ones (same seed, same inputs)
    assert second.trajectory["rows"][:-1] == first.trajectory["rows"]
    # other settings: another cache key, everything analysed again
    track([folder], tmp_path / "out", kl_eps=0.02)
    assert len(calls) == 2 * len(SCHEDULE) + 2
    # another way of reading the files (adapter, prefix): another key, analysed again
    track([folder], tmp_path / "out", adapter="native")
    assert len(calls) == 3 * len(SCHEDULE) + 3


def test_half_written_cache_entry_is_recomputed(run_folder, tmp_path):
    folder, _ = run_folder
    first = track([folder], tmp_path / "out", formats=("json",))
    entry = sorted((tmp_path / "out" / "cache").iterdir())[0]
    entry.write_text('{"summary": ')  # an interrupted write
    again = track([folder], tmp_path / "out", formats=("json",))
    assert len(again.analysed) == 1 and again.trajectory["rows"] == first.trajectory["rows"]


def test_step_from_key_name_and_order(user_dir, tmp_path):
    from toy_models import ToyVAE

    data = ToyVAE().sample(50)
    a = _save(tmp_path, 0, [1.0, 1.0, 0.0], data, name="epoch=1-step=120.ckpt", with_step=False)
    b = _save(tmp_path, 7, [1.0, 1.0, 0.0], data, name="b.pt")
    c = _save(tmp_path, 0, [1.0, 1.0, 0.0], data, name="c.pt", with_step=False)
    torch.save({"epoch": 3}, tmp_path / "e.pt")
    assert checkpoint_step(a) == (120, "name")
    assert checkpoint_step(b) == (7, "step")
    assert checkpoint_step(tmp_path / "e.pt") == (3, "epoch")
    assert checkpoint_step(c) == (None, None)
    with pytest.raises(CheckpointError, match="--order name"):
        order_checkpoints([a, b, c])
    assert order_checkpoints([c, b, a], order="name") == [(0, b), (1, c), (2, a)]
    assert order_checkpoints([a, b]) == [(7, b), (120, a)]



def test_lightning_last_ckpt_and_identical_copies_of_a_step_are_analysed_once(user_dir,
                                                                                tmp_path):
    """ModelCheckpoint(save_last=True) writes last.ckpt beside epoch=..-step=N.ckpt (issue 25)."""
    from toy_models import ToyVAE

    data = ToyVAE().sample(50)
    named = _save(tmp_path, 0, [1.0, 1.0, 0.0], data, name="epoch=14-step=350.ckpt",
                  with_step=False)
    last = _save(tmp_path, 350, [1.0, 0.5, 0.0], data, name="last.ckpt")
    notes: list[str] = []
    assert order_checkpoints([last, named], notes=notes) == [(350, named)]
    assert notes == [f"{str(last)!r} is a copy of step 350 ({str(named)!r}): analysed once."]
    copy = tmp_path / "copy-350.pt"
    copy.write_bytes(named.read_bytes())
    assert order_checkpoints([copy, named], notes=[]) == [(350, copy)]  # natural name order
    other = _save(tmp_path, 350, [2.0, 0.5, 0.0], data, name="other.pt")
    with pytest.raises(CheckpointError, match="hold different weights"):
        order_checkpoints([named, other])


def test_cli_track_and_glob(run_folder, tmp_path):
    folder, _ = run_folder
    out = tmp_path / "cli"
    result = CliRunner().invoke(main, ["track", str(folder / "ckpt_*.pt"), "--out", str(out),
                                       "--quiet", "--fail-on-collapse"])
    assert result.exit_code == 1, result.output
    assert "collapsed at step 400" in result.output
    traj = json.loads((out / "trajectory.json").read_text())
    assert traj["events"]["verdict_collapsed_step"] == 400
    missing = CliRunner().invoke(main, ["track", str(tmp_path / "nothing"), "--quiet"])
    assert missing.exit_code == 3 and "check the path" in missing.output


def test_cli_track_with_data_file_and_name_order(run_folder, tmp_path):
    folder, data = run_folder
    torch.save(data[:100].clone(), tmp_path / "inputs.pt")
    out = tmp_path / "named"
    result = CliRunner().invoke(main, ["track", str(folder), "--out", str(out), "--quiet",
                                       "--order", "name", "--data", str(tmp_path / "inputs.pt"),
                                       "--format", "json", "--max-examples", "50"])
    assert result.exit_code == 0, result.output
    traj = json.loads((out / "trajectory.json").read_text())
    assert [r["step"] for r in traj["rows"]] == list(range(len(SCHEDULE)))  # positions
    assert traj["settings"]["max_examples"] == 50
    assert traj["events"]["dimension_collapse_steps"] == [3, 4, 1]
    assert not (out / "trajectory.html").exists()


def test_interrupted_run_resumes(run_folder, tmp_path, monkeypatch):
    folder, _ = run_folder
    real, calls = track_module.analyze, []

    def interrupted(*args, **kwargs):
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(track_module, "analyze", interrupted)
    with pytest.raises(KeyboardInterrupt):
        track([folder], tmp_path / "out")
    assert len(list((tmp_path / "out" / "cache").iterdir())) == 3
    monkeypatch.setattr(track_module, "analyze", real)
    resumed = track([folder], tmp_path / "out")
    assert len(resumed.reused) == 3 and len(resumed.analysed) == len(SCHEDULE) - 3
    assert resumed.trajectory["events"]["verdict_collapsed_step"] == 400


def test_old_format_checkpoint_step(tmp_path):
    torch.save({"step": 42}, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    assert checkpoint_step(tmp_path / "legacy.pt") == (42, "step")


def test_full_preset_runs_every_diagnostic(run_folder, tmp_path):
    folder, _ = run_folder
    result = track([folder / "ckpt_0000.pt", folder / "ckpt_0400.pt"], tmp_path / "full",
                   full=True, formats=("json",))
    assert result.trajectory["preset"] == "full"
    assert result.trajectory["settings"]["diagnostics"] is None
    assert result.trajectory["settings"]["max_examples"] is None
    cached = [json.loads(p.read_text()) for p in (tmp_path / "full" / "cache").iterdir()]
    assert all("identifiable_dims" in c["summary"] for c in cached)
    assert result.trajectory["events"]["dimension_collapse_steps"] == [400, 400, 400]


def test_track_over_checkpoints_with_sequential_latents(tmp_path):
    """The shipped sequence VAEs: the first half used at step 100, collapsed at 200."""
    import shutil

    from collapse_diag.examples import CHECKPOINT_DIR

    folder = tmp_path / "ck"
    folder.mkdir()
    shutil.copy(CHECKPOINT_DIR / "sequence_first_half.pt", folder / "step_100.pt")
    shutil.copy(CHECKPOINT_DIR / "sequence_collapsed.pt", folder / "step_200.pt")
    result = track([folder], tmp_path / "out", formats=("json",), max_examples=60)
    rows = result.trajectory["rows"]
    assert [r["step"] for r in rows] == [100, 200]
    assert [r["summary"]["verdict"] for r in rows] == ["partial", "collapsed"]
    assert result.trajectory["events"]["verdict_collapsed_step"] == 200
    # the rows keep the swap per time window: at step 100 the decoder reads the first half of
    # the sequence only (tens of nats there; the last window is never read, so its delta is 0
    # up to rounding, 1e-9), at 200 it reads no window
    windows = [[w["swap_delta"] for w in r["summary"]["swap_delta_by_window"]] for r in rows]
    assert len(windows[0]) == len(windows[1]) >= 2
    assert windows[0][0] > 1.0 and abs(windows[0][-1]) < 1e-9
    assert max(abs(v) for v in windows[1]) < 1e-9
    from collapse_diag.render.trajectory_plots import TRAJECTORY_PLOTS

    draw = TRAJECTORY_PLOTS["window_swap"][0]
    figure = draw(result.trajectory)
    assert figure is not None and len(figure.axes[0].get_yticklabels()) == len(windows[0])
    vector = dict(result.trajectory, rows=[dict(r, summary={"kl": 1.0}) for r in rows])
    assert draw(vector) is None  # no windows: no plot


def test_the_preset_sentence_says_what_this_run_left_out():
    # The preset's own settings by default; a caller's overrides are what the sentence says.
    from collapse_diag.config.presets import CHEAP, preset_label

    cheap = preset_label("cheap")
    assert f"per-dimension swap on {CHEAP['per_dim_swap_examples']} inputs" in cheap
    assert f"at most {CHEAP['max_examples']} inputs" in cheap and "identifiability" in cheap
    diagnostics = [*CHEAP["diagnostics"], "identifiability"]
    label = preset_label("cheap", {"per_dim_swap_examples": 8, "max_examples": None,
                                   "diagnostics": diagnostics})
    assert label == "preset: cheap (no probes; per-dimension swap on 8 inputs)"
    assert preset_label("full") == "preset: full"
    assert preset_label(None) == "preset: custom settings"


def test_hugging_face_step_names_and_the_glob_that_selects_one_step():
    # Steps are the number a sub-model folder's name ends with after '-' or '_' ("gpt2" has
    # none); the glob of a step matches exactly its folders, whatever the separator.
    import fnmatch
    from pathlib import Path

    from collapse_diag.io.checkpoint_kinds import hf_step_of, hf_step_pattern, hf_steps

    assert [hf_step_of(n) for n in ("checkpoint-encoder-31250", "enc_7", "gpt2", "encoder")] \
        == [31250, 7, None, None]
    names = ["checkpoint-decoder-200", "checkpoint-encoder-200", "checkpoint-decoder-1200",
             "checkpoint-encoder-1200", "other-200x"]
    folders = {n: Path(n) for n in names[:4]}
    assert hf_steps(folders) == {200: names[:2], 1200: names[2:4]}
    assert hf_steps({"encoder": Path("e"), "gpt2": Path("g")}) == {}  # no steps: one model
    assert hf_steps({"checkpoint-encoder-5": Path("e")}) == {}  # one step
    mixed = ["a-200", "b_200", "a-1200", "b_1200", "c-200x"]  # a step's folders, separators
    for group, step, among in ((names[:2], 200, names), (names[2:4], 1200, names),
                               (mixed[:2], 200, mixed), (["checkpoint-7"], 7, mixed)):
        pattern = hf_step_pattern(group, step)
        assert [n for n in among if fnmatch.fnmatchcase(n, pattern)] == \
            [n for n in among if n in group], pattern
