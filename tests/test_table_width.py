"""The per-dimension figures fit a laptop's window: one table per group of columns.

The width bound is :func:`collapse_diag.render.html.min_width_px`: the narrowest a table can be
laid out (column titles wrap at their spaces, a sortable table's cells never wrap), at
``CHAR_PX`` = 8.2 px a character and ``COLUMN_PX`` = 21 px of padding and border a column.
Those two were measured in headless Chromium on the demo's per-dimension tables (8.17 px and
20.6 px by a least-squares fit of their drawn widths, scripts/screenshot_pages.py), with
DejaVu Sans, wider than most system fonts, so the estimate errs wide. A table whose
estimate is at most ``TEXT_WIDTH_PX`` = 1100 px (the body's text column, all of it on a
1280 px window) fits it without scrolling sideways. The old single table of the demo's
text_collapsed model (21 columns, 1630 px drawn) is far over that bound.
"""

from __future__ import annotations

from collections import Counter

import pytest
from discrete_models import ExactCategorical

import collapse_diag
from collapse_diag import Report
from collapse_diag.diagnostics.spec import COLUMN_GROUPS
from collapse_diag.examples import SHIPPED
from collapse_diag.render.document import build_document
from collapse_diag.render.html import CHAR_PX, COLUMN_PX, TEXT_WIDTH_PX, min_width_px, render_html
from collapse_diag.render.markdown import render_markdown
from collapse_diag.render.tables import (
    DIMENSION_GROUPS,
    Table,
    dimension_columns,
    dimension_table,
    dimension_tables,
)

REAL = ("healthy", "collapsed", "partial", "sequential", "failed", "kl_only", "lean",
        "saturated")
#: The dimension and the ``lead`` columns (the status) open every per-dimension table.
OPENING = ["dim", "status"]


@pytest.fixture(scope="module")
def every_kind(analysed, demo_dir):
    """The real reports, the demo's (the widest: text models with per-token swap deltas) and
    one of categorical latents (exact posteriors: analysed in about a second)."""
    out = {f"real {name}": analysed[name] for name in REAL}
    out |= {f"demo {name}": Report.from_json(demo_dir[0] / name / "report.json")
            for name in SHIPPED}
    model = ExactCategorical(ignored=(1,))
    out["categorical"] = collapse_diag.analyze(model, model.sample(200, seed=3), seed=0)
    return out


def test_every_group_has_a_table_and_every_column_a_group():
    assert set(DIMENSION_GROUPS) == set(COLUMN_GROUPS) - {"lead"}
    assert {c.group for c in dimension_columns()} == set(COLUMN_GROUPS)
    assert [c.key for c in dimension_columns() if c.group == "lead"] == ["status"]


def test_every_column_is_in_exactly_one_table(every_kind):
    """The split loses nothing and shows nothing twice; each table opens with the dimension
    and its status (where the verdict ran) and holds one group's columns."""
    titles = {title: group for group, (title, _) in DIMENSION_GROUPS.items()}
    groups = {c.header: c.group for c in dimension_columns()}  # "KL (nats)": two, one group
    for name, report in every_kind.items():
        whole = dimension_table(report).headers
        opening = [h for h in OPENING if h in whole]
        tables = dimension_tables(report)
        assert tables and all(t.headers[:len(opening)] == opening for t in tables), name
        shown = Counter(h for t in tables for h in t.headers[len(opening):])
        assert sorted(shown) == sorted(whole[len(opening):]), name
        assert set(shown.values()) == {1}, name
        for table in tables:
            assert table.sortable and table.caption, name
            assert {groups[h] for h in table.headers[len(opening):]} \
                == {titles[table.title]}, (name, table.title)
            assert [row[0] for row in table.rows] == [row[0] for row in tables[0].rows]


def test_every_table_of_every_report_fits_a_laptop_window(every_kind):
    """Every table of the document (not only the per-dimension ones), in HTML and Markdown."""
    for name, report in every_kind.items():
        document = build_document(report, drawn=())
        widths = {(s.anchor, t.title or t.headers[0]): min_width_px(t)
                  for s in document.sections for t in s.tables}
        assert max(widths.values()) <= TEXT_WIDTH_PX, (name, widths)
        html = render_html(document, {})
        assert '<div class="scroll wide">' not in html, name
        markdown = render_markdown(document, {})
        for table in dimension_tables(report):
            assert html.count(f"<h3>{table.title}</h3>") == 1, (name, table.title)
            assert markdown.count(f"### {table.title}\n") == 1, (name, table.title)


def test_the_old_single_table_did_not_fit(every_kind):
    """The bound tells the layouts apart: the 21 columns side by side are far over it."""
    report = every_kind["demo text_collapsed"]
    assert len(dimension_table(report).headers) == 21
    assert min_width_px(dimension_table(report)) > TEXT_WIDTH_PX


def test_min_width_counts_the_widest_piece_no_line_can_break():
    """Known answers: a title wraps at its spaces; a sortable table's cell is one piece, any
    other's wraps at its spaces too; a status cell has its dot (2 characters) in front."""
    table = Table(["a long title", "status"], [["12 to 345", "collapsed"]], [[None, None]])
    loose = (5 + 9 + 2) * CHAR_PX + 2 * COLUMN_PX  # "title", "collapsed" and its dot
    assert min_width_px(table) == pytest.approx(loose)
    tight = (9 + 9 + 2) * CHAR_PX + 2 * COLUMN_PX  # "12 to 345", "collapsed" and its dot
    assert min_width_px(table._replace(sortable=True)) == pytest.approx(tight)
    assert min_width_px(Table(["x"], [], [])) == pytest.approx(CHAR_PX + COLUMN_PX)
