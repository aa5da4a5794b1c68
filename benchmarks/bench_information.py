"""Cost of the mutual-information diagnostic (a benchmark, not a test).

Times :func:`~collapse_diag.diagnostics.information.information_diagnostic` on
synthetic encodings (mu ~ N(0, 1), logvar ~ N(-1, 0.3^2)) with latent_dim D for
several N, with the default settings (4 samples per input, at most 10,000
mixture components), and prints per N: the inputs used M, wall and process CPU
seconds, and peak memory above the level before the call (resident set, each N
measured in a fresh subprocess). The cost is O(M^2 * samples * D): N above
``max_components`` costs the same as N = ``max_components``.

Usage::

    python benchmarks/bench_information.py [--n 1000 10000 100000] [--dim 32]
        [--samples 4] [--max-components 10000] [--threads T]

Timings vary with the machine and its load (on a shared machine the CPU figure is
the steadier one); compare figures from one run only.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time


def _rss() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _one(n: int, dim: int, samples: int, max_components: int, threads: int | None) -> dict:
    import numpy as np
    import torch

    from collapse_diag.diagnostics.information import information_diagnostic
    from collapse_diag.diagnostics.kl import kl_diagnostic
    from collapse_diag.encodings import Encodings

    if threads:
        torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    enc = Encodings(mu=rng.normal(size=(n, dim)), logvar=rng.normal(-1.0, 0.3, size=(n, dim)))
    mean_kl = kl_diagnostic(enc).total
    # Warm torch's kernels on a tiny problem so the timing is the diagnostic's own.
    information_diagnostic(Encodings(mu=enc.mu[:8], logvar=enc.logvar[:8]),
                           torch.Generator().manual_seed(0), mean_kl)
    base = _rss()
    wall, cpu = time.perf_counter(), time.process_time()
    result = information_diagnostic(enc, torch.Generator().manual_seed(0), mean_kl,
                                     samples=samples, max_components=max_components)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base  # Linux: KiB
    return {"n": n, "m": result.n_used, "wall_s": wall, "cpu_s": cpu,
            "peak_mib": max(peak, 0) / 2**20, "mi": result.mutual_information,
            "ceiling": result.ceiling, "threads": torch.get_num_threads()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--max-components", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(_one(args.one, args.dim, args.samples, args.max_components,
                              args.threads)))
        return
    print(f"information_diagnostic, D={args.dim}, samples={args.samples}, "
          f"max_components={args.max_components}")
    print(f"{'N':>8} {'M':>7} {'threads':>7} {'wall s':>8} {'cpu s':>8} {'peak MiB':>9} "
          f"{'MI':>8} {'log M':>7}")
    for n in args.n:
        cmd = [sys.executable, __file__, "--one", str(n), "--dim", str(args.dim),
               "--samples", str(args.samples), "--max-components", str(args.max_components)]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        row = json.loads(subprocess.run(cmd, check=True, capture_output=True,
                                        text=True).stdout.strip().splitlines()[-1])
        print(f"{row['n']:>8} {row['m']:>7} {row['threads']:>7} {row['wall_s']:>8.2f} "
              f"{row['cpu_s']:>8.2f} {row['peak_mib']:>9.1f} {row['mi']:>8.3f} "
              f"{row['ceiling']:>7.3f}", flush=True)


if __name__ == "__main__":
    main()
