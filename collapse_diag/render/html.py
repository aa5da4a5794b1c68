"""The HTML writer: prints a :class:`~collapse_diag.render.document.Document` as report.html.

The file is self-contained: inline CSS (with print rules), one small inline
script that sorts the per-dimension tables, images as ``data:image/png;base64``
URIs; no external script, font, stylesheet or image, so it reads offline and
prints. Every piece of report text is HTML-escaped.
"""

from __future__ import annotations

from collections.abc import Mapping
from html import escape

from collapse_diag.render.colors import STATUS_COLORS
from collapse_diag.render.document import Document
from collapse_diag.render.tables import Table

__all__ = ["render_html"]

_VERDICT_COLORS = {"healthy": STATUS_COLORS["used"], "partial": STATUS_COLORS["uninformative"],
                   "undetermined": STATUS_COLORS["undetermined"],
                   "collapsed": STATUS_COLORS["collapsed"]}

#: A cell reading a status or a verdict starts with its colour (a verdict "collapsed" or
#: "undetermined" has its status's colour).
_DOT_COLORS = {**_VERDICT_COLORS, **STATUS_COLORS}

#: Width of the body's text column (its ``max-width``), in CSS px: a table narrower than this,
#: by :func:`min_width_px`, fits it on a 1280 px window (a laptop's); a wider one spans the
#: window's width (up to 1800 px) in a smaller font, and wider still it scrolls sideways in
#: its box, its first column kept in view.
TEXT_WIDTH_PX = 1100
#: Per character and per column (2 x 0.6 rem padding and a 1 px border) of a table in its
#: 0.88 rem font, in CSS px. Measured in headless Chromium with its default sans-serif
#: (DejaVu Sans, wider than most system-ui fonts): 8.17 px a character and 20.6 px a column
#: over the per-dimension tables of the demo (scripts/screenshot_pages.py), rounded up.
CHAR_PX, COLUMN_PX = 8.2, 21.0
#: A status's coloured dot and its margin, in characters of the table's font.
DOT_CHARS = 2

_CSS = """
:root { color-scheme: light; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
  color: #1f2328; line-height: 1.5; max-width: TEXT_WIDTH_PXpx; margin: 2rem auto;
  padding: 0 1.25rem; }
h1 { font-size: 1.7rem; margin-bottom: 0.5rem; }
h2 { font-size: 1.3rem; border-bottom: 1px solid #d0d7de; padding-bottom: 0.2rem;
  margin-top: 2rem; }
h3 { font-size: 1.05rem; margin-bottom: 0.3rem; }
nav { font-size: 0.9rem; margin-bottom: 1rem; }
nav a { margin-right: 0.9rem; color: #0969da; text-decoration: none; }
.verdict { border-left: 6px solid var(--verdict); background: #f6f8fa; padding: 0.7rem 1rem;
  font-size: 1.05rem; }
figure { margin: 0.5rem 0 1.5rem; overflow-x: auto; }
figure img { max-width: max(100%, 720px); height: auto; border: 1px solid #eaeef2;
  box-sizing: border-box; }
figcaption { font-size: 0.9rem; color: #57606a; font-style: italic; }
.note { color: #57606a; background: #fff8e5; border-left: 4px solid #d4a72c;
  padding: 0.4rem 0.8rem; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; font-size: 0.88rem; }
th, td { border: 1px solid #d0d7de; padding: 0.25rem 0.6rem; text-align: left; }
th { background: #f6f8fa; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th[data-order="asc"]::after { content: " \\25B2"; }
table.sortable th[data-order="desc"]::after { content: " \\25BC"; }
.dot { display: inline-block; width: 0.75em; height: 0.75em; border-radius: 50%;
  margin-right: 0.35em; vertical-align: baseline; }
.scroll { overflow-x: auto; }
.legend { font-size: 0.85rem; color: #57606a; margin: -0.5rem 0 1.2rem; max-width: 80ch; }
table.sortable th:first-child, table.sortable td:first-child { position: sticky; left: 0;
  background: #fff; }
table.sortable th:first-child { background: #f6f8fa; }
table.sortable td { white-space: nowrap; }
.scroll.wide { width: calc(100vw - 2.5rem); max-width: 1800px; position: relative;
  left: 50%; transform: translateX(-50%); }
.wide table { font-size: 0.76rem; margin-left: auto; margin-right: auto; }
.wide th, .wide td { padding: 0.15rem 0.35rem; }
.wide th { white-space: normal; vertical-align: bottom; }
.wide td { white-space: nowrap; }
.wide th:first-child, .wide td:first-child { position: sticky; left: 0; background: #fff; }
.wide th:first-child { background: #f6f8fa; }
@media (max-width: 600px) {
  body { padding: 0 0.75rem; }
  table { font-size: 0.8rem; }
  th, td { padding: 0.2rem 0.4rem; }
}
@media print {
  body { max-width: none; margin: 0; font-size: 10pt; }
  nav, .hint { display: none; }
  h2 { break-after: avoid; }
  figure, table, .verdict { break-inside: avoid; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
""".replace("TEXT_WIDTH_PX", str(TEXT_WIDTH_PX))

