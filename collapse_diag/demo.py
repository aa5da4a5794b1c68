"""``collapse-diag demo``: analyse the bundled example models and compare them side by side.

The shipped checkpoints (``collapse_diag/examples/checkpoints``) are a text VAE
trained on the plain ELBO (it collapses), the same model trained with KL
annealing, free bits and word dropout, and an MLP VAE on 8x8 digits. Each gets a
full report under ``OUT/<model>/``; a table compares their verdicts and figures.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from collapse_diag.analysis import analyze
from collapse_diag.checkpoint import load_checkpoint
from collapse_diag.render import write_report
from collapse_diag.render.tables import text_table
from collapse_diag.report import Report
from collapse_diag.schema import STATUSES

__all__ = ["run_demo", "comparison_table"]

_COLUMNS = (
    ("model", None),
    ("verdict", "verdict"),
    *((status, ("status_counts", status)) for status in STATUSES),
    ("KL", "kl"),
    ("MI", "mutual_information"),
    ("swap delta", "swap_delta"),
    ("swap p", "swap_p_value"),
    ("best probe", "probes"),
)


def _value(report: Report, key: Any) -> str:
    s = report.summary
    if key == "probes":
        probes = s.get("probes") or {}
        if not probes:
            return "-"
        name, best = max(probes.items(), key=lambda kv: kv[1]["accuracy"] - kv[1]["baseline"])
        return f"{name} {best['accuracy']:.2f}/{best['baseline']:.2f}"
    value = s.get(key[0], {}).get(key[1]) if isinstance(key, tuple) else s.get(key)
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2g}" if key == "swap_p_value" else f"{value:.3f}"
    return str(value)


def comparison_table(reports: dict[str, Report]) -> str:
    """Fixed-width table: one row per model, its verdict, unit counts and headline figures."""
    rows = [[title for title, _ in _COLUMNS]]
    for name, report in reports.items():
        rows.append([name] + [_value(report, key) for _, key in _COLUMNS[1:]])
    return text_table(rows)


def run_demo(
    out_dir: str | Path = "collapse-diag-demo",
    retrain: bool = False,
    seed: int = 0,
    formats: Sequence[str] = ("json", "md", "html"),
    show_progress: bool = False,
    echo: Callable[[str], Any] = print,
) -> dict[str, Report]:
    """Analyse the bundled models and print a side-by-side summary.

    Args:
        out_dir: Folder receiving one report folder per model.
        retrain: Retrain the models into ``out_dir/checkpoints`` first (a few
            minutes on a CPU) instead of using the shipped checkpoints.
        seed: Seed of the analysis (and of the retraining).
        formats: Documents to write per model.
        show_progress: Progress bars on stderr.
        echo: Where the summary lines go.

    Returns:
        The reports, by model name.
    """
    from collapse_diag.examples import SHIPPED

    out_dir = Path(out_dir)
    checkpoints = {name: Path(path) for name, path in SHIPPED.items()}
    if retrain:
        from collapse_diag.examples import train

        folder = out_dir / "checkpoints"
        train.main(["--out", str(folder), "--seed", str(seed)])
        checkpoints = {name: folder / path.name for name, path in checkpoints.items()}
    reports: dict[str, Report] = {}
    for name, path in checkpoints.items():
        loaded = load_checkpoint(path)
        report = analyze(loaded.model, loaded.data, labels=loaded.labels,
                         checkpoint={"path": str(path), "sha256": loaded.sha256},
                         show_progress=show_progress, seed=seed)
        written = write_report(report, out_dir / name, formats)
        reports[name] = report
        echo(f"{name}: verdict {report.summary.get('verdict', 'n/a')} -> "
             f"{next(iter(written.values())).parent}")
    echo("")
    echo(comparison_table(reports))
    echo("")
    for name, report in reports.items():
        reason = report.summary.get("verdict_reason")
        if reason:
            echo(f"{name}: {reason}")
    main_document = "report.html" if "html" in formats else "report.md"
    echo("")
    echo(f"Open {out_dir / '<model>' / main_document} to see why.")
    return reports
