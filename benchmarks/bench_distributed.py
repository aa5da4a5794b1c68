"""``collapse-diag analyze`` with K = 1 and K = 2 processes (torchrun, gloo, CPU): wall time.

Builds a checkpoint of the shipped demo text VAE (``text_healthy``, LSTM) holding
N inputs (its 1,000 stored ones tiled), then times, as subprocesses:

* the plain command (``python -m collapse_diag_cli.main analyze ...``), K = 1;
* ``python -m torch.distributed.run --standalone --nproc_per_node=K ... analyze ...``
  for each K of ``--processes`` (default 2).

and, to separate the start-up (interpreter, imports, loading the checkpoint,
joining the job) from the analysis, the same launchers running this script in
``--worker`` mode, which times ``collapse_diag.analyze(...)`` itself in each process.

Every process gets ``--threads`` intra-op threads (``OMP_NUM_THREADS``, default 1)
so that K processes use K threads in all. It prints the wall time of each command,
the time of ``analyze()`` (encoder pass and diagnostics), the time of the
diagnostics alone (the sum of ``report.timings``), the speed-ups over K = 1, and
checks that the reports agree (largest relative difference of any figure; timings,
``created`` and ``device`` excluded).

Usage::

    python benchmarks/bench_distributed.py [--n 2000] [--processes 2] [--threads 1]
        [--repeat 2] [--batch-size 64]
    (internally: ... bench_distributed.py --worker CHECKPOINT OUT.json BATCH_SIZE)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from collapse_diag import load_checkpoint, save_checkpoint
from collapse_diag.examples import SHIPPED

_SKIP = ("timings", "created", "device")


def _largest_difference(a, b) -> float:
    """Largest relative difference of two JSON values; inf when their structure differs."""
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return math.inf
        return max([_largest_difference(a[k], b[k]) for k in a if k not in _SKIP] or [0.0])
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return math.inf
        return max([_largest_difference(u, v) for u, v in zip(a, b)] or [0.0])
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) and math.isnan(b):
            return 0.0
        return abs(a - b) / max(1.0, abs(a), abs(b))
    return 0.0 if a == b else math.inf


def _checkpoint(folder: Path, n: int) -> Path:
    raw = torch.load(SHIPPED["text_healthy"], weights_only=True)
    loaded = load_checkpoint(SHIPPED["text_healthy"])
    data = loaded.data
    reps = -(-n // data.shape[0])
    tiled = torch.cat([data] * reps)[:n]
    path = folder / "text.pt"
    save_checkpoint(path, loaded.model, raw["factory"], raw["config"], data=tiled)
    return path


def _run(command: list[str], out: Path, threads: int) -> tuple[float, dict]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    env.pop("WORLD_SIZE", None)
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"failed ({done.returncode}): {' '.join(command)}\n{done.stderr[-2000:]}")
    return wall, json.loads((out / "report.json").read_text())


def _worker(checkpoint: str, out: str, batch_size: int) -> None:
    """Time ``analyze()`` in this process; rank 0 writes ``{"seconds": ...}`` to ``out``."""
    from collapse_diag import analyze
    from collapse_diag.runtime import distributed

    loaded = load_checkpoint(checkpoint)
    start = time.perf_counter()
    analyze(loaded, batch_size=batch_size)
    seconds = time.perf_counter() - start
    if distributed.is_main():
        Path(out).write_text(json.dumps({"seconds": seconds}))
    distributed.finish()


def _run_worker(command: list[str], threads: int) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    env.pop("WORLD_SIZE", None)
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"failed ({done.returncode}): {' '.join(command)}\n{done.stderr[-2000:]}")


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--worker":
        _worker(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--processes", type=int, nargs="+", default=[2])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = _checkpoint(folder, args.n)
        common = ["analyze", str(path), "--format", "json", "--quiet",
                  "--batch-size", str(args.batch_size), "--max-examples", str(args.n)]
        plain = [sys.executable, "-m", "collapse_diag_cli.main"]
        results: dict[int, list[tuple[float, float, float]]] = {}
        reports: dict[int, dict] = {}
        for k in [1, *args.processes]:
            launcher = plain if k == 1 else [
                sys.executable, "-m", "torch.distributed.run", "--standalone",
                f"--nproc_per_node={k}"]
            for r in range(args.repeat):
                out = folder / f"k{k}_{r}"
                module = [*launcher, "-m", "collapse_diag_cli.main"] if k > 1 else launcher
                wall, report = _run([*module, *common, "--out", str(out)], out, args.threads)
                timing = folder / f"t{k}_{r}.json"
                script = [sys.executable] if k == 1 else launcher
                _run_worker([*script, __file__, "--worker", str(path), str(timing),
                             str(args.batch_size)], args.threads)
                seconds = json.loads(timing.read_text())["seconds"]
                results.setdefault(k, []).append((wall, seconds, sum(report["timings"].values())))
                reports[k] = report
        print(f"demo text VAE (text_healthy), N = {args.n}, batch size {args.batch_size}, "
              f"{args.threads} thread(s) per process, {os.cpu_count()} CPU(s), "
              f"best of {args.repeat}, load average {os.getloadavg()[0]:.1f}")
        print("| K | command (wall) | analyze() | diagnostics | speed-up: command, analyze(), "
              "diagnostics | largest difference vs K = 1 |")
        print("|---|---|---|---|---|---|")
        best = {k: [min(run[i] for run in runs) for i in range(3)] for k, runs in results.items()}
        for k, (wall, seconds, inside) in best.items():
            base = best[1]
            diff = _largest_difference(reports[1], reports[k])
            print(f"| {k} | {wall:.2f} s | {seconds:.2f} s | {inside:.2f} s | "
                  f"{base[0] / wall:.2f}x, {base[1] / seconds:.2f}x, {base[2] / inside:.2f}x | "
                  f"{diff:.1e} |")

if __name__ == "__main__":
    main()
