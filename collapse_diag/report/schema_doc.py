"""docs/report-schema.md's field tables, generated from :mod:`collapse_diag.report.schema`.

A field's description is typed once, in schema.py; the page's tables are
written from it. The page keeps its prose by hand; each table sits between two
markers naming the part it shows::

    <!-- fields: SUMMARY -->
    | field | meaning | from |
    ...
    <!-- /fields -->

Regenerate after changing schema.py (tests/test_schema.py fails while the page
is stale)::

    python -m collapse_diag.report.schema_doc docs/report-schema.md
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from collapse_diag.report import schema
from collapse_diag.report.schema import Field

__all__ = ["PARTS", "field_table", "regenerate"]

#: Marker name -> the declared fields the table shows.
PARTS: dict[str, dict[str, Field]] = {
    "TOP_LEVEL": schema.TOP_LEVEL,
    "SUMMARY": schema.SUMMARY,
    "PROBE": schema.PROBE,
    "NLL_CONVERGENCE": schema.NLL_CONVERGENCE,
    "SWAP_WINDOW": schema.SWAP_WINDOW,
    "DIVERSITY_WINDOW": schema.DIVERSITY_WINDOW,
    "DIMENSION": schema.DIMENSION,
    "DISTRIBUTIONS": schema.DISTRIBUTIONS,
    "PROVENANCE": schema.PROVENANCE,
}
_BLOCK = re.compile(r"(<!-- fields: (\w+) -->\n)(.*?)(<!-- /fields -->)", re.S)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def field_table(fields: dict[str, Field]) -> str:
    """A Markdown table of ``fields``: name, meaning, unit, and the diagnostic that writes it."""
    lines = ["| field | meaning | unit | from |", "|---|---|---|---|"]
    lines += [f"| `{f.name}` | {_cell(f.description)} | {_cell(f.unit)} | {f.writer or ''} |"
              for f in fields.values()]
    return "\n".join(lines) + "\n"


def regenerate(text: str) -> str:
    """``text`` with every marked table rewritten from schema.py.

    Raises:
        KeyError: a marker names a part not in :data:`PARTS`.
    """
    return _BLOCK.sub(lambda m: m.group(1) + field_table(PARTS[m.group(2)]) + m.group(4), text)


def main(argv: list[str] | None = None) -> int:
    """Rewrite the page in place (``--check``: exit 1 when it is stale, write nothing)."""
    args = sys.argv[1:] if argv is None else argv
    check = "--check" in args
    paths = [Path(a) for a in args if a != "--check"] or [Path("docs/report-schema.md")]
    stale = []
    for path in paths:
        text = path.read_text()
        new = regenerate(text)
        if new != text:
            stale.append(str(path))
            if not check:
                path.write_text(new)
    if stale:
        print(("stale: " if check else "regenerated: ") + ", ".join(stale))
    return 1 if check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
