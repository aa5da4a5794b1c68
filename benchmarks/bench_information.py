"""Cost and accuracy of the mutual-information estimator (a benchmark, not a test).

On synthetic encodings (mu ~ N(0, 1), logvar ~ N(-1, 0.3^2)), N inputs, latent_dim
D, 4 samples per input (the defaults), it prints, each case in a fresh subprocess
(so peak memory is its own):

* the GEMM estimator (:func:`~collapse_diag.diagnostics.information.mi_terms`):
  wall and CPU seconds, split into the full-vector part and the per-dimension part;
* the previous exact computation (``benchmarks/_exact_mi.py``, the per-dimension
  loop it replaced) on the same samples: its time, the speed-up, and the
  agreement (relative difference of the total MI, largest absolute and relative
  difference of the per-dimension MI);
* the float32 GEMM's error on the total (measured, not used: the estimator runs in float64);
* the whole diagnostic with its defaults: 1,000 bootstrap resamples for the intervals
  and the query budget ``mi_max_queries`` = 10,000 (so fewer than the 4 draws per input
  of the rows above from N = 2,500 on, one from N = 10,000).

``--mu-scale`` sets the spread of mu: at 1 (default) the MI is near its ceiling
log N; at 0.1-0.3 it is well below it (1-4 nats at D = 32). ``--logvar-mean``
sets the posteriors' width: -1 (default, sd ~0.6); -6 (sd ~0.05) is an
informative encoder whose 1-D mixtures are sharp, the grid's hard case.

Usage::

    python benchmarks/bench_information.py [--n 10000] [--dims 32 128] [--no-exact-above 32]
        [--mu-scale 1] [--logvar-mean -1]
        [--threads T]

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

HERE = os.path.dirname(os.path.abspath(__file__))


def _rss() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _timed(func):
    wall, cpu = time.perf_counter(), time.process_time()
    out = func()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def _one(mode: str, n: int, dim: int, threads: int | None, mu_scale: float,
         logvar_mean: float) -> dict:
    import numpy as np
    import torch

    sys.path.insert(0, HERE)
    from collapse_diag.diagnostics.estimators import mixture_density as md
    from collapse_diag.diagnostics.information import information_diagnostic, mi_terms
    from collapse_diag.diagnostics.kl import kl_diagnostic
    from collapse_diag.model.encodings import Encodings

    if threads:
        torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    mu, logvar = mu_scale * rng.normal(size=(n, dim)), rng.normal(logvar_mean, 0.3, size=(n, dim))
    eps = torch.randn((n, 4, dim), generator=torch.Generator().manual_seed(0),
                      dtype=torch.float64).numpy()
    z = mu[:, None, :] + np.exp(0.5 * logvar)[:, None, :] * eps
    mi_terms(z[:8], mu[:8], logvar[:8])  # warm torch's kernels
    base = _rss()
    row: dict = {"mode": mode, "n": n, "dim": dim, "threads": torch.get_num_threads()}
    if mode == "old":
        from _exact_mi import mi_from_samples as exact

        (mi, per), row["wall_s"], row["cpu_s"] = _timed(lambda: exact(z, mu, logvar))
        row.update(mi=mi, per=per.tolist())
    elif mode == "new":
        (h, h_dim), row["wall_s"], row["cpu_s"] = _timed(lambda: mi_terms(z, mu, logvar))
        row.update(mi=float(h.mean()), per=h_dim.mean(axis=0).tolist())
        # the estimator's own peak, before the split timings and the float32 run below
        row["peak_mib"] = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
                              - base, 0) / 2**20
        zt = torch.from_numpy(np.ascontiguousarray(z.reshape(-1, dim)))
        mut, lvt = torch.from_numpy(mu), torch.from_numpy(logvar)
        owner = torch.arange(n).repeat_interleave(4)
        full64, row["full_wall_s"], _ = _timed(lambda: md.full_terms(zt, owner, mut, lvt))
        full32, row["full32_wall_s"], _ = _timed(
            lambda: md.full_terms(zt, owner, mut, lvt, dtype=torch.float32))
        row["float32_abs_err"] = abs(float(full32.mean() - full64.mean()))
        row["float32_max_term_err"] = float((full32 - full64).abs().max())
        row["per_dim_wall_s"] = row["wall_s"] - row["full_wall_s"]
    else:  # the diagnostic with its intervals
        enc = Encodings(mu=mu, logvar=logvar)
        kl = kl_diagnostic(enc).total
        result, row["wall_s"], row["cpu_s"] = _timed(lambda: information_diagnostic(
            enc, torch.Generator().manual_seed(0), kl, bootstrap=1000))
        row.update(mi=result.mutual_information, ci=list(result.mi_ci), samples=result.samples)
    if "peak_mib" not in row:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base  # Linux: KiB
        row["peak_mib"] = max(peak, 0) / 2**20
    return row


def _run(mode: str, n: int, dim: int, threads: int | None, mu_scale: float,
         logvar_mean: float) -> dict:
    cmd = [sys.executable, __file__, "--one", mode, "--n", str(n), "--dims", str(dim),
           "--mu-scale", str(mu_scale), "--logvar-mean", str(logvar_mean)]
    if threads:
        cmd += ["--threads", str(threads)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--dims", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--no-exact-above", type=int, default=32,
                        help="skip the (slow) previous computation above this latent_dim")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--mu-scale", type=float, default=1.0,
                        help="std of mu across inputs (1: MI near log N; 0.1-0.3: well below)")
    parser.add_argument("--logvar-mean", type=float, default=-1.0,
                        help="mean posterior log-variance (-1: sd ~0.6; -6: sharp, sd ~0.05)")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(_one(args.one, args.n, args.dims[0], args.threads, args.mu_scale,
                              args.logvar_mean)))
        return
    import numpy as np

    print(f"MI estimator, N = M = {args.n}, 4 samples per input ({4 * args.n} queries), "
          f"mu ~ N(0, {args.mu_scale}^2), logvar ~ N({args.logvar_mean:g}, 0.3^2)")
    for dim in args.dims:
        new = _run("new", args.n, dim, args.threads, args.mu_scale, args.logvar_mean)
        print(f"D={dim:<4} GEMM estimator: {new['wall_s']:.2f} s wall, {new['cpu_s']:.2f} s CPU "
              f"({new['threads']} threads; full vector {new['full_wall_s']:.2f} s, per-dimension "
              f"{new['per_dim_wall_s']:.2f} s), peak {new['peak_mib']:.0f} MiB; MI {new['mi']:.4f}")
        print(f"       float32 GEMM (not used): full vector {new['full32_wall_s']:.2f} s, error on"
              f" MI {new['float32_abs_err']:.2e} nats, largest per-query error "
              f"{new['float32_max_term_err']:.2e} nats")
        diag = _run("diagnostic", args.n, dim, args.threads, args.mu_scale, args.logvar_mean)
        print(f"       whole diagnostic (defaults: 1000 bootstrap resamples, "
              f"{diag['samples']} draws per input under the "
              f"query budget): {diag['wall_s']:.2f} s, "
              f"MI {diag['mi']:.4f}, 95% interval [{diag['ci'][0]:.4f}, {diag['ci'][1]:.4f}]")
        if dim > args.no_exact_above:
            continue
        old = _run("old", args.n, dim, args.threads, args.mu_scale, args.logvar_mean)
        per_new, per_old = np.array(new["per"]), np.array(old["per"])
        rel = abs(new["mi"] - old["mi"]) / abs(old["mi"])
        per_abs = np.abs(per_new - per_old)
        speed_wall, speed_cpu = old["wall_s"] / new["wall_s"], old["cpu_s"] / new["cpu_s"]
        print(f"       previous exact computation: {old['wall_s']:.2f} s wall, {old['cpu_s']:.2f} s"
              f" CPU, peak {old['peak_mib']:.0f} MiB -> speed-up {speed_wall:.1f}x wall, "
              f"{speed_cpu:.1f}x CPU")
        print(f"       agreement: MI relative difference {rel:.2e}; per-dimension largest "
              f"absolute {per_abs.max():.2e} nats, largest relative "
              f"{(per_abs / np.abs(per_old)).max():.2e}")


if __name__ == "__main__":
    main()
