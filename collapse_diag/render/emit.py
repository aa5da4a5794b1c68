"""The figures and the Markdown / HTML text of a :class:`~collapse_diag.render.document.Document`.

One routine each for every writer (report, comparison, trajectory):
:func:`draw_pngs` draws the figures one at a time, :func:`render_documents`
renders the text. :func:`draw_pngs` can isolate failing figures
(:mod:`~collapse_diag.render.failures`). Markdown links each image as a PNG file beside it, HTML
embeds it as a ``data:`` URI so that the page is self-contained (no external URL).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from collapse_diag.render.document import Document
from collapse_diag.render.failures import error_message
from collapse_diag.render.html import render_html
from collapse_diag.render.markdown import render_markdown
from collapse_diag.render.plots import figure_png

__all__ = ["draw_pngs", "render_documents"]


def draw_pngs(plots: Mapping[str, Callable[[Any], Any]], subject: Any, dpi: int,
              failures: dict[str, str] | None = None,
              inspect: Callable[[str, Any], None] | None = None) -> dict[str, bytes]:
    """Each plot of ``subject`` as PNG bytes, one figure alive at a time (cleared once saved).

    Args:
        plots: Figure name -> function drawing a matplotlib Figure of ``subject``, or ``None``
            when the figure does not apply.
        subject: What the plots draw (a report, a comparison, a trajectory).
        dpi: Resolution of the PNGs.
        failures: When given, a plot that raises is left out and its error recorded here
            (figure name -> one-line message); when ``None`` the error propagates.
        inspect: Called with each figure's name and Figure before it is cleared (the
            writers check its captions' marks, collapse_diag/report/invariants.py).

    Returns:
        Figure name -> PNG bytes, for the figures drawn.
    """
    pngs: dict[str, bytes] = {}
    for name, draw in plots.items():
        try:
            fig = draw(subject)
            png = None if fig is None else figure_png(fig, dpi)
        except Exception as err:  # noqa: BLE001 - isolate a failing figure, record it
            if failures is None:
                raise
            failures[name] = error_message(err)
            continue
        if fig is not None:
            pngs[name] = png
            if inspect is not None:
                inspect(name, fig)
            fig.clear()  # free its artists now, not when the last figure is drawn
            del fig
    return pngs


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
