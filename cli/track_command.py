"""``collapse-diag track CHECKPOINTS...``: the trajectory of a training run."""

from __future__ import annotations

import sys
from typing import Any

import click

from collapse_diag.config.declare import Setting
from collapse_diag.config.presets import CHEAP, FULL, preset_label
from collapse_diag.exceptions import EXIT_COLLAPSED, EXIT_DIAGNOSTIC_FAILED, EXIT_OK
from collapse_diag_cli.common import (
    EXIT_CODES_HELP,
    FORMATS,
    _common_options,
    given_settings,
    handle_errors,
    say_removed,
    settings_options,
)
from collapse_diag_cli.input_options import ModelInputs, model_input_options

__all__ = ["track"]


def _preset_default(spec: Setting) -> str:
    """What ``--help`` shows as the default: the cheap preset's value, and --full's."""
    def shown(value: object) -> str:
        return str(spec.none_means) if value is None else str(value)

    cheap, full = (preset.get(spec.name, spec.default) for preset in (CHEAP, FULL))
    return shown(cheap) if cheap == full else f"{shown(cheap)}; {shown(full)} with --full"


@click.command(epilog=EXIT_CODES_HELP)
@click.argument("checkpoints", nargs=-1, required=True)
@click.option("--order", type=click.Choice(["step", "name"]), default="step", show_default=True,
              help="Order by the checkpoint's 'step' (or 'global_step', 'epoch') key, a "
                   "Trainer folder's trainer_state.json, else the last number in its name; or "
                   "by name (steps are then positions).")
@click.option("--full", is_flag=True,
              help="Run the full analysis at every checkpoint instead of the cheap preset.")
@model_input_options(out_default="collapse-diag-trajectory", formats=FORMATS,
                     out_holds="trajectory.json, trajectory.md, trajectory.html and the cache "
                               "of per-checkpoint results",
                     data_default="those stored in the first checkpoint")
@click.option("--fail-on-collapse", is_flag=True,
              help="Exit with code 1 when the verdict at the last step is 'collapsed'.")
@settings_options(shown_default=_preset_default)
@_common_options
@handle_errors
def track(checkpoints: tuple[str, ...], inputs: ModelInputs, order: str, full: bool,
          fail_on_collapse: bool, quiet: bool, debug: bool, **settings: Any) -> None:
    """Analyse every checkpoint of a run (files, folders, globs; or one monitor .jsonl log).

    A folder gives its .pt/.pth/.ckpt files and its Hugging Face checkpoints (one per
    step: Optimus's checkpoint-encoder-<step>/ and checkpoint-decoder-<step>/, the
    Trainer's checkpoint-<step>/). The analysis options override the cheap preset (or,
    with --full, the defaults).
    """
    from collapse_diag.io.checkpoint import load_checkpoint
    from collapse_diag.io.data import load_data
    from collapse_diag.model.method_map import map_methods
    from collapse_diag.render.trajectory import write_trajectory
    from collapse_diag.report.schema import SUMMARY_KEY
    from collapse_diag.runs.track import find_checkpoints, order_checkpoints
    from collapse_diag.runs.track import track as run_track
    from collapse_diag.runs.trajectory_fields import ROW_KEY, TRAJECTORY_KEY
    from collapse_diag.runtime import distributed

    overrides = given_settings(settings)
    data = None
    if inputs.data is not None:
        first = order_checkpoints(find_checkpoints(checkpoints), order)[0][1]
        model = load_checkpoint(first, **inputs.load_options()).model
        if inputs.method_map:  # tokenize may be mapped
            model = map_methods(model, inputs.method_map)
        data = load_data(inputs.data, model)
    result = run_track(list(checkpoints), inputs.out, data=data, labels=inputs.labels,
                       full=full, order=order, show_progress=not quiet,
                       method_map=inputs.method_map or None, **inputs.load_options(),
                       **overrides)
    trajectory = result.trajectory
    failed = [row[ROW_KEY.step] for row in trajectory[TRAJECTORY_KEY.rows]
              if row.get(ROW_KEY.errors)]
    last = trajectory[TRAJECTORY_KEY.rows][-1][ROW_KEY.summary].get(SUMMARY_KEY.verdict)
    code = (EXIT_DIAGNOSTIC_FAILED if failed else
            EXIT_COLLAPSED if fail_on_collapse and last == "collapsed" else EXIT_OK)
    if not distributed.is_main():  # torchrun: rank 0 alone writes and prints
        distributed.finish()
        sys.exit(code)
    for note in result.notes:
        click.echo(f"note: {note}")
    removed: list[str] = []
    try:
        written = write_trajectory(trajectory, inputs.out, inputs.formats, removed=removed)
    finally:
        distributed.finish()
    say_removed(removed, inputs.out, quiet)
    if not quiet:
        for sentence in trajectory["explanation"]:
            click.echo(sentence)
    events = trajectory["events"]
    step = events["verdict_collapsed_step"]
    dims = ", ".join(f"z{d} {s:,}" for d, s in enumerate(events["dimension_collapse_steps"])
                     if s is not None)
    click.echo(("verdict never collapsed" if step is None else f"verdict collapsed at step "
                f"{step:,}") + f"; dimensions collapsed from step: {dims or 'none'}")
    click.echo(preset_label(trajectory[TRAJECTORY_KEY.preset],
                            trajectory.get(TRAJECTORY_KEY.settings)))
    click.echo(f"{len(trajectory['rows'])} step(s): {len(result.analysed)} analysed, "
               f"{len(result.reused)} from the cache")
    click.echo(f"trajectory: {', '.join(str(p) for p in written.values())}")
    if failed:
        click.echo(f"error: diagnostics failed at step(s) {failed} (see trajectory.json)",
                   err=True)
    sys.exit(code)
