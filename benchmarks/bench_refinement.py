"""Cost of the refinement diagnostic on the shipped demo models (a benchmark, not a test).

For each shipped model it runs the default ``analyze`` (``--repeat`` times, seed 0)
and prints, from the report: the refinement's decoder rows (each row one forward and
one backward pass through the decoder, plus the evaluation's forward rows), rows and
seconds per refined input, its share of the summed diagnostic times, the steps run,
the inputs that converged, the amortization gap and the model's cause. With
``--budget`` it also reruns the refinement alone at larger budgets
(``refine_examples`` x ``refine_steps``) and prints what they buy: the gap, its
interval width, the converged inputs and the causes. Timings are the fastest of the
repeats (a shared machine drifts; use ``--threads 1`` for steadier figures).

Usage::

    python benchmarks/bench_refinement.py [--models text_collapsed text_healthy digits]
        [--repeat 3] [--threads T] [--budget]
"""

from __future__ import annotations

import argparse

import torch

from collapse_diag import analyze, load_checkpoint
from collapse_diag.config.settings import Settings
from collapse_diag.diagnostics.posterior_refinement import refine_posteriors
from collapse_diag.examples import SHIPPED
from collapse_diag.model.encodings import encode_all
from collapse_diag.model.protocol import check_model
from collapse_diag.runtime.rng import generator_for


def _default(name: str, repeat: int) -> None:
    loaded = load_checkpoint(SHIPPED[name])
    best = None
    for _ in range(repeat):
        report = analyze(loaded.model, loaded.data, labels=loaded.labels, seed=0)
        if best is None or report.timings["refinement"] < best.timings["refinement"]:
            best = report
    s, t = best.summary, best.timings
    m, k = s["refinement_examples"], Settings().refine_samples
    rows = m * 2 * k * (s["refinement_steps"] + 2)  # upper bound: every block ran the most steps
    total = sum(t.values())
    print(f"{name:15s} refined {m:3d} inputs  steps {s['refinement_steps']:4d}  "
          f"converged {s['refinement_converged']:3d}  decoder rows <= {rows:7,d} "
          f"({rows // m:,d} per input)  {t['refinement']:.2f} s ({t['refinement'] / m:.3f} s per "
          f"input)  share of diagnostics {t['refinement'] / total:.0%} (likelihood "
          f"{t['likelihood']:.2f} s)  gap {s['amortization_gap']:.3f} nats  cause "
          f"{s['collapse_cause']}")


def _budgets(name: str) -> None:
    loaded = load_checkpoint(SHIPPED[name])
    model = loaded.model.eval()
    info = check_model(model, loaded.data)
    enc = encode_all(model, loaded.data, info, 64)
    for examples, steps in ((32, 200), (64, 200), (32, 400), (128, 400)):
        settings = Settings(refine_examples=examples, refine_steps=steps).validate()
        refined = refine_posteriors(model, loaded.data, enc, info, settings,
                                    generator_for(0, "refinement"))
        mean, low, high = refined.amortization_gap(0.95)
        print(f"  {name:15s} M={examples:4d} steps={steps:4d}: gap {mean:.3f} "
              f"[{low:.3f}, {high:.3f}] (width {high - low:.3f}), converged "
              f"{int(refined.converged.sum())}/{examples}, steps run {refined.steps_run}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=list(SHIPPED))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--budget", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    for name in args.models:
        _default(name, args.repeat)
    if args.budget:
        for name in args.models:
            _budgets(name)


if __name__ == "__main__":
    main()
