"""Several processes (torchrun): shards, keyed randomness, gathering, and the report they give.

Three levels:

* the helpers alone (``shard`` partitions the inputs into whole blocks, keyed normals do
  not depend on how they are sliced, size-1 gather and error agreement are the identity);
* every diagnostic computed shard by shard in one process (``map_shard`` replaced by a
  serial simulation of K processes, shards not aligned with the keyed blocks) gives the
  report of the plain run, on a vector model, a learned prior with token counts, and
  sequential latents with a conditional prior (ancestral draws, windows);
* ``python -m torch.distributed.run --nproc_per_node=2 --standalone`` on the CLI (gloo,
  CPU) writes the same report.json as a plain run, from rank 0 only.

Tolerance: floats agree to 1e-9 relative (the decoders' per-row arithmetic does not
depend on which rows share a call); timings, ``provenance.created`` and
``provenance.device`` are excluded.
"""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from models_for_tests import PriorVAE, TokenLinearVAE, toy_data
from toy_models import ToyVAE

import collapse_diag.runtime.rng as rng_mod
from collapse_diag import analyze
from collapse_diag.examples.sequence_vae import build_sequence_vae, sample_inputs
from collapse_diag.exceptions import DataError
from collapse_diag.runtime import distributed
from collapse_diag.runtime.rng import KeyedNormals, block_generator, generator_for

FAST = dict(mi_samples=4, swap_bootstrap=50, prior_samples=4, fisher_samples=2, nll_samples=8,
            fisher_bootstrap=50, mi_bootstrap=50)
EXCLUDED = {"timings", "provenance/created", "provenance/device"}


def differences(a, b, path=""):
    """Paths where two JSON-like values differ (floats: 1e-9 relative; NaN equals NaN)."""
    if path.lstrip("/") in EXCLUDED:
        return []
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b), key=str)
                for d in differences(a.get(k), b.get(k), f"{path}/{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (u, v) in enumerate(zip(a, b)) for d in differences(u, v, f"{path}[{i}]")]
    if isinstance(a, float) and isinstance(b, float):
        same = (math.isnan(a) and math.isnan(b)) or a == b or \
            abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))
        return [] if same else [f"{path}: {a!r} != {b!r}"]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


# --- the helpers -------------------------------------------------------------------------


