"""Paired against unpaired NLL / -ELBO / KL differences of the shipped LSTM text models.

Analyses ``text_healthy`` and ``text_collapsed`` (the demo LSTM text VAEs) and the
reference ``text_weak`` (the same LSTM, 16 dimensions, free bits 0.1 and word dropout
0.5), each with its stored inputs (the same 1,000 sentences), with the same seed and the
kl and likelihood diagnostics, then prints for every pair ``compare``'s paired
differences: the mean of a - b per input, the paired and the unpaired intervals (the
latter what the two reports' ``nll ± nll_se`` amount to), their width ratio, and the
ranking. The narrowing is ``1 / sqrt(1 - rho)`` for equal spreads, rho the correlation of
the two models' per-input figures: large for two variants of one architecture, smaller
when one model's per-input NLL varies in ways the other's does not.

Usage::

    python benchmarks/bench_paired.py [--nll-examples 200] [--nll-samples 100] [--threads 1]
"""

from __future__ import annotations

import argparse
import itertools
import time

import torch

from collapse_diag import analyze, compare, load_checkpoint
from collapse_diag.examples import REFERENCE, SHIPPED

#: The shipped LSTM text VAEs (the demo's two and the reference checkpoint).
TEXT_MODELS = {name: ({**SHIPPED, **REFERENCE})[name]
               for name in ("text_healthy", "text_collapsed", "text_weak")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nll-examples", type=int, default=200)
    parser.add_argument("--nll-samples", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    reports = {}
    for name, path in TEXT_MODELS.items():
        loaded = load_checkpoint(path)
        start = time.perf_counter()
        reports[name] = analyze(loaded, diagnostics=["kl", "likelihood"], seed=0,
                                nll_examples=args.nll_examples, nll_samples=args.nll_samples)
        s = reports[name].summary
        print(f"{name}: N = {reports[name].n_examples}, NLL {s['nll']:.3f} ± {s['nll_se']:.3f} "
              f"(K = {s['nll_samples']}, converged {s['nll_converged']}, last change "
              f"{s['nll_change']:.4f} ± {s['nll_change_se']:.4f}), -ELBO {s['neg_elbo']:.3f}, "
              f"KL {s['kl']:.3f}; {time.perf_counter() - start:.1f} s")
    for a, b in itertools.combinations(reports, 2):
        _print_pair(a, b, compare([reports[a], reports[b]], names=[a, b]))


def _print_pair(a: str, b: str, c) -> None:
    print(f"\n{a} (a) against {b} (b):")
    if not c.paired:
        print("no paired differences:", *c.notes)
        return
    for figure in ("nll", "neg_elbo", "kl"):
        d = c.paired[0].get(figure)
        if d is None:
            continue
        print(f"{figure:>8}: a - b = {d['mean']:.4f} on {d['n']} inputs; paired "
              f"[{d['ci'][0]:.4f}, {d['ci'][1]:.4f}] (se {d['se']:.4f}), unpaired "
              f"[{d['ci_unpaired'][0]:.4f}, {d['ci_unpaired'][1]:.4f}] (se "
              f"{d['se_unpaired']:.4f}): {d['narrowing']:.1f}x narrower; lower: {d['lower']}")


if __name__ == "__main__":
    main()
