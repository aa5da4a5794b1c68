"""The short names of the headline figures, declared once for every table and plot.

A headline figure is a ``summary`` field (collapse_diag/report/schema.py) that the
comparison table (collapse_diag/runs/comparison.py ``COLUMNS``), the demo table
(collapse_diag/demo.py), the trajectory rows and plots
(collapse_diag/runs/trajectory_fields.py ``TRACKED``) and the monitor's scalars show.
Each of those lists names its fields through ``SUMMARY_KEY``, starts from
:data:`HEADLINE` where it shows the headline figures, and takes the title of a
column or axis from :data:`LABELS`, the unit from the schema.
"""

from __future__ import annotations

from collapse_diag.report.schema import SUMMARY
from collapse_diag.report.schema import SUMMARY_KEY as S

__all__ = ["HEADLINE", "LABELS", "axis_label", "label"]

#: The headline figures every one-line or one-row summary of a report shows, in order:
#: the demo table (demo.FIGURES), the trajectory's curves and the monitor's scalars
#: (trajectory_fields.TRACKED) read it; cli/terminal.py's summary line shows the same four,
#: labelled from :data:`LABELS` by their diagnostics' specs (``SummaryRow.terminal``).
HEADLINE = (S.kl, S.mutual_information, S.active_units, S.swap_delta)

#: Summary key -> its short name in tables and on axes.
LABELS: dict[str, str] = {
    S.neg_elbo: "-ELBO",
    S.nll: "NLL",
    S.ppl: "PPL",
    S.kl: "KL",
    S.collapse_cause: "cause",
    S.mutual_information: "MI",
    S.mi_minibatch: "MI (minibatch)",
    S.active_units: "AU",
    S.collapsed_units: "collapsed units",
    S.verdict: "verdict",
    S.swap_delta: "swap delta",
    S.swap_p_value: "swap p",
    S.reconstruction: "reconstruction",
    S.probes: "best probe",
    S.codebook_perplexity: "codebook perplexity",
    S.codebook_used: "codes used",
    S.discrete_kl: "KL (categorical)",
    S.discrete_mi: "MI (exact)",
    S.discrete_swap_delta: "swap delta (codes)",
    S.output_diversity: "output diversity",
}


def label(key: str) -> str:
    """The short name of summary field ``key`` (KeyError for a field that has none)."""
    return LABELS[key]


def axis_label(key: str) -> str:
    """``label [unit]`` for an axis, the unit from the schema (none for plain counts)."""
    unit = SUMMARY[key].unit
    return label(key) if unit in ("count", "label") else f"{label(key)} [{unit}]"
