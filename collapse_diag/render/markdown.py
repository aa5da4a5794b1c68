"""The Markdown writer: prints a :class:`~collapse_diag.render.document.Document` as report.md."""

from __future__ import annotations

import re
from collections.abc import Mapping

from collapse_diag.render.document import Document
from collapse_diag.render.tables import Table

__all__ = ["escape_markdown", "render_markdown"]

_SPECIAL = re.compile(r"([\\`*_\[\]<>|#])")


def escape_markdown(text: str) -> str:
    """Backslash-escape the characters Markdown would read as markup; newlines become spaces."""
    return _SPECIAL.sub(r"\\\1", " ".join(str(text).split()))


def _table(table: Table) -> list[str]:
    """The table, its title (``###``) above and its caption (a paragraph) below."""
    lines = [f"### {escape_markdown(table.title)}", ""] if table.title else []
    lines += ["| " + " | ".join(escape_markdown(h) for h in table.headers) + " |",
              "|" + "|".join("---" for _ in table.headers) + "|"]
    lines += ["| " + " | ".join(escape_markdown(c) for c in row) + " |" for row in table.rows]
    return lines + (["", escape_markdown(table.caption)] if table.caption else [])


def render_markdown(document: Document, images: Mapping[str, str]) -> str:
    """The text of report.md.

    Args:
        document: What to print (see :func:`~collapse_diag.render.document.build_document`).
        images: Plot name -> link to its PNG, relative to report.md (e.g. ``plots/kl.png``).

    Returns:
        Markdown text ending in a newline.
    """
    lines = [f"# {escape_markdown(document.title)}", "",
             f"**{escape_markdown(document.verdict_label)}** "
             f"{escape_markdown(document.verdict_reason)}", ""]
    for section in document.sections:
        lines += [f"## {escape_markdown(section.title)}", ""]
        for paragraph in section.paragraphs:
            lines += [escape_markdown(paragraph), ""]
        for figure in section.figures:
            lines += [f"### {escape_markdown(figure.title)}", ""]
            if figure.note is not None or figure.name not in images:
                lines += [f"> {escape_markdown(figure.note or 'Not drawn.')}", ""]
            else:
                lines += [f"![{escape_markdown(figure.title)}]({images[figure.name]})", "",
                          f"*{escape_markdown(figure.caption)}*", ""]
        for table in section.tables:
            lines += [*_table(table), ""]
    return "\n".join(lines).rstrip("\n") + "\n"
