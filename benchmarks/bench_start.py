"""Start-up time of the command line (a benchmark, not a test).

Runs ``collapse-diag --help``, ``collapse-diag analyze --help`` and, for
comparison, ``python -c "import torch"`` several times each in fresh
processes and prints the best and median wall-clock seconds. Target: the help
commands under 0.5 s (they import neither torch nor matplotlib; see
tests/test_fast_start.py).

Usage::

    python benchmarks/bench_start.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "collapse-diag --help": [sys.executable, "-m", "collapse_diag_cli.main", "--help"],
    "collapse-diag analyze --help": [sys.executable, "-m", "collapse_diag_cli.main", "analyze",
                                     "--help"],
    "python -c 'import torch' (reference)": [sys.executable, "-c", "import torch"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(f"{'command':<40} {'best s':>7} {'median s':>9}")
    for name, cmd in COMMANDS.items():
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True)
            times.append(time.perf_counter() - start)
        print(f"{name:<40} {min(times):>7.3f} {statistics.median(times):>9.3f}")


if __name__ == "__main__":
    main()
