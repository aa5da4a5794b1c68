"""Paired against unpaired NLL / -ELBO / KL differences of two shipped text models.

Analyses ``text_healthy`` and ``text_collapsed`` (the demo LSTM text VAEs, each with its
stored inputs) with the same seed and the kl and likelihood diagnostics, then prints
``compare``'s paired differences: the mean of a - b per input, the paired and the
unpaired intervals (the latter what the two reports' ``nll ± nll_se`` amount to), their
width ratio, and the ranking. The two models must have been analysed on the same inputs.

Usage::

    python benchmarks/bench_paired.py [--nll-examples 200] [--nll-samples 100] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import torch

from collapse_diag import analyze, compare, load_checkpoint
from collapse_diag.examples import SHIPPED


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nll-examples", type=int, default=200)
    parser.add_argument("--nll-samples", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    reports = {}
    for name in ("text_healthy", "text_collapsed"):
        loaded = load_checkpoint(SHIPPED[name])
        start = time.perf_counter()
        reports[name] = analyze(loaded, diagnostics=["kl", "likelihood"], seed=0,
                                nll_examples=args.nll_examples, nll_samples=args.nll_samples)
        s = reports[name].summary
        print(f"{name}: N = {reports[name].n_examples}, NLL {s['nll']:.3f} ± {s['nll_se']:.3f} "
              f"(K = {s['nll_samples']}, converged {s['nll_converged']}, last change "
              f"{s['nll_change']:.4f} ± {s['nll_change_se']:.4f}), -ELBO {s['neg_elbo']:.3f}, "
              f"KL {s['kl']:.3f}; {time.perf_counter() - start:.1f} s")
    c = compare(list(reports.values()), names=list(reports))
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
