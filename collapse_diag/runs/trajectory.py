"""A training run as a trajectory: one row of figures per step, and the events between them.

A *row* holds the figures of one analysis at one step (from a checkpoint's
report, or one line of a :class:`~collapse_diag.runs.monitor.CollapseMonitor` log)::

    {"step": int, "checkpoint": {"path", "sha256"} | null,
     "summary": {"kl", "mutual_information", "active_units", "swap_delta", "neg_elbo",
                 "verdict", "status_counts", ...},
     "dimensions": [{"index", "kl", "mu_variance", "mutual_information", "swap_delta",
                     "status"}, ...],
     "errors": {diagnostic: message}}

:func:`build_trajectory` orders the rows by step and derives the events (pure
functions of the rows, no model): a dimension is *collapsed* at a step when its
mean KL is below ``kl_eps``; its collapse step is the first step after which it
stays collapsed to the last row; a *revival* is a step at which a collapsed
dimension's KL is back at or above ``kl_eps``. Statuses are read as opaque
strings (``active`` is read as ``used``, its later name). The schema of
trajectory.json is documented in docs/trajectory-schema.md.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from collapse_diag._version import __version__
from collapse_diag.exceptions import DataError
from collapse_diag.io.files import MAX_LOG_BYTES, read_text_limited
from collapse_diag.report.invariants import check_trajectory
from collapse_diag.report.report import to_jsonable
from collapse_diag.report.schema import DIMENSION_KEY as D
from collapse_diag.report.schema import PROVENANCE_KEY as P
from collapse_diag.report.schema import RENAMED_STATUSES
from collapse_diag.report.schema import SUMMARY_KEY as S
from collapse_diag.report.schema import TOP_LEVEL_KEY as T
from collapse_diag.runs.trajectory_fields import (
    DIMENSION_FIELDS,
    MONITOR_KEY,
    MONITOR_KIND,
    ROW_FIELDS,
    ROW_KEY,
    SCALAR_FIELDS,
    SERIES,
    SUMMARY_FIELDS,
    TRACKED,
    TRAJECTORY_KEY,
    TRAJECTORY_SCHEMA_VERSION,
    Tracked,
)
from collapse_diag.runs.trajectory_fields import MONITOR_KEY as M
from collapse_diag.runs.trajectory_fields import ROW_KEY as R
from collapse_diag.runs.trajectory_fields import TRAJECTORY_KEY as J

__all__ = [
    "TRAJECTORY_SCHEMA_VERSION",
    "MONITOR_KIND",
    "ROW_KEY",
    "ROW_FIELDS",
    "TRAJECTORY_KEY",
    "MONITOR_KEY",
    "Tracked",
    "TRACKED",
    "SUMMARY_FIELDS",
    "SCALAR_FIELDS",
    "SERIES",
    "DIMENSION_FIELDS",
    "row_from_report",
    "compute_events",
    "explain_events",
    "build_trajectory",
    "verdict_collapsed_phrase",
    "read_monitor_log",
]

def _status(value: Any) -> Any:
    return RENAMED_STATUSES.get(value, value) if isinstance(value, str) else value


def row_from_report(report: Mapping[str, Any], step: int,
                    checkpoint: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The trajectory row of one report.

    ``neg_elbo`` is the report's own ``neg_elbo`` when it has one, else
    ``kl - reconstruction``: -ELBO = E_x[KL(q(z|x) || p(z)) - E_q log p(x|z)], the
    reconstruction term estimated with one posterior sample per input by the
    sensitivity diagnostic (null when either figure is missing).

    Args:
        report: A report in its dict form (``Report.to_dict()`` or a parsed report.json).
        step: Training step of the analysed model.
        checkpoint: ``{"path", "sha256"}`` of the analysed file, or ``None``.

    Returns:
        The row (plain JSON values).
    """
    summary = dict(report.get(T.summary) or {})
    if summary.get(S.neg_elbo) is None and summary.get(S.kl) is not None \
            and summary.get(S.reconstruction) is not None:
        summary[S.neg_elbo] = summary[S.kl] - summary[S.reconstruction]
    kept = {k: summary[k] for k in SUMMARY_FIELDS if k in summary}
    if isinstance(kept.get(S.status_counts), Mapping):
        kept[S.status_counts] = {_status(k): v for k, v in kept[S.status_counts].items()}
    dims = []
    for i, row in enumerate(report.get(T.dimensions) or []):
        entry = {k: row[k] for k in DIMENSION_FIELDS if k in row}
        entry.setdefault(D.index, i)
        if D.status in entry:
            entry[D.status] = _status(entry[D.status])
        dims.append(entry)
    return to_jsonable({R.step: int(step), R.checkpoint: dict(checkpoint) if checkpoint else None,
                        R.summary: kept, R.dimensions: dims,
                        R.errors: dict(report.get(T.errors) or {}),
                        R.codebook_size: (report.get(T.provenance) or {}).get(P.codebook_size)})


