"""``collapse-diag demo --track``: watch collapse happen in one run and not in the other.

Trains the bundled LSTM text VAE twice for a short run (640 steps, about 10 s
each on one CPU thread) from the same initialisation: once on the plain ELBO
(``text_collapsed``), once with KL annealing, free bits and word dropout
(``text_healthy``; see :mod:`collapse_diag.examples.train`). Checkpoints are
saved at steps 0, 10, 20, 40, ... (doubling) and at the last step, each with
its ``step`` key, under ``OUT/checkpoints/<run>/``; then ``track`` writes each
run's trajectory to ``OUT/<run>/``.

Also runnable as ``python -m collapse_diag.examples.track_demo [--out DIR]``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from collapse_diag.examples.train import CONFIGS, train_model
from collapse_diag.io.checkpoint import save_checkpoint
from collapse_diag.render.trajectory import write_trajectory
from collapse_diag.runs.track import TrackResult, track

__all__ = ["RUNS", "DEMO_STEPS", "checkpoint_steps", "run_track_demo"]

#: The two runs of the demo (keys of :data:`collapse_diag.examples.train.CONFIGS`).
RUNS = ("text_collapsed", "text_healthy")
#: Optimiser steps of each demo run.
DEMO_STEPS = 640


def checkpoint_steps(steps: int, first: int = 10) -> list[int]:
    """Steps 0, ``first``, 2 ``first``, 4 ``first``, ... below ``steps``, and ``steps``."""
    out, step = {0, steps}, first
    while step < steps:
        out.add(step)
        step *= 2
    return sorted(out)


def _train_with_checkpoints(name: str, folder: Path, steps: int, seed: int) -> list[Path]:
    """Train run ``name``, saving a checkpoint at each of :func:`checkpoint_steps`."""
    due = set(checkpoint_steps(steps))
    saved: list[Path] = []

    def save(step: int, model: torch.nn.Module, eval_x: torch.Tensor) -> None:
        if step in due:
            config = {**CONFIGS[name].model_config, "vocab": model.vocab}
            saved.append(save_checkpoint(folder / f"{name}_step{step:05d}.pt", model,
                                         CONFIGS[name].factory, config, data=eval_x, step=step))

    train_model(name, seed=seed, log=lambda _: None, steps=steps, on_step=save)
    return saved


def run_track_demo(
    out_dir: str | Path = "collapse-diag-demo",
    steps: int = DEMO_STEPS,
    seed: int = 0,
    formats: Sequence[str] = ("json", "md", "html"),
    show_progress: bool = False,
    echo: Callable[[str], Any] = print,
) -> dict[str, TrackResult]:
    """Train both runs briefly, saving checkpoints, and track them.

    Args:
        out_dir: Receives ``checkpoints/<run>/`` and one trajectory folder per run.
        steps: Optimiser steps per run.
        seed: Seed of the training and of the analyses.
        formats: Documents to write per run.
        show_progress: Progress bars on stderr.
        echo: Where the summary lines go.

    Returns:
        The :class:`~collapse_diag.runs.track.TrackResult` of each run.
    """
    out = Path(out_dir)
    results: dict[str, TrackResult] = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small models: one thread is fastest, and fair on shared CPUs
    try:
        for name in RUNS:
            results[name] = _run(name, out, steps, seed, formats, show_progress, echo)
    finally:
        torch.set_num_threads(threads)
    return results


def _run(name: str, out: Path, steps: int, seed: int, formats: Sequence[str],
         show_progress: bool, echo: Callable[[str], Any]) -> TrackResult:
    """Train and track one run; echo its explanation."""
    echo(f"{name}: training {steps} steps, saving checkpoints ...")
    paths = _train_with_checkpoints(name, out / "checkpoints" / name, steps, seed)
    result = track(paths, out / name, seed=seed, show_progress=show_progress)
    written = write_trajectory(result.trajectory, out / name, formats)
    for sentence in result.trajectory["explanation"]:
        echo(f"  {sentence}")
    echo(f"  -> {', '.join(str(p) for p in written.values())}")
    return result


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m collapse_diag.examples.track_demo",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("collapse-diag-demo"))
    parser.add_argument("--steps", type=int, default=DEMO_STEPS)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    run_track_demo(args.out, steps=args.steps, seed=args.seed)


if __name__ == "__main__":
    main()
