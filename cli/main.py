"""``collapse-diag``: a thin click layer over the library.

It parses options, calls the library, prints a summary, and maps errors to the
documented exit codes. Errors are one line on stderr; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

import click

from collapse_diag.exceptions import (
    EXIT_COLLAPSED,
    EXIT_DIAGNOSTIC_FAILED,
    EXIT_OK,
    DataError,
)
from collapse_diag_cli.common import (
    EXIT_CODES_HELP,
    FORMATS,
    _common_options,
    _formats_option,
    _parse_formats,
    handle_errors,
    say_removed,
    setting_option,
    settings_options,
    user_code_exit,
)
from collapse_diag_cli.compare_command import compare
from collapse_diag_cli.input_options import ModelInputs, model_input_options
from collapse_diag_cli.track_command import track


@click.group(epilog=EXIT_CODES_HELP)
@click.version_option(package_name="collapse-diag", prog_name="collapse-diag")
def main() -> None:
    """Diagnose posterior collapse in trained VAEs: whether, where and why."""


def _one_checkpoint(paths: tuple[str, ...]) -> str:
    """The one CHECKPOINT; several (a shell's expansion of an unquoted glob) is a usage error.

    When they are one training step's Hugging Face sub-model folders, the message names the
    quoted glob that selects them.
    """
    if len(paths) == 1:
        return paths[0]
    from collapse_diag.io.checkpoint_kinds import hf_step_of, hf_step_pattern

    parents = {str(Path(p).parent) for p in paths}
    steps = {hf_step_of(Path(p).name) for p in paths}
    hint = "use collapse-diag compare to analyse several models side by side"
    if len(parents) == 1 and len(steps) == 1 and None not in steps:
        names = [Path(p).name for p in paths]
        glob = str(Path(parents.pop()) / hf_step_pattern(names, steps.pop()))
        hint = (f"to analyse one step's sub-model folders, quote the glob so that the shell "
                f"does not expand it: collapse-diag analyze '{glob}'")
    shown = ", ".join(repr(p) for p in paths[:4]) + (", ..." if len(paths) > 4 else "")
    raise click.UsageError(f"analyze takes one CHECKPOINT; got {len(paths)} ({shown}): {hint}.")


@main.command(epilog=EXIT_CODES_HELP)
@click.argument("checkpoint", nargs=-1, required=True, type=click.Path(), metavar="CHECKPOINT",
                callback=lambda ctx, param, value: _one_checkpoint(value))
@model_input_options(out_default="collapse-diag-report", formats=FORMATS,
                     out_holds="report.json, report.md, report.html and plots/",
                     data_default="the checkpoint's 'data'")
@click.option("--fail-on-collapse", is_flag=True,
              help="Exit with code 1 when the verdict is 'collapsed' (to gate a pipeline).")
@click.option("--save-encodings", is_flag=True,
              help="Also write encodings.npz (mu and logvar per input) into --out, for "
                   "identifiability across seeds in `collapse-diag compare`.")
@settings_options()
@_common_options
@handle_errors
def analyze(checkpoint: str, inputs: ModelInputs, fail_on_collapse: bool, save_encodings: bool,
            quiet: bool, debug: bool, **settings: Any) -> None:
    """Analyse the VAE in CHECKPOINT and write a report to --out.

    CHECKPOINT: a checkpoint file, a pythae or Hugging Face model folder, or a quoted glob
    naming one training step's Hugging Face sub-model folders ('out/checkpoint-*-31250').
    """
    from collapse_diag.analysis import analyze as run_analysis
    from collapse_diag.io.checkpoint import load_checkpoint
    from collapse_diag.io.data import load_data
    from collapse_diag.io.files import display_path
    from collapse_diag.model.method_map import map_methods
    from collapse_diag.render import write_report
    from collapse_diag.report.encodings_file import ENCODINGS_FILE
    from collapse_diag.report.schema import PROVENANCE_KEY, SUMMARY_KEY
    from collapse_diag_cli.terminal import dimension_table, summary_line

    # the encodings are written aside and swapped in with the report (one set)
    with tempfile.TemporaryDirectory(prefix="collapse-diag-") as scratch:
        encodings = Path(scratch) / ENCODINGS_FILE if save_encodings else None
        with user_code_exit():
            loaded = load_checkpoint(checkpoint, **inputs.load_options())
            if inputs.method_map:
                loaded.model = map_methods(loaded.model, inputs.method_map)
            data = None if inputs.data is None else load_data(inputs.data, loaded.model)
            if data is None and loaded.data is None:
                raise DataError(f"checkpoint {display_path(checkpoint)!r} holds no 'data': pass "
                                "the evaluation inputs with --data FILE.")
            report = run_analysis(
                loaded, data, labels=inputs.labels, show_progress=not quiet,
                save_encodings=encodings, **settings,
            )
        from collapse_diag.runtime import distributed

        if not distributed.is_main():  # torchrun: rank 0 alone writes and prints
            distributed.finish()
            sys.exit(_exit_code(report, fail_on_collapse, echo=False))
        removed: list[str] = []
        try:
            written = write_report(report, inputs.out, inputs.formats, removed=removed,
                                   extra={ENCODINGS_FILE: encodings and encodings.read_bytes()})
        finally:
            distributed.finish()
    say_removed(removed, inputs.out, quiet)
    if not quiet:
        click.echo(dimension_table(report))
        click.echo()
    click.echo(summary_line(report))
    if not quiet:
        click.echo(f"labels: {report.provenance.get(PROVENANCE_KEY.labels, 'none')}")
    if report.summary.get(SUMMARY_KEY.verdict_reason) and not quiet:
        click.echo(report.summary[SUMMARY_KEY.verdict_reason])
    click.echo(f"report: {', '.join(display_path(p) for p in written.values())}")
    sys.exit(_exit_code(report, fail_on_collapse))


def _exit_code(report: Any, fail_on_collapse: bool, echo: bool = True) -> int:
    """4 when a part failed (a diagnostic, a plot, a document), else 1 or 0."""
    from collapse_diag.render.failures import is_render_error

    if report.errors:
        for name, message in report.errors.items():
            if echo:
                part = name.replace(":", " ", 1) if is_render_error(name) else \
                    f"diagnostic {name}"
                click.echo(f"error: {part} failed: {message}", err=True)
        return EXIT_DIAGNOSTIC_FAILED
    if fail_on_collapse and report.verdict == "collapsed":
        return EXIT_COLLAPSED
    return EXIT_OK


@main.command(epilog=EXIT_CODES_HELP)
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--format", "formats", default="md,html", show_default=True,
              callback=_formats_option(("md", "html")),
              help="Which documents to re-render: any of md,html (report.json is the source "
                   "and is left as it is).")
@settings_options("kl_eps", "active_threshold",
                  shown_default=lambda spec: "the report's own")
@_common_options
@handle_errors
def render(directory: Path, formats: tuple[str, ...], quiet: bool, debug: bool,
           **thresholds: Any) -> None:
    """Re-render the documents of DIRECTORY from its report.json, without the model.

    With --kl-eps / --active-threshold, every status, the verdict and the causes are
    re-derived from the stored figures at the new thresholds and report.json is
    rewritten (the run's values kept in provenance.rethresholded); other settings
    need a new run (docs/cli.md#render).
    """
    from collapse_diag.render import write_report
    from collapse_diag.render.failures import is_render_error
    from collapse_diag.report.report import Report

    report = Report.from_json(directory / "report.json")
    changes = {k: v for k, v in thresholds.items() if v is not None}
    if changes:
        from collapse_diag.runs.rethreshold import rethreshold

        report = rethreshold(report, **changes)
        # report.json changes, so it joins the set; a document not re-rendered is removed
        # (and named) rather than left contradicting it
        formats = ("json", *formats)
        click.echo(f"verdict at {', '.join(f'{k} = {v:g}' for k, v in changes.items())}: "
                   f"{report.verdict}")
    removed: list[str] = []
    written = write_report(report, directory, formats, removed=removed)
    say_removed(removed, directory, quiet)
    click.echo(f"report: {', '.join(str(p) for p in written.values())}")
    failed = {k: v for k, v in report.errors.items() if is_render_error(k)}
    for name, message in failed.items():
        click.echo(f"error: {name.replace(':', ' ', 1)} failed: {message}", err=True)
    sys.exit(EXIT_DIAGNOSTIC_FAILED if failed else EXIT_OK)


@main.command(epilog=EXIT_CODES_HELP)
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("collapse-diag-demo"), show_default=True,
              help="Folder receiving one report folder per bundled model.")
@click.option("--retrain", is_flag=True,
              help="Retrain the bundled models first (a few minutes on a CPU) instead of "
                   "using the shipped checkpoints.")
@setting_option("seed", note="It also seeds the retraining.")
@click.option("--format", "formats", default=",".join(FORMATS), show_default=True,
              callback=_parse_formats, help="Which documents to write: any of json,md,html.")
@click.option("--track", "track_runs", is_flag=True,
              help="Instead: train the text VAE briefly with the plain ELBO and with the "
                   "remedies, saving checkpoints, and track both runs (about a minute).")
@_common_options
@handle_errors
def demo(out_dir: Path, retrain: bool, seed: int, formats: tuple[str, ...], track_runs: bool,
         quiet: bool, debug: bool) -> None:
    """Analyse the bundled text and image VAEs and print a side-by-side summary."""
    from collapse_diag.demo import run_demo

    if track_runs:
        from collapse_diag.examples.track_demo import run_track_demo

        run_track_demo(out_dir, seed=seed, formats=formats, show_progress=not quiet,
                       echo=click.echo)
        sys.exit(EXIT_OK)

    reports = run_demo(out_dir, retrain=retrain, seed=seed, formats=formats,
                       show_progress=not quiet, echo=click.echo)
    failed = [name for name, report in reports.items() if report.errors]
    for name in failed:
        for diagnostic, message in reports[name].errors.items():
            click.echo(f"error: {name}: diagnostic {diagnostic} failed: {message}", err=True)
    sys.exit(EXIT_DIAGNOSTIC_FAILED if failed else EXIT_OK)


main.add_command(track)
main.add_command(compare)

if __name__ == "__main__":
    main()
