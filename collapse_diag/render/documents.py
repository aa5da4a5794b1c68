"""The Markdown and HTML text of a :class:`~collapse_diag.render.document.Document`.

One routine for every writer (report, comparison, trajectory): Markdown links
each image as a PNG file beside it, HTML embeds it as a ``data:`` URI so that
the page is self-contained (no external URL).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable, Mapping

from collapse_diag.render.document import Document
from collapse_diag.render.html import render_html
from collapse_diag.render.markdown import render_markdown

__all__ = ["render_documents"]


def render_documents(document: Document, pngs: Mapping[str, bytes], formats: Iterable[str],
                     md_image_path: Callable[[str], str]) -> dict[str, str]:
    """Render ``document`` in each of ``formats`` that is ``md`` or ``html``.

    Args:
        document: The document to render.
        pngs: Figure name -> PNG bytes of the figures drawn.
        formats: The chosen formats; those other than ``md`` and ``html`` are ignored.
        md_image_path: Figure name -> the path the Markdown links (relative to the file).

    Returns:
        ``{"md": text, "html": text}`` for the formats chosen.
    """
    chosen = set(formats)
    texts: dict[str, str] = {}
    if "md" in chosen:
        texts["md"] = render_markdown(document, {name: md_image_path(name) for name in pngs})
    if "html" in chosen:
        texts["html"] = render_html(document, {
            name: "data:image/png;base64," + base64.b64encode(data).decode("ascii")
            for name, data in pngs.items()})
    return texts
