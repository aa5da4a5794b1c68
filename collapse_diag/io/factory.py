"""Resolving a model factory ``"package.module:callable"``, and the one rule for untrusted names.

The rule (docs/model-protocol.md, "Safety"): a factory *named by a checkpoint
file* is called only if it is a model class, an ``nn.Module`` subclass. Any
other callable (a function, a builtin, a method, a non-model class) is called
only when the user named it on the command line (``--factory``) or in code
(``load_checkpoint(factory=...)``). Functions are excluded wholesale because
no allow-list can know which functions run code: ``sympy.sympify`` and
``pandas.eval`` evaluate strings, ``runpy.run_path`` runs files, a project's
``main`` writes files.

Importing a module runs its top-level code too, so for a name from a file the
module must also not be a standard-library module (``antigravity`` opens a
browser, ``unittest.__main__`` runs tests) nor a ``__main__`` module or any
other dunder module of a package (a command-line entry point).
"""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from collapse_diag.exceptions import CheckpointError

__all__ = ["resolve_factory", "is_model_class"]

_FIX = ("If you trust it, name the factory yourself with --factory module:callable (any "
        "callable is accepted there; --trust-checkpoint does not lift this rule).")


def is_model_class(target: Any) -> bool:
    """Whether ``target`` is a class deriving from ``torch.nn.Module``.

    That is the only kind of factory a checkpoint file may name.
    """
    return inspect.isclass(target) and issubclass(target, nn.Module)


def _check_module_name(spec: str, module_name: str) -> None:
    """Refuse, for a name from a file, modules whose import alone may run code."""
    parts = module_name.split(".")
    if parts[0] in sys.stdlib_module_names or parts[0] == "builtins":
        raise CheckpointError(
            f"the checkpoint names factory {spec!r} from the standard library, which holds no "
            f"model classes; refusing to import it. {_FIX}"
        )
    if any(p.startswith("__") for p in parts) or not all(p.isidentifier() for p in parts):
        raise CheckpointError(
            f"the checkpoint names factory {spec!r} in module {module_name!r}, which is not a "
            f"module of model code (a __main__ entry point or not a Python name); refusing "
            f"to import it. {_FIX}"
        )


def _import(module_name: str) -> Any:
    cwd = str(Path.cwd())
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        return importlib.import_module(module_name)
    except (Exception, SystemExit) as err:  # noqa: BLE001 - user code fails in many ways
        raise CheckpointError(
            f"factory module {module_name!r} cannot be imported ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}): install the package that "
            f"defines the model, or run from the folder holding "
            f"{module_name.replace('.', '/')}.py."
        ) from err


def resolve_factory(spec: str, from_file: bool = False) -> Callable[..., Any]:
    """Import ``"package.module:callable"`` (the current directory is on the import path).

    Args:
        spec: ``module:attribute``; the attribute may be dotted (``Class.build``).
        from_file: The name came from the (untrusted) checkpoint file: only
            ``nn.Module`` subclasses are accepted, and the module must not be one
            whose import alone runs code (standard library, ``__main__``).

    Returns:
        The callable.

    Raises:
        CheckpointError: malformed spec, module not importable, attribute missing,
            not callable, or (for a name from the file) not a model class.
    """
    if not isinstance(spec, str) or spec.count(":") != 1 or not all(spec.split(":")):
        raise CheckpointError(
            f"factory {spec!r} is not of the form 'package.module:callable' "
            "(e.g. 'models:build_vae')."
        )
    module_name, attr_path = spec.split(":")
    if from_file:
        _check_module_name(spec, module_name)
    target: Any = _import(module_name)
    for part in attr_path.split("."):
        try:
            found = not part.startswith("__") and hasattr(target, part)
            target = getattr(target, part) if found else None
        except (Exception, SystemExit) as err:  # noqa: BLE001 - a lazy attribute of user code
            raise CheckpointError(f"factory {spec!r}: looking up {attr_path!r} failed with "
                                  f"{type(err).__name__}: {err}") from err
        if not found:
            raise CheckpointError(f"factory {spec!r}: module {module_name!r} has no {attr_path!r}.")
    if not callable(target):
        raise CheckpointError(f"factory {spec!r} is not callable.")
    if from_file and not is_model_class(target):
        kind = "a class that is not an nn.Module" if inspect.isclass(target) else (
            f"a {type(target).__name__}")
        raise CheckpointError(
            f"the checkpoint names factory {spec!r}, which is {kind}, not an nn.Module class; "
            f"refusing to call it (a factory named by a file must be a model class). {_FIX}"
        )
    return target
