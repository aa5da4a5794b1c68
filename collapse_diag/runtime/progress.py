"""Progress bars on stderr for passes over the data (tqdm), hidden when asked or off a terminal."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")

__all__ = ["progress"]


def progress(items: Iterable[T], desc: str, total: int | None, show: bool) -> Iterator[T]:
    """Wrap ``items`` in a tqdm bar on stderr when ``show`` and stderr is a terminal.

    Args:
        items: What is iterated.
        desc: Label of the bar.
        total: Number of items (for the bar's length).
        show: The caller's wish (``False`` under ``--quiet`` or in library use).
    """
    enabled = show and sys.stderr.isatty()
    return iter(tqdm(items, desc=desc, total=total, disable=not enabled, file=sys.stderr,
                     leave=False, unit="batch"))
