"""Scaling: the MI's per-dimension terms divided by dimension among processes, and `compare`
and `track` under torchrun (gloo, 2 processes) writing what a plain run writes.

Tolerance: floats agree to 1e-9 relative (tests/test_distributed.py's ``differences``);
timings, ``provenance.created`` and ``provenance.device`` are excluded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from test_distributed import GLOO, differences

from collapse_diag.diagnostics.estimators import mixture_density
from collapse_diag.runtime import distributed


def test_dimension_terms_divided_by_dimension_equal_one_process(monkeypatch):
    # 3 processes simulated in one: each computes its shard of the (round-robin) dimensions
    # alone; the gathered rows equal the one-process terms (same per-dimension arithmetic).
    rng = np.random.default_rng(0)
    m, s, d = 400, 4, 7
    mu = rng.normal(0, 1, (m, d)) * np.r_[np.ones(4), 0.05 * np.ones(3)]
    lv = np.r_[np.full(4, -2.0), np.zeros(3)] + rng.normal(0, 0.1, (m, d))
    z = (mu[:, None] + np.exp(0.5 * lv)[:, None] * rng.normal(size=(m, s, d))).reshape(-1, d)
    args = (torch.from_numpy(z), torch.arange(m).repeat_interleave(s), torch.from_numpy(mu),
            torch.from_numpy(lv))
    plain = mixture_density.dimension_terms(*args, method="grid")
    seen = []

    def three(n, compute, block=64):
        parts = [tuple(compute(r.start, r.stop)) for r in
                 (distributed.shard(n, rank, 3, block=block) for rank in range(3))]
        seen.extend(len(p[0]) for p in parts)
        return tuple(np.concatenate([p[j] for p in parts]) for j in range(len(parts[0])))

    monkeypatch.setattr(distributed, "world", lambda: distributed.World(0, 3))
    monkeypatch.setattr(distributed, "map_shard", three)
    divided = mixture_density.dimension_terms(*args, method="grid")
    assert seen == [2, 2, 3]  # every process its share of the 7 dimensions
    np.testing.assert_allclose(divided.numpy(), plain.numpy(), rtol=1e-12, atol=1e-12)


def _torchrun(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join((root, str(cwd), os.environ.get("PYTHONPATH", "")))}
    env.pop("WORLD_SIZE", None)
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                           "--standalone", "-m", "collapse_diag_cli.main", *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


CHEAP = ["--quiet", "--format", "json", "--seed", "3", "--prior-samples", "4",
         "--nll-samples", "8", "--swap-bootstrap", "50", "--mi-bootstrap", "50"]


@pytest.mark.skipif(not GLOO, reason="torch.distributed with the gloo backend is not available")
@pytest.mark.parametrize("command", ["compare", "track"])
def test_compare_and_track_under_torchrun_write_the_plain_results(command, toy_checkpoint,
                                                                  user_dir):
    from toy_models import ToyVAE

    from collapse_diag import save_checkpoint
    from collapse_diag_cli.main import main

    other = user_dir / "toy_b.pt"  # the same inputs, another decoder: one data group
    weights = {"weights": [1.0, 0.5, 0.0], "noise": 0.5}
    save_checkpoint(other, ToyVAE(**weights), "models:ToyVAE", weights,
                    data=ToyVAE().sample(400))
    models = [str(toy_checkpoint), str(other)] + (["--order", "name"] if command == "track"
                                                   else [])
    plain = CliRunner().invoke(main, [command, *models, "--out", str(user_dir / "k1"), *CHEAP])
    assert plain.exit_code == 0, plain.output
    run = _torchrun([command, *models, "--out", str(user_dir / "k2"), *CHEAP], user_dir)
    assert run.returncode == 0, run.stdout + run.stderr  # every rank exited 0
    name = "comparison.json" if command == "compare" else "trajectory.json"
    assert run.stdout.count(f"{name.split('.')[0]}: ") == 1  # rank 0 alone prints (and writes)
    one = json.loads((user_dir / "k1" / name).read_text())
    two = json.loads((user_dir / "k2" / name).read_text())
    assert differences(one, two) == []
    if command == "compare":
        assert one["paired"] and one["paired"][0]["nll"]["n"] == 200
        for folder in ("k1", "k2"):  # the analysed models' reports, written once
            reports = sorted((user_dir / folder / "models").glob("*/report.json"))
            assert len(reports) == 2