def _kl_matrix(rows: Sequence[Mapping[str, Any]], latent_dim: int) -> np.ndarray:
    """Per-dimension KL ``[n_rows, latent_dim]``; NaN where missing."""
    out = np.full((len(rows), latent_dim), np.nan)
    for t, row in enumerate(rows):
        for d, dim in enumerate((row.get(R.dimensions) or [])[:latent_dim]):
            value = dim.get(D.kl)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                out[t, d] = float(value)
    return out


def compute_events(steps: Sequence[int], kl: np.ndarray, verdicts: Sequence[Any],
                   kl_eps: float) -> dict[str, Any]:
    """Collapse, revival and verdict events of a trajectory.

    A dimension is collapsed at a row when its KL < ``kl_eps``; rows where its KL
    is missing (NaN) are skipped for that dimension.

    Args:
        steps: Increasing steps, one per row.
        kl: Per-dimension mean KL ``[n_rows, latent_dim]`` (nats).
        verdicts: Verdict per row (``None`` where missing).
        kl_eps: Collapse threshold (nats).

    Returns:
        ``verdict_collapsed_step`` (first step whose verdict is ``collapsed``, or
        ``None``), ``dimension_collapse_steps`` (per dimension: first step after which
        it stays collapsed to the last row, ``None`` if it is not collapsed at the
        end), ``dimension_revival_steps`` (per dimension: steps at which it revived),
        ``transitions`` (every change, in step order: ``{"dimension", "kind"
        ("collapsed" | "revived"), "step", "previous_step"}``, ``previous_step``
        being the last row before it where the dimension was in the other state,
        ``None`` for a dimension collapsed from the first row), and
        ``verdict_changes`` (``{"step", "from", "to"}``).
    """
    steps = [int(s) for s in steps]
    collapse_steps: list[int | None] = []
    revivals: list[list[int]] = []
    transitions: list[dict[str, Any]] = []
    for d in range(kl.shape[1]):
        valid = [t for t in range(len(steps)) if np.isfinite(kl[t, d])]
        below = [bool(kl[t, d] < kl_eps) for t in valid]
        revived: list[int] = []
        if valid and below[0]:
            transitions.append({"dimension": d, "kind": "collapsed", "step": steps[valid[0]],
                                "previous_step": None})
        for k in range(1, len(valid)):
            if below[k] != below[k - 1]:
                kind = "collapsed" if below[k] else "revived"
                transitions.append({"dimension": d, "kind": kind, "step": steps[valid[k]],
                                    "previous_step": steps[valid[k - 1]]})
                if kind == "revived":
                    revived.append(steps[valid[k]])
        collapse: int | None = None
        if valid and below[-1]:
            k = len(below) - 1
            while k > 0 and below[k - 1]:
                k -= 1
            collapse = steps[valid[k]]
        collapse_steps.append(collapse)
        revivals.append(revived)
    transitions.sort(key=lambda e: (e["step"], e["dimension"]))
    verdict_step = next((s for s, v in zip(steps, verdicts) if v == "collapsed"), None)
    changes = [{"step": steps[t], "from": verdicts[t - 1], "to": verdicts[t]}
               for t in range(1, len(steps)) if verdicts[t] != verdicts[t - 1]]
    return {"verdict_collapsed_step": verdict_step,
            "dimension_collapse_steps": collapse_steps,
            "dimension_revival_steps": revivals,
            "transitions": transitions,
            "verdict_changes": changes}


def _n(step: int) -> str:
    return f"{step:,}"


def _at(step: int) -> str:
    """``"at initialisation (step 0)"`` for a fresh model, else ``"at step S"``."""
    return "at initialisation (step 0)" if step == 0 else f"at step {_n(step)}"