_SCRIPT = """
document.querySelectorAll("table.sortable th").forEach(function (th) {
  th.addEventListener("click", function () {
    var body = th.closest("table").tBodies[0];
    var col = Array.prototype.indexOf.call(th.parentNode.children, th);
    var asc = th.getAttribute("data-order") !== "asc";
    th.parentNode.querySelectorAll("th").forEach(function (h) { h.removeAttribute("data-order"); });
    th.setAttribute("data-order", asc ? "asc" : "desc");
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = a.cells[col].getAttribute("data-sort"), y = b.cells[col].getAttribute("data-sort");
      if (x === "" || y === "") { return (x === "") - (y === ""); }
      var nx = parseFloat(x), ny = parseFloat(y);
      var c = (isNaN(nx) || isNaN(ny)) ? x.localeCompare(y) : nx - ny;
      return asc ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});
"""


def _cell(text: str, key: float | str | None, sortable: bool) -> str:
    """A table cell; in a sortable table numbers align right and carry their raw value."""
    inner = escape(text)
    if text in _DOT_COLORS:
        inner = f'<span class="dot" style="background:{_DOT_COLORS[text]}"></span>{inner}'
    if not sortable:
        return f"<td>{inner}</td>"
    sort = "" if key is None else repr(key) if isinstance(key, float) else str(key)
    numeric = ' class="num"' if isinstance(key, float) else ""
    return f'<td{numeric} data-sort="{escape(sort)}">{inner}</td>'


def _unbreakable(text: str, whole: bool) -> int:
    """Characters of the widest piece of ``text`` a line cannot break (all of it if ``whole``)."""
    width = len(text) if whole else max((len(word) for word in text.split()), default=0)
    return width + (DOT_CHARS if text in _DOT_COLORS else 0)


def min_width_px(table: Table) -> float:
    """Estimated narrowest width of ``table`` in the HTML page, in CSS px.

    The width of a table whose column titles wrap at their spaces but whose cells do not
    (a sortable table's cells: ``white-space: nowrap``; any other's wrap too):
    ``sum over columns of (CHAR_PX * widest unbreakable piece + COLUMN_PX)``, the browser's
    min-content width with :data:`CHAR_PX` a character. A table of at most
    :data:`TEXT_WIDTH_PX` by this estimate fits the text column without scrolling sideways.
    """
    return sum(CHAR_PX * max([_unbreakable(title, False),
                              *(_unbreakable(cell, table.sortable) for cell in cells)])
               + COLUMN_PX for title, *cells in zip(table.headers, *table.rows, strict=True))


def _table(table: Table) -> str:
    """The table in its scroll box, its title (``h3``) above and its caption below."""
    attrs = ' class="sortable"' if table.sortable else ""
    head = "".join(f"<th>{escape(h)}</th>" for h in table.headers)
    body = "\n".join(
        "<tr>" + "".join(_cell(t, k, table.sortable) for t, k in zip(row, keys, strict=True))
        + "</tr>" for row, keys in zip(table.rows, table.keys, strict=True))
    title = f"<h3>{escape(table.title)}</h3>\n" if table.title else ""
    caption = f'\n<p class="legend">{escape(table.caption)}</p>' if table.caption else ""
    wide = " wide" if min_width_px(table) > TEXT_WIDTH_PX else ""
    return (f'{title}<div class="scroll{wide}"><table{attrs}>\n<thead><tr>{head}</tr></thead>\n'
            f"<tbody>\n{body}\n</tbody>\n</table></div>{caption}")


def render_html(document: Document, images: Mapping[str, str]) -> str:
    """The text of report.html, one self-contained file.

    Args:
        document: What to print (see :func:`~collapse_diag.render.document.build_document`).
        images: Plot name -> ``data:image/png;base64,...`` URI of its PNG.

    Returns:
        HTML text ending in a newline.
    """
    colour = _VERDICT_COLORS.get(document.verdict or "", STATUS_COLORS["unknown"])
    nav = " ".join(f'<a href="#{s.anchor}">{escape(s.title)}</a>' for s in document.sections)
    parts = [
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(document.title)}</title>", f"<style>{_CSS}</style>", "</head>", "<body>",
        f"<h1>{escape(document.title)}</h1>",
        f'<p class="verdict" style="--verdict:{colour}"><strong>'
        f"{escape(document.verdict_label)}</strong> {escape(document.verdict_reason)}</p>",
        f"<nav>{nav}</nav>",
    ]
    for section in document.sections:
        parts.append(f'<section id="{section.anchor}">')
        parts.append(f"<h2>{escape(section.title)}</h2>")
        parts += [f"<p>{escape(p)}</p>" for p in section.paragraphs]
        for figure in section.figures:
            parts.append(f'<h3 id="plot-{figure.name}">{escape(figure.title)}</h3>')
            if figure.note is not None or figure.name not in images:
                parts.append(f'<p class="note">{escape(figure.note or "Not drawn.")}</p>')
            else:
                parts.append(f'<figure><img src="{images[figure.name]}" '
                             f'alt="{escape(figure.title)}"><figcaption>'
                             f"{escape(figure.caption)}</figcaption></figure>")
        if any(table.sortable for table in section.tables):
            parts.append('<p class="hint">Click a column title to sort.</p>')
        parts += [_table(table) for table in section.tables]
        parts.append("</section>")
    parts += [f"<script>{_SCRIPT}</script>", "</body>", "</html>"]
    return "\n".join(parts) + "\n"
