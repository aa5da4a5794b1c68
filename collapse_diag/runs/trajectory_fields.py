"""The keys of trajectory.json, its rows and the monitor's JSONL lines, declared once.

A row (collapse_diag/runs/trajectory.py) keeps some summary and per-dimension
figures of a report; which ones is declared here, once, in :data:`TRACKED` and
:data:`DIMENSION_FIELDS` (report keys, spelled through collapse_diag/report/schema.py).
The trajectory's own keys (``step``, ``rows``, ...) get their own ``Keys``
namespaces, so no module spells them as string literals either
(tests/test_report_keys.py). Documented in docs/trajectory-schema.md.
"""

from __future__ import annotations

from dataclasses import dataclass

from collapse_diag.report.headlines import HEADLINE, axis_label
from collapse_diag.report.schema import DIMENSION_KEY as D
from collapse_diag.report.schema import SUMMARY_KEY as S
from collapse_diag.report.schema import Keys

__all__ = ["DIMENSION_FIELDS", "MONITOR_KEY", "MONITOR_KIND", "ROW_FIELDS", "ROW_KEY",
           "SCALAR_FIELDS", "SERIES", "SUMMARY_FIELDS", "TRACKED", "TRAJECTORY_KEY",
           "TRAJECTORY_SCHEMA_VERSION", "Tracked"]

#: Version of the trajectory.json (and monitor JSONL line) schema.
TRAJECTORY_SCHEMA_VERSION = 1
#: ``kind`` of a monitor log line.
MONITOR_KIND = "collapse-diag monitor"


def _fields(part: str, *names_and_meanings: tuple[str, str]) -> Keys:
    """The keys of ``part``; each meaning is written beside its name as documentation."""
    return Keys(part, (name for name, _ in names_and_meanings))


#: Keys of a trajectory row (docs/trajectory-schema.md, "rows[t]"); ``summary`` and
#: ``dimensions`` hold report keys (``SUMMARY_KEY``, ``DIMENSION_KEY``).
ROW_KEY = _fields(
    "trajectory row",
    ("step", "training step"), ("checkpoint", "{path, sha256} of the analysed file, or null"),
    ("summary", "the tracked summary figures"), ("dimensions", "the tracked per-dimension figures"),
    ("errors", "diagnostic -> message"),
    ("codebook_size", "K of discrete latents (the report's provenance), null for Gaussian"))
#: Keys of trajectory.json.
TRAJECTORY_KEY = _fields(
    "trajectory.json",
    ("schema_version", "TRAJECTORY_SCHEMA_VERSION"), ("collapse_diag_version", "writer"),
    ("source", "checkpoints or monitor"), ("preset", "cheap, full or null"),
    ("settings", "settings of the analyses"), ("data_sha256", "hash of the inputs"),
    ("latent_dim", "D"), ("rows", "one row per step"), ("events", "compute_events"),
    ("explanation", "sentences"), ("warnings", "trajectory invariants broken"))
R = ROW_KEY
#: The keys of a row, in the order it is written.
ROW_FIELDS = (R.step, R.checkpoint, R.summary, R.dimensions, R.errors, R.codebook_size)
#: Keys a monitor log line adds to its row.
MONITOR_KEY = _fields(
    "monitor line",
    ("kind", "MONITOR_KIND"), ("schema_version", "TRAJECTORY_SCHEMA_VERSION"),
    ("preset", "cheap or full"), ("settings", "settings of the analysis"),
    ("seconds", "time the measurement took"))


@dataclass(frozen=True)
class Tracked:
    """A summary figure a trajectory row keeps.

    Attributes:
        key: The summary key (``SUMMARY_KEY``).
        curve: Plotted against step (trajectory_plots.plot_curves) and shown in the steps table.
        scalar: Logged by the monitor as a scalar (a number, never a label or a dict).
    """

    key: str
    curve: bool = False
    scalar: bool = False


#: The one declaration of what a trajectory keeps of a report's summary, in row order (the
#: headline figures of collapse_diag/report/headlines.py first);
#: SUMMARY_FIELDS, SCALAR_FIELDS (monitor.scalars) and SERIES (the plots) derive from it.
#: ``neg_elbo`` is derived when the report has none, see :func:`row_from_report`.
TRACKED: tuple[Tracked, ...] = (
    *(Tracked(key, curve=True, scalar=True) for key in HEADLINE),
    Tracked(S.collapsed_units, scalar=True),
    Tracked(S.swap_p_value),
    Tracked(S.reconstruction),
    Tracked(S.neg_elbo, curve=True, scalar=True),
    Tracked(S.verdict),
    Tracked(S.status_counts),
    # Issue 21: the lagging phase of He et al. (2019), when the full preset runs the
    # refinement (the encoder's KL far below the decoder's posterior's, and the gap).
    Tracked(S.amortization_gap, scalar=True),
    Tracked(S.collapse_cause),
    # discrete latents (collapse_diag/diagnostics/discrete.py): codebook perplexity against K
    Tracked(S.codebook_perplexity, curve=True, scalar=True),
    Tracked(S.codebook_used, scalar=True),
    Tracked(S.discrete_mi, curve=True, scalar=True),
    # Issue 24: outputs become generic (the same decode whatever z) as the verdict turns.
    Tracked(S.output_diversity, curve=True, scalar=True),
    # sequential latents: which time windows the decoder reads, step by step
    Tracked(S.swap_delta_by_window),
    Tracked(S.output_diversity_by_window),
)
#: Summary figures kept in a row.
SUMMARY_FIELDS = tuple(t.key for t in TRACKED)
#: Summary figures the monitor logs as scalars.
SCALAR_FIELDS = tuple(t.key for t in TRACKED if t.scalar)
#: Summary curves: field -> axis label (name from collapse_diag/report/headlines.py, unit from the
#: schema).
SERIES = {t.key: axis_label(t.key) for t in TRACKED if t.curve}
#: Per-dimension figures kept in a row.
DIMENSION_FIELDS = (D.index, D.kl, D.mu_variance, D.mutual_information, D.swap_delta, D.status,
                    D.kl_refined, D.cause)
