"""The events of a trajectory, on hand-made KL series whose events are known by construction."""

import json

import numpy as np
import pytest

from collapse_diag.exceptions import DataError
from collapse_diag.runs.trajectory import (
    build_trajectory,
    compute_events,
    read_monitor_log,
    row_from_report,
)

EPS = 0.01


def test_events_by_construction():
    steps = [0, 100, 200, 300, 400]
    kl = np.array([
        # z0 healthy; z1 collapses between 100 and 200; z2 collapsed from the start,
        # revives at 300; z3 collapses at 100, revives at 200, collapses again at 400
        [1.0, 0.5, 0.001, 0.2],
        [1.0, 0.3, 0.001, 0.005],
        [1.0, 0.009, 0.002, 0.3],
        [1.0, 0.0, 0.5, 0.3],
        [1.0, 0.0, 0.6, 0.0],
    ])
    verdicts = ["healthy", "partial", "partial", "partial", "collapsed"]
    events = compute_events(steps, kl, verdicts, EPS)
    assert events["dimension_collapse_steps"] == [None, 200, None, 400]
    assert events["dimension_revival_steps"] == [[], [], [300], [200]]
    assert events["verdict_collapsed_step"] == 400
    assert events["verdict_changes"] == [{"step": 100, "from": "healthy", "to": "partial"},
                                         {"step": 400, "from": "partial", "to": "collapsed"}]
    assert [(e["dimension"], e["kind"], e["step"], e["previous_step"])
            for e in events["transitions"]] == [
        (2, "collapsed", 0, None), (3, "collapsed", 100, 0), (1, "collapsed", 200, 100),
        (3, "revived", 200, 100), (2, "revived", 300, 200), (3, "collapsed", 400, 300)]


def test_threshold_is_strict_and_nan_rows_are_skipped():
    steps = [0, 1, 2, 3]
    kl = np.array([[0.5], [EPS], [np.nan], [0.001]])  # KL == eps is not collapsed
    events = compute_events(steps, kl, [None] * 4, EPS)
    assert events["dimension_collapse_steps"] == [3]
    assert events["transitions"] == [{"dimension": 0, "kind": "collapsed", "step": 3,
                                      "previous_step": 1}]
    assert events["verdict_collapsed_step"] is None and events["verdict_changes"] == []


def _row(step, kls, verdict, status="active"):
    report = {"summary": {"kl": sum(kls), "reconstruction": -10.0, "verdict": verdict,
                          "status_counts": {status: len(kls)}},
              "dimensions": [{"index": d, "kl": k, "status": status, "fisher": 1.0}
                             for d, k in enumerate(kls)]}
    return row_from_report(report, step)


def test_row_maps_active_to_used_and_derives_neg_elbo():
    row = _row(5, [1.0, 2.0], "healthy")
    assert row["summary"]["neg_elbo"] == pytest.approx(3.0 + 10.0)
    assert row["summary"]["status_counts"] == {"used": 2}
    assert [d["status"] for d in row["dimensions"]] == ["used", "used"]
    assert "fisher" not in row["dimensions"][0]  # only the trajectory's columns
    assert _row(5, [1.0], "healthy", status="undetermined")["dimensions"][0]["status"] == \
        "undetermined"  # any other status is kept as it is


def test_build_orders_rows_explains_and_is_json():
    rows = [_row(200, [0.0, 0.5], "partial"), _row(0, [0.4, 0.5], "healthy"),
            _row(400, [0.0, 0.0], "collapsed"), _row(400, [0.0, 0.0], "collapsed")]
    traj = build_trajectory(rows, settings={"kl_eps": EPS}, source="checkpoints")
    assert [r["step"] for r in traj["rows"]] == [0, 200, 400]
    assert traj["events"]["dimension_collapse_steps"] == [200, 400]
    text = " ".join(traj["explanation"])
    assert "z0 collapsed between steps 0 and 200 and stayed collapsed." in text
    assert "The verdict first became collapsed at step 400 (it was partial at step 200)." in text
    assert "0 of 2 dimensions carry information" in text
    # the change to collapsed is said once ("first became"), the others after it with "also"
    assert "changed from partial to collapsed" not in text
    assert "The verdict also changed from healthy to partial at step 200." in text
    # a verdict never collapsed: its changes are told without "also"
    calm = build_trajectory([_row(0, [0.4], "healthy"), _row(10, [0.3], "undetermined")],
                            settings={"kl_eps": EPS}, source="checkpoints")
    assert "The verdict changed from healthy to undetermined at step 10." in calm["explanation"]
    json.dumps(traj, allow_nan=False)
    with pytest.raises(DataError, match="no steps"):
        build_trajectory([], settings={}, source="monitor")


def test_monitor_log_errors_and_truncated_last_line(tmp_path):
    good = {"kind": "collapse-diag monitor", "schema_version": 1, "settings": {"kl_eps": EPS},
            "preset": "cheap", **_row(0, [1.0], "healthy")}
    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps({**good, "step": 3})[:20])
    rows, settings, preset = read_monitor_log(path)
    assert [r["step"] for r in rows] == [0] and settings["kl_eps"] == EPS and preset == "cheap"
    path.write_text(json.dumps({**good, "schema_version": 99}) + "\n")
    with pytest.raises(DataError, match="schema_version"):
        read_monitor_log(path)
    path.write_text('{"a": 1}\n')
    with pytest.raises(DataError, match="not a collapse-diag monitor record"):
        read_monitor_log(path)
    with pytest.raises(DataError, match="missing.jsonl. does not exist"):
        read_monitor_log(tmp_path / "missing.jsonl")


def test_the_doc_lists_the_declared_row_keys_and_tracked_fields():
    """docs/trajectory-schema.md documents the keys of collapse_diag/runs/trajectory_fields.py."""
    import re
    from pathlib import Path

    from collapse_diag.runs.trajectory import DIMENSION_FIELDS, ROW_FIELDS, SUMMARY_FIELDS

    doc = (Path(__file__).resolve().parents[1] / "docs" / "trajectory-schema.md").read_text()
    section = doc.split("## rows[t]\n", 1)[1].split("\n## ", 1)[0]
    cells = {m.group(1): m.group(2) for m in re.finditer(r"^\| `([a-z_.\[\]]+)` \| (.*) \|$",
                                                         section, re.M)}
    assert [k.split("[")[0] for k in cells if "." not in k] == list(ROW_FIELDS)
    assert set(re.findall(r"`([a-z_]+)`", cells["summary"])) == set(SUMMARY_FIELDS)
    assert re.findall(r"`([a-z_]+)`", cells["dimensions[d]"]) == list(DIMENSION_FIELDS)
