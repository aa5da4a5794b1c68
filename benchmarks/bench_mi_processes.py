"""The MI diagnostic on 1 and K processes (torchrun, gloo, CPU): time and agreement.

Builds N synthetic posteriors (D = 32: 16 informative dimensions, mu ~ N(0, 1) and
sd 0.37, and 16 near-prior ones, mu ~ N(0, 0.05^2) and sd 1; seeded), then runs
``information_diagnostic`` (the defaults: at most 10,000 components, 4 samples per
input within the query budget of 10,000, so 1 at N >= 10,000; 1,000 bootstrap
resamples) in one process and under
``python -m torch.distributed.run --nproc_per_node=K``, one thread per process, and
prints the wall seconds of the MI phase (slowest process) and the CPU seconds of the
busiest process, their ratios to one process, and the largest relative difference of
any figure. On a machine shared with other jobs the wall-time ratio also measures how
many cores the scheduler gives; the CPU-time ratio is the share of the work.

Usage::

    python benchmarks/bench_mi_processes.py [--n 20000] [--processes 2] [--repeat 3]
    (internally: ... bench_mi_processes.py --worker N OUT.json)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def _encodings(n: int):
    from collapse_diag.model.encodings import Encodings

    rng = np.random.default_rng(0)
    mu = rng.normal(0, 1, (n, 32)) * np.r_[np.ones(16), 0.05 * np.ones(16)]
    lv = np.r_[np.full(16, -2.0), np.zeros(16)] + rng.normal(0, 0.1, (n, 32))
    return Encodings(mu, lv)


def _worker(n: int, out: str) -> None:
    from collapse_diag.diagnostics.information import information_diagnostic
    from collapse_diag.runtime import distributed
    from collapse_diag.runtime.rng import generator_for

    torch.set_num_threads(1)
    distributed.setup(torch.device("cpu"))
    enc = _encodings(n)
    distributed.barrier()
    start, start_cpu = time.perf_counter(), time.process_time()
    res = information_diagnostic(enc, generator_for(0, "information"), mean_kl=20.0,
                                 bootstrap=1000)
    mine = np.array([[time.perf_counter() - start, time.process_time() - start_cpu]])
    here = distributed.world()
    slowest = distributed.gather_rows(mine, range(here.rank, here.rank + 1), here.size).max(0)
    if distributed.is_main():
        Path(out).write_text(json.dumps({
            "seconds": float(slowest[0]), "cpu": float(slowest[1]),
            "mi": res.mutual_information,
            "per_dimension": res.per_dimension.tolist(), "ci": list(res.mi_ci),
            "per_dimension_ci": res.per_dimension_ci.tolist()}))
    distributed.finish()


def _largest(a, b) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b) / np.maximum(1.0, np.abs(a))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--worker", nargs=2, metavar=("N", "OUT"))
    args = parser.parse_args()
    if args.worker:
        _worker(int(args.worker[0]), args.worker[1])
        return
    root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join((root, os.environ.get("PYTHONPATH", "")))}
    env.pop("WORLD_SIZE", None)
    results: dict[int, list[dict]] = {1: [], args.processes: []}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeat):  # 1 and K back to back, so the machine's drift cancels
            for k in results:
                out = str(Path(tmp) / f"{k}.json")
                launch = ([sys.executable] if k == 1 else
                          [sys.executable, "-m", "torch.distributed.run", "--standalone",
                           f"--nproc_per_node={k}"])
                subprocess.run([*launch, __file__, "--worker", str(args.n), out], env=env,
                               check=True)
                results[k].append(json.loads(Path(out).read_text()))
    one, many = results[1], results[args.processes]
    ratios = sorted(m["seconds"] / o["seconds"] for o, m in zip(one, many))
    cpu = sorted(m["cpu"] / o["cpu"] for o, m in zip(one, many))
    diff = max(_largest(one[0][key], many[0][key])
               for key in ("mi", "per_dimension", "ci", "per_dimension_ci"))
    print(f"N = {args.n}: MI phase, 1 process: " + ", ".join(f"{r['seconds']:.2f}" for r in one)
          + f" s; {args.processes} processes: "
          + ", ".join(f"{r['seconds']:.2f}" for r in many) + " s")
    print(f"ratio {args.processes} / 1 per pair: " + ", ".join(f"{r:.2f}" for r in ratios)
          + f" (median {ratios[len(ratios) // 2]:.2f}); largest relative difference {diff:.1e}")
    print("CPU seconds of the busiest process, 1 process: "
          + ", ".join(f"{r['cpu']:.2f}" for r in one) + f"; {args.processes} processes: "
          + ", ".join(f"{r['cpu']:.2f}" for r in many) + "; ratio per pair: "
          + ", ".join(f"{r:.2f}" for r in cpu) + f" (median {cpu[len(cpu) // 2]:.2f}): the work "
          "each process does, whatever the other jobs on the machine leave it")


if __name__ == "__main__":
    main()
