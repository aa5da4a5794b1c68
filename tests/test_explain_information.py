"""The information sentence of the explanation reads the intervals and their flags.

On real ``analyze`` runs (tests/real_reports.py) whose MI is known by construction:
collapsed (MI = 0: the interval reaches 0), saturated (MI ~ 14 nats on 40 inputs, above
the ceiling log 40), healthy (MI well inside (0, log N)) and lean (``mi_bootstrap=0``: no
intervals)."""

from collapse_diag.render import explain
from collapse_diag.render.tables import fmt_num


def _paragraph(report):
    return next(p for p in explain(report) if "mutual information" in p)


def test_interval_is_printed_next_to_the_estimate(analysed):
    report = analysed["healthy"]
    s = report.summary
    assert not s["mi_indistinguishable_from_zero"] and not s["mi_indistinguishable_from_ceiling"]
    low, high = s["mutual_information_ci"]
    assert low <= s["mutual_information"] <= high
    text = _paragraph(report)
    assert (f"{fmt_num(s['mutual_information'])} nats (95% interval {fmt_num(low)} to "
            f"{fmt_num(high)})") in text
    assert "reaches 0" not in text and "ceiling" not in text


def test_zero_and_ceiling_flags_are_said(analysed):
    collapsed = analysed["collapsed"]
    assert collapsed.summary["mi_indistinguishable_from_zero"]
    text = _paragraph(collapsed)
    assert "interval reaches 0" in text and "below zero" not in text  # zero is said once
    saturated = analysed["saturated"]
    s = saturated.summary
    assert s["mi_indistinguishable_from_ceiling"] and s["mi_saturated"]
    assert s["mutual_information"] <= s["mi_ceiling"] + 1e-9  # an estimate can never pass it
    assert "The interval reaches within" in _paragraph(saturated)


def test_per_dimension_interval_at_zero_is_named(analysed):
    """partial: z4 is uninformative (mu constant: MI 0), z3 collapsed (said elsewhere)."""
    report = analysed["partial"]
    zero = [row["index"] for row in report.dimensions if row["mi_indistinguishable_from_zero"]]
    assert zero == [3, 4]
    per_dimension = _paragraph(report).split("Per dimension")[1]
    assert "z4" in per_dimension and "z3" not in per_dimension


def test_reports_without_intervals_still_read(analysed):
    report = analysed["lean"]  # mi_bootstrap = 0
    assert report.summary["mutual_information_ci"] is None
    text = _paragraph(report)
    assert "interval" not in text and f"{fmt_num(report.summary['mutual_information'])} nats" \
        in text
