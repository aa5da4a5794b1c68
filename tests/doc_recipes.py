"""The code blocks of docs/adapters.md marked ``<!-- recipe: NAME -->``, for the recipe tests."""

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "adapters.md"


def recipe(name: str) -> str:
    """The first fenced block after ``<!-- recipe: name -->`` in docs/adapters.md."""
    text = DOC.read_text()
    found = re.search(rf"<!-- recipe: {re.escape(name)} -->\s*```\w*\n(.*?)```", text, re.S)
    if found is None:
        raise LookupError(f"no recipe {name!r} in {DOC}")
    return found.group(1)
