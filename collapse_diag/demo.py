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
from collapse_diag.io.checkpoint import load_checkpoint
from collapse_diag.render import write_report
from collapse_diag.render.tables import text_table
from collapse_diag.report.headlines import HEADLINE, label
from collapse_diag.report.report import Report
from collapse_diag.report.schema import PROBE_KEY as PR
from collapse_diag.report.schema import STATUSES
from collapse_diag.report.schema import SUMMARY_KEY as S

__all__ = ["FIGURES", "run_demo", "comparison_table"]

#: The summary figures the demo table shows after the verdict and the status counts, in order:
#: the headline figures, then the swap p-value and the best probe (titles from
#: collapse_diag/report/headlines.py).
FIGURES = (*HEADLINE, S.swap_p_value, S.probes)


def _best_probe(probes: dict[str, Any]) -> str:
    if not probes:
        return "-"
    name, best = max(probes.items(),
                     key=lambda kv: kv[1][PR.accuracy] - kv[1][PR.baseline])
    return f"{name} {best[PR.accuracy]:.2f}/{best[PR.baseline]:.2f}"


def _cell(value: Any, key: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2g}" if key == S.swap_p_value else f"{value:.3f}"
    return str(value)


def _cells(report: Report) -> list[str]:
    s = report.summary
    counts = s.get(S.status_counts) or {}
    return ([_cell(s.get(S.verdict), S.verdict)]
            + [_cell(counts.get(status), status) for status in STATUSES]
            + [_cell(s.get(S.collapse_cause), S.collapse_cause)]
            + [_best_probe(s.get(key) or {}) if key == S.probes else _cell(s.get(key), key)
               for key in FIGURES])


def comparison_table(reports: dict[str, Report]) -> str:
    """Fixed-width table: one row per model, its verdict, unit counts, cause, headline figures."""
    rows = [["model", label(S.verdict), *STATUSES, label(S.collapse_cause),
             *(label(key) for key in FIGURES)]]
    rows += [[name, *_cells(report)] for name, report in reports.items()]
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
        echo(f"{name}: verdict {report.summary.get(S.verdict, 'n/a')} -> "
             f"{next(iter(written.values())).parent}")
    echo("")
    echo(comparison_table(reports))
    echo("")
    for name, report in reports.items():
        reason = report.summary.get(S.verdict_reason)
        if reason:
            echo(f"{name}: {reason}")
    main_document = "report.html" if "html" in formats else "report.md"
    echo("")
    echo(f"Open {out_dir / '<model>' / main_document} to see why.")
    return reports
