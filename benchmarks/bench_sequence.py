"""Time ``analyze`` on the synthetic sequential-latent model (issue 12); prints figures.

Run: ``python benchmarks/bench_sequence.py``. Default settings except where named; the
per-diagnostic seconds come from ``report.timings``. CPU only, tiny decoder: the figures
measure the toolkit's own overhead (window swaps, trajectory MI, ancestral prior draws).
"""

from __future__ import annotations

import time

from collapse_diag import analyze
from collapse_diag.examples.sequence_vae import build_sequence_vae, sample_inputs


def main() -> None:
    for n, steps, dims, ar in ((400, 16, 2, 0.0), (400, 16, 2, 0.5), (1000, 64, 8, 0.0)):
        weights = [2.0] * (dims // 2) + [0.0] * (dims - dims // 2)
        model = build_sequence_vae(weights=weights, steps=steps, used_steps=steps // 2,
                                   prior_ar=ar)
        x = sample_inputs(model, n, seed=0, min_length=steps - 4)
        start = time.perf_counter()
        report = analyze(model, x, seed=0)
        total = time.perf_counter() - start
        slow = sorted(report.timings.items(), key=lambda kv: -kv[1])[:3]
        print(f"N={n} T={steps} D={dims} prior_ar={ar}: {total:.2f} s total; "
              + ", ".join(f"{k} {v:.2f} s" for k, v in slow)
              + f"; verdict {report.verdict}; errors {sorted(report.errors)}")


if __name__ == "__main__":
    main()
