"""End-to-end cost of ``analyze`` and of writing the report (a benchmark, not a test).

Loads a shipped example checkpoint, tiles its evaluation inputs up to N, and
prints, for each N: seconds per diagnostic (from ``report.timings``), the encoder
pass and the whole ``analyze`` call, the time to write report.json/md/html with
plots, and the peak resident memory of the process so far.

Usage::

    python benchmarks/bench_analyze.py [--model text_healthy] [--n 1000 2000 4000]
        [--batch-size 64] [--device cpu]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time

import torch

from collapse_diag import analyze, load_checkpoint, write_report
from collapse_diag.data import num_examples, take
from collapse_diag.examples import SHIPPED


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(SHIPPED), default="text_healthy")
    parser.add_argument("--n", type=int, nargs="+", default=[1000, 2000, 4000])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()

    loaded = load_checkpoint(SHIPPED[args.model])
    base = num_examples(loaded.data)
    print(f"model {args.model}, {base} stored inputs tiled to N; device {args.device}, "
          f"torch threads {torch.get_num_threads()}")
    header = None
    for n in args.n:
        index = torch.arange(n) % base
        data = take(loaded.data, index)
        labels = {k: v[index] for k, v in (loaded.labels or {}).items()}
        start = time.perf_counter()
        report = analyze(loaded.model, data, labels=labels, batch_size=args.batch_size,
                         device=args.device)
        if report.errors:
            print(f"N={n}: failed diagnostics {report.errors}")
        total = time.perf_counter() - start
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            write_report(report, out)
            writing = time.perf_counter() - start
        row = {"N": n, **report.timings, "analyze": total, "write": writing,
               "peak MiB": peak_rss_mib()}
        if header is None:
            header = list(row)
            print("  ".join(f"{h:>15}" for h in header))
        print("  ".join(f"{row[h]:>15.2f}" if isinstance(row[h], float) else f"{row[h]:>15}"
                        for h in header))


if __name__ == "__main__":
    main()
