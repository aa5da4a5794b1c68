"""The benchmark scripts still run (tiny sizes, exit 0, their key lines printed).

Benchmarks measure speed and are never timed here; this only keeps them from rotting
(an API change that breaks a script would otherwise go unnoticed until someone measures).
bench_distributed (torchrun) and bench_start (the CLI's start-up) have their own tests
(test_distributed.py, test_fast_start.py); bench_sequence has no size options (~6 s).
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"

RUNS = {
    "bench_analyze.py": (["--n", "64", "--repeat", "1", "--models", "digits32"],
                         "whole-analysis ratio over 1 (analysis, replay) pairs"),
    "bench_latent_size.py": (["--dims", "4", "8"], "whole analyze"),
    "bench_information.py": (["--n", "300", "--dims", "4"], "agreement: MI relative difference"),
    "bench_discrete.py": (["--n", "64", "--positions", "4", "--codes", "16"],
                          "rows: decoder rows"),
    "bench_decoder.py": (["--n", "64", "--latent-dim", "4"], "Fisher fwd+bwd"),
    "bench_decoded.py": (["--models", "digits", "--samples", "32", "--repeat", "1"],
                         "share of diagnostics"),
    "bench_nll.py": (["--k", "2", "--examples", "20"], "ms/input/K"),
    "bench_status_vs_n.py": (["--n", "64", "--models", "digits"], "digits"),
    "bench_monitor.py": (["--steps", "4", "--every", "2"], "steady state"),
    "bench_refinement.py": (["--models", "digits", "--repeat", "1"], "share of diagnostics"),
    "bench_swap_coverage.py": (["--seeds", "2", "--sizes", "16", "--n", "64"],
                               "Monte Carlo SE of a rate"),
}


@pytest.mark.parametrize("script", sorted(RUNS))
def test_benchmark_script_runs(script):
    args, expected = RUNS[script]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg",
           # this checkout's package, not whichever one is installed
           "PYTHONPATH": os.pathsep.join(filter(None, [str(BENCHMARKS.parent),
                                                       os.environ.get("PYTHONPATH")]))}
    run = subprocess.run([sys.executable, str(BENCHMARKS / script), *args], env=env,
                         capture_output=True, text=True, timeout=300, cwd=BENCHMARKS.parent)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert expected in run.stdout, run.stdout[-2000:]