def verdict_collapsed_phrase(trajectory: Mapping[str, Any]) -> str:
    """When the verdict was collapsed, in words that hold at every analysed step they cover.

    "verdict collapsed from step S" only when every row from S on says ``collapsed``;
    otherwise "verdict first collapsed at step S" (step 0: "at initialisation").
    """
    events = trajectory.get(J.events) or {}
    step = events.get("verdict_collapsed_step")
    if step is None:
        return "verdict never collapsed"
    verdicts = [(int(r[R.step]), (r.get(R.summary) or {}).get(S.verdict))
                for r in trajectory.get(J.rows) or []]
    if all(v == "collapsed" for s, v in verdicts if s >= int(step)):
        return ("verdict collapsed from initialisation (step 0) on" if step == 0
                else f"verdict collapsed from step {_n(int(step))} on")
    return f"verdict first collapsed {_at(int(step))}, not at every later step"


def _names(dims: Iterable[int]) -> str:
    names = [f"z{d}" for d in dims]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def explain_events(events: Mapping[str, Any], steps: Sequence[int], final_kl: np.ndarray,
                   final_verdict: Any, kl_eps: float) -> list[str]:
    """Plain-language sentences describing the trajectory, in step order.

    Args:
        events: The output of :func:`compute_events`.
        steps: The steps of the rows.
        final_kl: Per-dimension KL at the last row ``[latent_dim]``.
        final_verdict: Verdict at the last row.
        kl_eps: Collapse threshold (nats).
    """
    if not steps:
        return ["No steps were analysed."]
    sentences = [f"{len(steps)} step(s) analysed, from step {_n(steps[0])} to "
                 f"{_n(steps[-1])}; a dimension counts as collapsed while its KL is below "
                 f"{kl_eps:g} nats."]
    final = events["dimension_collapse_steps"]
    groups: dict[tuple[str, int, int | None], list[int]] = {}
    for event in events["transitions"]:
        key = (event["kind"], event["step"], event["previous_step"])
        groups.setdefault(key, []).append(event["dimension"])
    for (kind, step, previous), dims in sorted(groups.items(), key=lambda kv: kv[0][1]):
        names, plural = _names(dims), len(dims) > 1
        if kind == "revived":
            sentences.append(f"{names} revived between steps {_n(previous)} and {_n(step)}: "
                             f"{'their' if plural else 'its'} KL rose back above {kl_eps:g} "
                             "nats.")
            continue
        stays = all(final[d] == step for d in dims)
        tail = " and stayed collapsed" if stays else ""
        if previous is None:
            first = "initialisation (step 0)" if step == 0 else f"the first step ({_n(step)})"
            sentences.append(f"{names} {'were' if plural else 'was'} already collapsed at "
                             f"{first}{tail}.")
        else:
            sentences.append(f"{names} collapsed between steps {_n(previous)} and {_n(step)}"
                             f"{tail}.")
    if not events["transitions"]:
        sentences.append("No dimension collapsed at any analysed step.")
    verdict_step = events["verdict_collapsed_step"]
    if verdict_step is None:
        sentences.append("The verdict never became collapsed.")
    elif verdict_step == steps[0]:
        held = not any(c["step"] > verdict_step for c in events["verdict_changes"])
        sentences.append(f"The verdict was collapsed {_at(verdict_step)}"
                         + (" and at every analysed step after it." if held else
                            "; it changed later (below)."))
    else:
        index = list(steps).index(verdict_step)
        sentences.append(f"The verdict first became collapsed at step {_n(verdict_step)} (it "
                         f"was {_verdict_before(events, verdict_step)} at step "
                         f"{_n(steps[index - 1])}).")
    if verdict_step is not None and not events["transitions"]:
        sentences.append("No dimension's KL fell below the threshold, so the collapsed verdict "
                         "comes from the other evidence: dimensions whose KL buys no "
                         "information about x (uninformative) or that the decoder does not "
                         "read (docs/statuses.md).")
    said = [c for c in events["verdict_changes"]  # "first became collapsed", said above
            if c["step"] == verdict_step and c["to"] == "collapsed"]
    changes = [f"{c['from'] or 'not computed'} to {c['to'] or 'not computed'} at step "
               f"{_n(c['step'])}" for c in events["verdict_changes"] if c not in said]
    if changes:
        sentences.append("The verdict " + ("also " if said else "") + "changed from "
                         + "; from ".join(changes) + ".")
    informative = int(np.sum(np.isfinite(final_kl) & (final_kl >= kl_eps)))
    sentences.append(f"At the last step ({_n(steps[-1])}), {informative} of {len(final_kl)} "
                     f"dimensions carry information (KL at least {kl_eps:g} nats); verdict: "
                     f"{final_verdict or 'not computed'}.")
    return sentences


