"""Cost of the decoded diagnostic ("What the decoder makes of z") on the shipped demo models.

For each shipped model it runs the default ``analyze`` once (seed 0) and prints the
decoded diagnostic's seconds and its share of the summed diagnostic times; then it
reruns ``analyze`` with only kl and decoded at each ``--samples`` value of
``decoded_samples`` (fastest of ``--repeat`` runs) and prints the seconds, the
output diversity and the width of its interval: what more decodes buy.

Usage::

    python benchmarks/bench_decoded.py [--models text_collapsed text_healthy digits]
        [--samples 64 256 1024] [--repeat 3] [--threads T]
"""

from __future__ import annotations

import argparse

import torch

from collapse_diag import analyze, load_checkpoint
from collapse_diag.examples import SHIPPED
from collapse_diag.report.schema import SUMMARY_KEY as S


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(SHIPPED), choices=list(SHIPPED))
    parser.add_argument("--samples", nargs="+", type=int, default=[64, 256, 1024])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    for name in args.models:
        loaded = load_checkpoint(SHIPPED[name])
        full = analyze(loaded.model, loaded.data, labels=loaded.labels, seed=0)
        share = full.timings["decoded"] / sum(full.timings.values())
        print(f"{name}: decoded {full.timings['decoded']:.3f} s of the default analysis, "
              f"share of diagnostics {share:.1%}")
        for m in args.samples:
            runs = [analyze(loaded.model, loaded.data, seed=0, diagnostics=("kl", "decoded"),
                            decoded_samples=m) for _ in range(args.repeat)]
            seconds = min(r.timings["decoded"] for r in runs)
            summary = runs[0].summary
            low, high = summary[S.output_diversity_ci] or (float("nan"), float("nan"))
            print(f"  decoded_samples {m:5d}: {seconds:.3f} s, output diversity "
                  f"{summary[S.output_diversity]:.3f}, interval width {high - low:.3f}")


if __name__ == "__main__":
    main()
