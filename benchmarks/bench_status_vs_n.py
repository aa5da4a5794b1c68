"""Per-dimension statuses versus the number of analysed inputs N (a benchmark, not a test).

For the weakly-used reference model (``collapse_diag/examples/checkpoints/text_weak.pt``:
16 latent dimensions, free bits 0.1, each dimension read weakly) and the shipped digits
model, runs ``analyze`` on the first N evaluation inputs for several N and prints the
status counts, the inputs and rounds the adaptive per-dimension swap used (and its
budget), the decoder rows it cost, and the wall time of the sensitivity diagnostic. As N
grows only ``undetermined`` may shrink: no dimension should flip between ``used`` and
``ignored``; the last column says whether any did so far.

Usage::

    python benchmarks/bench_status_vs_n.py [--n 100 200 400 1000] [--models text_weak digits]
        [--seed 0] [--threads 1]
"""

from __future__ import annotations

import argparse

import torch

from collapse_diag import analyze
from collapse_diag.examples import REFERENCE, SHIPPED
from collapse_diag.io.checkpoint import load_checkpoint

STATUSES = ("used", "undetermined", "ignored", "collapsed", "uninformative")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[100, 200, 400, 1000])
    parser.add_argument("--models", nargs="+", default=["text_weak", "digits"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    paths = {**SHIPPED, **REFERENCE}
    header = (f"{'model':10} {'N':>5} " + " ".join(f"{s[:7]:>7}" for s in STATUSES)
              + f" {'swap inputs':>11} {'rounds':>6} {'budget':>6} {'per-dim rows':>12}"
              + f" {'sens. s':>7}  flip")
    print(header)
    for name in args.models:
        loaded = load_checkpoint(paths[name])
        history: dict[int, set[str]] = {}
        for n in args.n:
            n = min(n, loaded.data.shape[0])
            report = analyze(loaded.model, loaded.data[:n], seed=args.seed)
            s = report.summary
            for row in report.dimensions:
                history.setdefault(row["index"], set()).add(row["status"])
            flip = any({"used", "ignored"} <= v for v in history.values())
            rows = sum(c for c in (row.get("swap_examples") or 0 for row in report.dimensions))
            rows += s["per_dim_swap_examples"]  # the own code of every decoded input
            counts = s["status_counts"]
            print(f"{name:10} {n:>5} " + " ".join(f"{counts[k]:>7}" for k in STATUSES)
                  + f" {s['per_dim_swap_examples']:>11} {s['per_dim_swap_rounds']:>6}"
                  + f" {s['per_dim_swap_budget']:>6} {rows:>12}"
                  + f" {report.timings['sensitivity']:>7.2f}  {'YES' if flip else 'no'}")


if __name__ == "__main__":
    main()