def _verdict_before(events: Mapping[str, Any], step: int) -> str:
    """The verdict just before the change to ``collapsed`` at ``step`` (``"n/a"`` if unknown)."""
    for change in events["verdict_changes"]:
        if change["step"] == step:
            return str(change["from"] or "not computed")
    return "n/a"


def build_trajectory(rows: Iterable[Mapping[str, Any]], *, settings: Mapping[str, Any],
                     source: str, preset: str | None = None,
                     data_sha256: str | None = None) -> dict[str, Any]:
    """trajectory.json's content: rows ordered by step, events and their explanation.

    Args:
        rows: Rows (see :func:`row_from_report`); a repeated step keeps its last row.
        settings: Settings of the analyses (``kl_eps`` is read from them).
        source: ``"checkpoints"`` or ``"monitor"``.
        preset: ``"cheap"``, ``"full"`` or ``None`` (custom).
        data_sha256: Hash of the analysed inputs.

    Raises:
        DataError: no rows.
    """
    by_step = {int(r[R.step]): dict(r) for r in rows}
    if not by_step:
        raise DataError("no steps to track: the checkpoints or the monitor log are empty.")
    ordered = [by_step[s] for s in sorted(by_step)]
    steps = [r[R.step] for r in ordered]
    latent_dim = max(len(r.get(R.dimensions) or []) for r in ordered)
    kl_eps = float(settings.get("kl_eps", 0.01))
    kl = _kl_matrix(ordered, latent_dim)
    verdicts = [(r.get(R.summary) or {}).get(S.verdict) for r in ordered]
    events = compute_events(steps, kl, verdicts, kl_eps)
    explanation = explain_events(events, steps, kl[-1], verdicts[-1], kl_eps)
    trajectory = to_jsonable({
        J.schema_version: TRAJECTORY_SCHEMA_VERSION,
        J.collapse_diag_version: __version__,
        J.source: source,
        J.preset: preset,
        J.settings: dict(settings),
        J.data_sha256: data_sha256,
        J.latent_dim: latent_dim,
        J.rows: ordered,
        J.events: events,
        J.explanation: explanation,
    })
    trajectory[J.warnings] = [str(v) for v in check_trajectory(trajectory)]
    return trajectory


def read_monitor_log(path: str | Path) -> tuple[list[dict[str, Any]], dict[str, Any], str | None]:
    """Read the JSONL written by :class:`~collapse_diag.runs.monitor.CollapseMonitor`.

    Returns:
        ``(rows, settings, preset)``: one row per line (a later line for the same
        step wins), and the settings and preset of the last line.

    Raises:
        DataError: missing or unreadable file, a line that is not a monitor record,
            or one of an unknown schema version.
    """
    path = Path(path)
    try:  # a regular file only (a FIFO would block the read forever), of a bounded size
        lines = read_text_limited(path, "monitor log", MAX_LOG_BYTES, DataError).splitlines()
    except OSError as err:
        raise DataError(f"cannot read monitor log {str(path)!r}: {err}") from err
    rows: list[dict[str, Any]] = []
    settings: dict[str, Any] = {}
    preset = None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as err:
            if number == len(lines):  # a line cut short by an interrupted run
                break
            raise DataError(f"{str(path)!r} line {number} is not JSON ({err}).") from err
        if not isinstance(record, dict) or record.get(M.kind) != MONITOR_KIND:
            raise DataError(f"{str(path)!r} line {number} is not a collapse-diag monitor record.")
        version = record.get(M.schema_version)
        if version != TRAJECTORY_SCHEMA_VERSION:
            raise DataError(f"{str(path)!r} line {number} has schema_version {version!r}; this "
                            f"collapse-diag reads {TRAJECTORY_SCHEMA_VERSION}.")
        rows.append({k: record.get(k) for k in ROW_FIELDS})
        settings = record.get(M.settings) or settings
        preset = record.get(M.preset, preset)
    return rows, settings, preset