@pytest.mark.parametrize("n", [0, 1, 63, 64, 65, 200, 1000])
@pytest.mark.parametrize("size", [1, 2, 3, 7])
def test_shard_partitions_the_inputs_into_whole_blocks(n, size):
    ranges = [distributed.shard(n, rank, size, block=64) for rank in range(size)]
    assert [i for r in ranges for i in r] == list(range(n))  # contiguous, in rank order
    for r in ranges:
        if len(r):
            assert r.start % 64 == 0 and (r.stop % 64 == 0 or r.stop == n)
    blocks = [-(-len(r) // 64) for r in ranges]
    assert max(blocks) - min(blocks) <= 1  # balanced to one block


def test_size_one_world_is_the_identity():
    assert distributed.world() == distributed.World(0, 1) and distributed.is_main()
    assert distributed.shard(10) == range(10)
    values = np.arange(6.0).reshape(3, 2)
    assert distributed.gather_rows(values, range(3), 3) is values
    assert distributed.total(5) == 5
    calls = []
    out = distributed.map_shard(10, lambda a, b: (calls.append((a, b)) or np.arange(a, b),))
    assert calls == [(0, 10)] and out[0].tolist() == list(range(10))
    with pytest.raises(DataError, match="boom"):  # a failure is the caller's own error
        distributed.map_shard(3, lambda a, b: (_ for _ in ()).throw(DataError("boom")))


def test_setup_without_torchrun_keeps_the_device(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert distributed.setup(torch.device("cpu")) == torch.device("cpu")
    monkeypatch.setenv("WORLD_SIZE", "1")  # torchrun --nproc_per_node=1: the plain run
    assert distributed.setup(torch.device("cpu")) == torch.device("cpu")
    assert not torch.distributed.is_initialized()


def test_keyed_normals_do_not_depend_on_slicing_and_leave_the_generator_alone():
    gen = generator_for(7, "identifiability")
    state = gen.get_state().clone()
    whole = KeyedNormals(gen, "prior", 300, (4, 3)).rows(0, 300)
    pieces = KeyedNormals(gen, "prior", 300, (4, 3))
    cuts = [0, 5, 64, 65, 190, 191, 300]
    sliced = np.concatenate([pieces.rows(a, b) for a, b in zip(cuts, cuts[1:])][::-1][::-1])
    backwards = KeyedNormals(gen, "prior", 300, (4, 3))
    reverse = np.concatenate([backwards.rows(a, b) for a, b in zip(cuts, cuts[1:])][::-1])
    assert whole.shape == (300, 4, 3) and np.array_equal(whole, sliced)
    assert np.array_equal(reverse, np.concatenate([whole[a:b] for a, b in
                                                   zip(cuts, cuts[1:])][::-1]))
    assert torch.equal(gen.get_state(), state)  # keyed draws never advance the generator
    # block b of a stream is torch.randn (float32, used as float64) from its own keyed
    # generator: an independent reference
    ref = torch.randn(64, 4, 3, generator=block_generator(gen, "prior", 2), dtype=torch.float32)
    assert whole.dtype == np.float64 and np.array_equal(whole[128:192], ref.double().numpy())
    other = KeyedNormals(gen, "fisher", 300, (4, 3)).rows(0, 300)
    assert not np.allclose(whole, other)  # streams differ
    # standard normal: mean 0 and variance 1 within 5 standard errors (3600 draws)
    assert abs(whole.mean()) < 5 / math.sqrt(whole.size)
    assert abs(whole.var() - 1) < 5 * math.sqrt(2 / whole.size)


# --- every diagnostic, shard by shard, in one process ---------------------------------------


def _serial(processes, unaligned):
    """``map_shard`` as K processes would run it: each shard computed, then concatenated.

    The shards are blocks of ``unaligned`` positions whatever block the caller asks for
    (inputs, or the MI grid's points), so they never line up with the keyed blocks.
    """

    def fake(n, compute, block=None):  # noqa: ARG001 - the simulated shards use their own
        parts = [tuple(compute(r.start, r.stop)) for r in
                 (distributed.shard(n, rank, processes, block=unaligned)
                  for rank in range(processes))]
        return tuple(np.concatenate([p[j] for p in parts]) for j in range(len(parts[0])))

    return fake


def _vector_prior_tokens():
    model = PriorVAE(np.diag([1.0, 1.0, 0.0]), 0.5, np.diag([0.9, 0.9, 0.0]),
                     np.log([0.1, 0.1, 1.0]), prior_mean=[0.3, 0.0, 0.0],
                     prior_logvar=[0.2, 0.0, -0.1])
    token_model = TokenLinearVAE(model.W, 0.5, model.A, model.lv)
    x = toy_data(3, 250, seed=2)
    return token_model, {"x": x, "n": torch.arange(250) % 7 + 1}, model, x


CASES = {
    "toy": lambda: (ToyVAE(), ToyVAE().sample(260, seed=3)),
    "tokens": lambda: _vector_prior_tokens()[:2],
    "learned prior": lambda: _vector_prior_tokens()[2:],
    "sequence": lambda: (build_sequence_vae(), sample_inputs(build_sequence_vae(), 120, seed=1,
                                                             min_length=12)),
    "sequence, conditional prior": lambda: (build_sequence_vae(prior_ar=0.5),
                                            sample_inputs(build_sequence_vae(prior_ar=0.5),
                                                          120, seed=1, min_length=12)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_shard_by_shard_report_equals_the_plain_report(case, monkeypatch):
    model, data = CASES[case]()
    settings = dict(seed=4, batch_size=24, per_dim_swap_examples=40, nll_examples=150, **FAST)
    plain = analyze(model, data, **settings).to_dict()
    # (the IW-NLL and the refinement do not support a conditional prior on sequences yet:
    # their known errors)
    assert set(plain["errors"]) <= ({"likelihood", "refinement"} if "conditional" in case
                                    else set())
    monkeypatch.setattr(rng_mod, "RANDOM_BLOCK", 16)  # keyed blocks smaller than the shards
    small_blocks = analyze(model, data, **settings).to_dict()
    monkeypatch.setattr(distributed, "map_shard", _serial(3, unaligned=40))  # not block-aligned
    sharded = analyze(model, data, **settings).to_dict()
    assert differences(small_blocks, sharded) == []
    assert differences(plain, small_blocks) != []  # the keyed blocks are part of the key


# --- torchrun on the command line -----------------------------------------------------------

OPTIONS = ["--format", "json", "--quiet", "--seed", "3", "--per-dim-swap-examples", "128",
           "--prior-samples", "4", "--nll-samples", "8"]


GLOO = torch.distributed.is_available() and torch.distributed.is_gloo_available()


@pytest.mark.skipif(not GLOO, reason="torch.distributed with the gloo backend is not available")
def test_torchrun_two_processes_write_the_report_of_a_plain_run(toy_checkpoint, user_dir):
    from collapse_diag_cli.main import main

    plain = CliRunner().invoke(main, ["analyze", str(toy_checkpoint), "--out",
                                      str(user_dir / "k1"), *OPTIONS])
    assert plain.exit_code == 0, plain.output
    # The code under test (this checkout, first on the path), not an installed copy.
    root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join((root, str(user_dir)))}
    env.pop("WORLD_SIZE", None)
    run = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
         "-m", "collapse_diag_cli.main", "analyze", str(toy_checkpoint), "--out",
         str(user_dir / "k2"), *OPTIONS],
        cwd=user_dir, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr  # every rank exited 0
    assert run.stdout.count("report: ") == 1  # rank 0 alone prints
    assert sorted(p.name for p in (user_dir / "k2").iterdir()) == ["report.json"]
    one = json.loads((user_dir / "k1" / "report.json").read_text())
    two = json.loads((user_dir / "k2" / "report.json").read_text())
    assert differences(one, two) == []
    assert one["n_examples"] == 400 and one["summary"]["per_dim_swap_examples"] >= 128


_WORKER = '''
import json, sys
import numpy as np, torch
from collapse_diag.runtime import distributed
from collapse_diag.exceptions import DataError

assert distributed.setup(torch.device("cpu")) == torch.device("cpu")
here = distributed.world()
out = {"rank": here.rank, "size": here.size}
rows = distributed.shard(150)
values = np.arange(rows.start, rows.stop)
out["ints"] = distributed.gather_rows(values, rows, 150).tolist()
mask = distributed.gather_rows((values % 3 == 0)[:, None], rows, 150)
out["mask"] = [mask.dtype.str, mask.shape[1], int(mask.sum())]
out["total"] = distributed.total(here.rank + 1)


def fail_on_rank_1(start, stop):
    if distributed.world().rank == 1:
        raise DataError("bad input on the second process")
    return (np.zeros(stop - start),)


try:
    distributed.map_shard(150, fail_on_rank_1)
    out["error"] = None
except Exception as err:
    out["error"] = [type(err).__name__, str(err)]
out["after"] = distributed.map_shard(5, lambda a, b: (np.arange(a, b) * 2.0,))[0].tolist()
distributed.finish()
with open(sys.argv[1] + f".{here.rank}.json", "w") as handle:
    json.dump(out, handle)
'''


def _two_processes(worker: str, tmp_path) -> list[dict]:
    """Run ``worker`` under ``torchrun --nproc_per_node=2`` in ``tmp_path``; each rank's JSON."""
    script = tmp_path / "worker.py"
    script.write_text(worker)
    # The code under test (this checkout, first on the path), not an installed copy.
    root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join((root, os.environ.get("PYTHONPATH", "")))}
    env.pop("WORLD_SIZE", None)
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                          "--standalone", str(script), str(tmp_path / "out")],
                         env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    return [json.loads((tmp_path / f"out.{r}.json").read_text()) for r in range(2)]


@pytest.mark.skipif(not GLOO, reason="torch.distributed with the gloo backend is not available")
def test_torchrun_gather_and_a_failure_on_one_process(tmp_path):
    """Real gloo collectives: uneven shards, bool and int rows, a failure on rank 1 only."""
    ranks = _two_processes(_WORKER, tmp_path)
    for r, out in enumerate(ranks):
        assert out["rank"] == r and out["size"] == 2
        assert out["ints"] == list(range(150))  # shards 0..63 and 64..149, gathered in order
        assert out["mask"] == [np.dtype(bool).str, 1, 50]
        assert out["total"] == 3
        assert out["after"] == [0.0, 2.0, 4.0, 6.0, 8.0]  # lock-step; rank 1 holds none
    assert ranks[1]["error"] == ["DataError", "bad input on the second process"]
    assert ranks[0]["error"][0] == "DiagnosticError"
    assert ranks[0]["error"][1] == ("DataError: bad input on the second process "
                                    "(in process 1 of the torchrun job)")


_MONITOR_WORKER = r'''
import json, sys
import torch
import torch.distributed as dist
from collapse_diag.examples.digits_vae import build_digits_vae, load_binary_digits
from collapse_diag.runs.monitor import CollapseMonitor

dist.init_process_group("gloo")  # as a DDP training job has it
rank = dist.get_rank()
rows = None
if rank == 0:  # a training callback measures on rank 0 only
    torch.manual_seed(0)
    data = load_binary_digits()[0][:150]
    rows = CollapseMonitor(build_digits_vae(latent_dim=4), data, every=1, out=None).step(0)
dist.barrier()
with open(sys.argv[1] + f".{rank}.json", "w") as handle:
    json.dump({"rank": rank, "measured": rows is not None}, handle)
dist.destroy_process_group()
'''


@pytest.mark.skipif(not GLOO, reason="torch.distributed with the gloo backend is not available")
def test_monitor_on_one_rank_of_a_job_analyses_alone(tmp_path):
    # Before distributed.local(), rank 0's analysis joined the job's process group and waited
    # forever in its first gather for rank 1, which never analyses.
    ranks = _two_processes(_MONITOR_WORKER, tmp_path)
    assert ranks == [{"rank": 0, "measured": True}, {"rank": 1, "measured": False}]


_DISCRETE_WORKER = r'''
import json, sys
import torch
from collapse_diag.diagnostics.discrete_swap import discrete_swap
from collapse_diag.runtime import distributed
from collapse_diag.runtime.rng import generator_for


class Codes(torch.nn.Module):  # x is its own code map; position l read with weight w_l
    def __init__(self):
        super().__init__()
        self.w, self.decoded = torch.tensor([1.0, 0.5, 0.0], dtype=torch.float64), 0

    def log_likelihood(self, x, codes):
        self.decoded += len(x)
        return -((x != codes).double() * self.w).sum(1) - 0.1 * x.double().sum(1)


distributed.setup(torch.device("cpu"))
x = torch.randint(0, 8, (150, 3), generator=torch.Generator().manual_seed(0))
model = Codes()
swap = discrete_swap(model, x, x, lambda c: c, 16, "cpu", generator_for(5, "discrete"))
out = {"rank": distributed.world().rank, "decoded": model.decoded,
       "delta": swap.delta.tolist(), "p": swap.p_value, "position_delta":
       swap.position_delta.tolist(), "position_p": swap.position_p_holm.tolist(),
       "unchanged": swap.position_unchanged.tolist(), "inputs": swap.swap_inputs}
distributed.finish()
with open(sys.argv[1] + f".{out['rank']}.json", "w") as handle:
    json.dump(out, handle)
'''


@pytest.mark.skipif(not GLOO, reason="torch.distributed with the gloo backend is not available")
def test_torchrun_shards_the_discrete_swaps(tmp_path):
    """Two gloo processes split the whole-map and per-position swaps: one process's numbers."""
    ranks = _two_processes(_DISCRETE_WORKER, tmp_path)
    root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": root}
    env.pop("WORLD_SIZE", None)
    run = subprocess.run([sys.executable, str(tmp_path / "worker.py"), str(tmp_path / "one")],
                         env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr  # the same worker, one process
    one = json.loads((tmp_path / "one.0.json").read_text())
    # each rank decodes its shard only: the two together decode what one process does
    assert sum(r["decoded"] for r in ranks) == one["decoded"]
    assert all(0 < r["decoded"] < one["decoded"] for r in ranks)
    for out in ranks:  # the decoders' per-row arithmetic: the same up to 1e-12 relative
        for key in ("delta", "p", "position_delta", "position_p"):
            assert out[key] == pytest.approx(one[key], rel=1e-12), key
        assert out["unchanged"] == one["unchanged"] == [False, False, True]
        assert out["inputs"] == one["inputs"] == 150
