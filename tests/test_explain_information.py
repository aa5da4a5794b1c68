"""The information sentence of the explanation reads the intervals and their flags."""

from report_fixtures import collapsed_report, healthy_report

from collapse_diag.render import explain


def _paragraph(report):
    return next(p for p in explain(report) if "mutual information" in p)


def test_interval_is_printed_next_to_the_estimate():
    report = healthy_report()
    mi = report.summary["mutual_information"]
    report.summary.update({"mutual_information_ci": [mi - 0.1, mi + 0.1],
                           "marginal_kl_ci": [0.2, 0.4],
                           "mi_indistinguishable_from_zero": False,
                           "mi_indistinguishable_from_ceiling": False})
    text = _paragraph(report)
    assert "95% interval" in text and "reaches 0" not in text and "ceiling" not in text


def test_zero_and_ceiling_flags_are_said():
    report = collapsed_report()
    report.summary.update({"mutual_information_ci": [-0.004, 0.001],
                           "mi_indistinguishable_from_zero": True,
                           "mi_indistinguishable_from_ceiling": False})
    text = _paragraph(report)
    assert "interval reaches 0" in text and "below zero" not in text
    report = healthy_report()
    c = report.summary["mi_ceiling"]
    report.summary.update({"mutual_information": c - 0.6,
                           "mutual_information_ci": [c - 0.7, c - 0.4],
                           "mi_saturated": False, "mi_indistinguishable_from_zero": False,
                           "mi_indistinguishable_from_ceiling": True})
    assert "interval reaches within" in _paragraph(report)


def test_per_dimension_interval_at_zero_is_named():
    report = healthy_report()
    report.summary.update({"mutual_information_ci": [1.0, 2.0],
                           "mi_indistinguishable_from_zero": False})
    target = next(i for i, row in enumerate(report.dimensions) if row.get("status") != "collapsed")
    report.dimensions[target]["mi_indistinguishable_from_zero"] = True
    assert f"z{report.dimensions[target]['index']}" in _paragraph(report).split("Per dimension")[1]


def test_reports_without_intervals_still_read():
    report = healthy_report()  # a v1 report: no interval fields
    assert "interval" not in _paragraph(report)
