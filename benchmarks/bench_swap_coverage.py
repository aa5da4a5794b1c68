"""Coverage of the per-dimension swap intervals under the adaptive rounds (a benchmark, not a test).

On the exact-posterior linear Gaussian VAE of issue 29 (8 dimensions, closed-form
swap effects 5.31, 3.13, 1.57, 0.62, 0, 0, 0, 0 nats; ``tests/swap_coverage.py``),
analyses many fresh data sets of N inputs for each round-1 size
(``--per-dim-swap-examples``) and prints, per size:

* the simultaneous non-coverage of the estimate intervals (``swap_estimate_ci``):
  runs where any dimension's interval missed its truth; it must stay at or below
  alpha within Monte Carlo error (the column ``<= alpha + 2 SE``);
* the same for the decision intervals (``swap_ci``, intersected over the rounds);
* runs where an estimate fell outside its estimate interval (must be 0) and outside
  its decision interval (the failure of issue 29);
* seconds per analysis (the sensitivity diagnostic).

Usage::

    python benchmarks/bench_swap_coverage.py [--seeds 400] [--sizes 16 32 64 128 256]
        [--n 400] [--threads 1]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from swap_coverage import ISSUE_TRUTHS, issue_model, swap_coverage  # noqa: E402

from collapse_diag.config.settings import Settings  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=400)
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 32, 64, 128, 256])
    parser.add_argument("--n", type=int, default=400)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, alpha = issue_model(), Settings().alpha
    truth = list(ISSUE_TRUTHS)
    print(f"linear Gaussian VAE, truths {truth} nats, N = {args.n}, {args.seeds} seeds, "
          f"alpha = {alpha}")
    print(f"{'round 1':>7} {'estimate miss':>13} {'<= alpha+2SE':>12} {'decision miss':>13} "
          f"{'est. outside est. CI':>20} {'est. outside dec. CI':>20} {'s/run':>6}")
    for first in args.sizes:
        start = time.perf_counter()
        cov = swap_coverage(model, np.array(truth), args.n, first,
                            range(args.seeds))
        per_run = (time.perf_counter() - start) / args.seeds
        ok = cov.rate(cov.estimate_miss) <= alpha + 2 * cov.mc_error(alpha)
        print(f"{first:>7} {cov.rate(cov.estimate_miss):>13.4f} {'yes' if ok else 'NO':>12} "
              f"{cov.rate(cov.decision_miss):>13.4f} {cov.outside_estimate:>20} "
              f"{cov.outside_decision:>20} {per_run:>6.3f}")
    print(f"Monte Carlo SE of a rate {alpha} over {args.seeds} runs: "
          f"{(alpha * (1 - alpha) / args.seeds) ** 0.5:.4f}")


if __name__ == "__main__":
    main()
