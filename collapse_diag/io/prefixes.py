"""State-dict key prefixes added by wrappers: ``module.``, ``model.``, ``_orig_mod.``.

``nn.DataParallel`` / ``DistributedDataParallel`` add ``module.``, a
LightningModule holding the VAE as ``self.model`` adds ``model.``, and
``torch.compile`` adds ``_orig_mod.``; they combine (``module._orig_mod.``).
A prefix is stripped only when *every* key carries it, repeatedly, so the
combinations come off in any order. A file mixing prefixes (``model.`` and
``loss.``) is left alone: :func:`seen_prefixes` names them in the error, and
``--state-dict-prefix`` picks one explicitly.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from collapse_diag.exceptions import CheckpointError

__all__ = ["INNER_PREFIXES", "WRAPPER_PREFIXES", "strip_wrapper_prefixes", "keep_prefix",
           "seen_prefixes"]

#: Prefixes stripped automatically when every key of the state dict carries them.
WRAPPER_PREFIXES = ("module.", "model.", "_orig_mod.")
#: The wrappers' own prefixes, also stripped after an explicit ``--state-dict-prefix``
#: (``model._orig_mod.x`` with ``model.`` gives ``x``); ``model.`` is not among them: below a
#: prefix the user chose, it is the user's own attribute name.
INNER_PREFIXES = ("module.", "_orig_mod.")


def strip_wrapper_prefixes(state: Mapping[str, Any],
                           prefixes: tuple[str, ...] = WRAPPER_PREFIXES) -> dict[str, Any]:
    """Strip ``prefixes`` shared by every key, repeatedly (combinations too)."""
    state = dict(state)
    changed = True
    while state and changed:
        changed = False
        for prefix in prefixes:
            if all(k.startswith(prefix) and len(k) > len(prefix) for k in state):
                state = {k[len(prefix):]: v for k, v in state.items()}
                changed = True
    return state


def seen_prefixes(keys: Any, limit: int = 8) -> list[str]:
    """The first name components of the keys (``"model."``, ``"loss."``), most frequent first."""
    counts = Counter(k.split(".", 1)[0] + "." for k in keys if isinstance(k, str) and "." in k)
    return [p for p, _ in counts.most_common(limit)]


def keep_prefix(state: Mapping[str, Any], prefix: str, where: str) -> dict[str, Any]:
    """Keep only the keys starting with ``prefix`` (``--state-dict-prefix``), stripped of it.

    Raises:
        CheckpointError: no key starts with ``prefix``; the message names the prefixes seen.
    """
    if not any(k.startswith(prefix) for k in state):  # DDP / compile outside: module.model.
        state = strip_wrapper_prefixes(state, INNER_PREFIXES)
    kept = {k[len(prefix):]: v for k, v in state.items()
            if k.startswith(prefix) and len(k) > len(prefix)}
    if kept:  # torch.compile / DDP inside the kept part (``model._orig_mod.``, ``module.model.``)
        kept = strip_wrapper_prefixes(kept, INNER_PREFIXES)
    if not kept:
        raise CheckpointError(
            f"no weight in {where} is named with the prefix {prefix!r} (--state-dict-prefix); "
            f"the names start with {seen_prefixes(state) or 'no prefix'}."
        )
    return kept
