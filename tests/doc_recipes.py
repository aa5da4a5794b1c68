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


def console(name: str) -> list[str]:
    """The arguments of a console recipe's ``$ collapse-diag ...`` line (continuations joined)."""
    import shlex

    text = recipe(name).replace("\\\n", " ")
    line = next(x for x in text.splitlines() if x.startswith("$ collapse-diag "))
    return shlex.split(line)[2:]


def compiled(module):
    """``module`` as ``torch.compile`` wraps it, for its state dict: held as ``_orig_mod``.

    ``torch.compile(m)`` returns an ``OptimizedModule`` whose only submodule is
    ``m`` under ``_orig_mod`` (so its weights are named ``_orig_mod.…``); building
    that layout directly spares the tests the seconds of importing torch._dynamo.
    """
    import torch

    holder = torch.nn.Module()
    holder._orig_mod = module
    return holder
