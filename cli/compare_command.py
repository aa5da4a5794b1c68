"""``collapse-diag compare A B C ...``: several models side by side (registered in main.py)."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import click

from collapse_diag.exceptions import EXIT_DIAGNOSTIC_FAILED, EXIT_OK
from collapse_diag.report.formats import COMPARISON_FORMATS
from collapse_diag_cli.common import (
    EXIT_CODES_HELP,
    _common_options,
    handle_errors,
    say_removed,
    settings_options,
)
from collapse_diag_cli.input_options import ModelInputs, model_input_options


def _folder_name(index: int, name: str) -> str:
    """``OUT/models/<this>``: index and a file-name-safe stem of the argument."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).stem).strip("_") or "model"
    return f"{index}_{stem}"


def _models_files(comparison: Any) -> dict[str, bytes]:
    """The reports (and encodings) of the checkpoints analysed here, as OUT/models/ files."""
    from collapse_diag.render.comparison import MODELS_FOLDER
    from collapse_diag.report.encodings_file import ENCODINGS_FILE, encodings_bytes
    from collapse_diag.report.schema import PROVENANCE_KEY

    files: dict[str, bytes] = {}
    for index, model in enumerate(comparison.models):
        if model.source == "checkpoint":
            folder = f"{MODELS_FOLDER}/{_folder_name(index, model.name)}"
            files[f"{folder}/report.json"] = model.report.to_json().encode("utf-8")
            if model.encodings is not None:
                files[f"{folder}/{ENCODINGS_FILE}"] = encodings_bytes(
                    model.encodings,
                    (model.report.provenance or {}).get(PROVENANCE_KEY.data_sha256, ""))
    return files


@click.command("compare", epilog=EXIT_CODES_HELP)
@click.argument("models", nargs=-1, required=True)
@model_input_options(out_default="collapse-diag-comparison", formats=COMPARISON_FORMATS,
                     out_holds="comparison.json/.md/.html/.csv/.tex (and models/ for the "
                               "reports of analysed checkpoints)",
                     data_default="each checkpoint's 'data' (the same inputs for every model "
                                  "let identifiability across seeds be computed)")
@settings_options()
@_common_options
@handle_errors
def compare(models: tuple[str, ...], inputs: ModelInputs, quiet: bool, debug: bool,
            **settings: Any) -> None:
    """Compare MODELS side by side: report folders (from `analyze`) or checkpoints.

    A checkpoint is a file, a pythae or Hugging Face model folder, or a quoted glob naming
    one training step's Hugging Face sub-model folders ('out/checkpoint-*-31250').

    Checkpoints are analysed first, all with the same settings (the analysis options
    below, as for `analyze`; report folders keep their own); their reports and
    encodings go to OUT/models/. Identifiability across seeds needs models analysed
    on the same inputs with saved encodings (`analyze --save-encodings`, or checkpoints).
    """
    from collapse_diag.render.comparison import write_comparison
    from collapse_diag.render.tables import text_table
    from collapse_diag.runs.comparison import compare as run_compare
    from collapse_diag.runtime import distributed

    if len(models) < 2:
        raise click.UsageError(f"compare needs at least two models; got {len(models)}: "
                               f"{', '.join(repr(m) for m in models)} (did a pattern match "
                               "only one?).")
    if len(set(models)) != len(models):
        raise click.UsageError("each model may be named only once.")
    comparison = run_compare(
        list(models), data=inputs.data, labels=inputs.labels, show_progress=not quiet,
        method_map=inputs.method_map or None, **inputs.load_options(), **settings,
    )
    failed = [(m.name, d, msg) for m in comparison.models for d, msg in m.report.errors.items()]
    if not distributed.is_main():  # torchrun: rank 0 alone writes and prints
        distributed.finish()
        sys.exit(EXIT_DIAGNOSTIC_FAILED if failed else EXIT_OK)
    removed: list[str] = []
    try:
        written = write_comparison(comparison, inputs.out, inputs.formats,
                                   extra=_models_files(comparison), removed=removed)
    finally:
        distributed.finish()
    say_removed(removed, inputs.out, quiet)
    rows = [["model", "data"] + [c.header for c in comparison.columns]]
    for row in comparison.rows:
        rows.append([row["name"], row["data_group"]] + [
            "-" if row.get(c.key) is None else f"{row[c.key]:.3f}"
            if isinstance(row[c.key], float) else str(row[c.key]) for c in comparison.columns])
    click.echo(text_table(rows))
    for entry in comparison.identifiability:
        mcc = "-" if entry["mcc"] is None else f"{entry['mcc']:.3f}"
        cca = "-" if entry["cca"] is None else f"{entry['cca']:.3f}"
        click.echo(f"identifiability {entry['a']} vs {entry['b']}: MCC {mcc}, CCA {cca}")
    for entry in comparison.paired:
        for figure, header in (("nll", "NLL"), ("neg_elbo", "-ELBO")):
            d = entry.get(figure)
            if d and d.get("ci"):
                lower = f"{d['lower']} lower" if d["lower"] else "not distinguishable"
                click.echo(f"paired {header} {entry['a']} - {entry['b']}: {d['mean']:.3f} "
                           f"[{d['ci'][0]:.3f}, {d['ci'][1]:.3f}] on {d['n']} inputs: {lower}")
    for note in comparison.notes:
        click.echo(f"note: {note}")
    click.echo(f"comparison: {', '.join(str(p) for p in written.values())}")
    for name, diagnostic, message in failed:
        click.echo(f"error: {name}: diagnostic {diagnostic} failed: {message}", err=True)
    sys.exit(EXIT_DIAGNOSTIC_FAILED if failed else EXIT_OK)
