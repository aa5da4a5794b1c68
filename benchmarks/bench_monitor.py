"""Overhead of ``CollapseMonitor`` on the demo text VAE's training loop (a benchmark, not a test).

Trains the bundled LSTM text VAE (``text_healthy`` config: remedies on, all
dimensions alive, so every diagnostic does its full work) for ``--steps``
steps, twice from the same seed: once plain, once calling
``monitor.step(step)`` after every update with the monitor measuring every
``--every`` steps (default: the documented ``DEFAULT_EVERY``) on the run's
1,000 held-out sentences (the cheap preset analyses a 512-sentence subset).
Prints the seconds spent inside the monitor, both wall times, and the
overhead as a fraction of the plain training time, measured two ways:

* ``inside``: time inside ``monitor.step`` / plain training time (the direct
  figure; insensitive to other load on the machine);
* ``wall``: (monitored wall time - plain wall time) / plain wall time (noisy on
  a shared machine).

Usage::

    python benchmarks/bench_monitor.py [--steps 1000] [--every 500] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import torch

from collapse_diag.examples.train import train_model
from collapse_diag.runs.monitor import DEFAULT_EVERY, CollapseMonitor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--every", type=int, default=DEFAULT_EVERY)
    parser.add_argument("--model", default="text_healthy",
                        choices=["text_healthy", "text_collapsed"])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    start = time.perf_counter()
    train_model(args.model, steps=args.steps, log=lambda _: None)
    plain = time.perf_counter() - start

    state: dict = {"inside": 0.0, "calls": 0}

    def on_step(step: int, model: torch.nn.Module, eval_x: torch.Tensor) -> None:
        if "monitor" not in state:
            state["monitor"] = CollapseMonitor(model, eval_x, every=args.every, out=None)
        begin = time.perf_counter()
        if state["monitor"].step(step) is not None:
            state["calls"] += 1
        state["inside"] += time.perf_counter() - begin

    start = time.perf_counter()
    train_model(args.model, steps=args.steps, log=lambda _: None, on_step=on_step)
    monitored = time.perf_counter() - start

    per_call = state["inside"] / max(state["calls"], 1)
    print(f"model {args.model}, {args.steps} steps, every {args.every}, torch threads "
          f"{torch.get_num_threads()}")
    print(f"plain training       {plain:8.2f} s  ({1000 * plain / args.steps:.1f} ms/step)")
    print(f"monitored training   {monitored:8.2f} s  ({state['calls']} measurements, "
          f"{per_call:.3f} s each, {state['inside']:.2f} s inside the monitor)")
    print(f"overhead inside      {state['inside'] / plain:8.2%}  of plain training time")
    print(f"overhead wall        {(monitored - plain) / plain:8.2%}  (noisy on a shared machine)")
    steady = per_call / (args.every * plain / args.steps)
    print(f"steady state         {steady:8.2%}  (one measurement per {args.every} steps, "
          "without the one at step 0)")


if __name__ == "__main__":
    main()
