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
module is judged *before* it is imported, from where its file is and what the
file says (nothing is executed to decide; docs/model-protocol.md, "Safety"):

* never a standard-library module (``antigravity`` opens a browser,
  ``unittest.__main__`` runs tests), nor a ``__main__`` module or any other
  dunder module of a package (a command-line entry point);
* a module of a known model library (:data:`MODEL_PACKAGES`, extended by the
  environment variable ``COLLAPSE_DIAG_MODEL_PACKAGES``, comma-separated
  top-level names) is imported;
* any other module must be the user's own code: its file found (without
  importing its parents) under the current folder or a ``PYTHONPATH`` entry,
  not inside an installed environment (``site-packages``), as Python source that
  defines the named attribute at its top level (a class, function, assignment
  or import of that name). An installed package that is not a model library
  (``sympy``, ``narwhals``: their import prints text) and a script in the
  current folder that does not define the name (``evilcwd:Anything``) are
  refused before anything of theirs runs.
"""

from __future__ import annotations

import ast
import importlib
import importlib.machinery
import importlib.util
import inspect
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from collapse_diag.exceptions import CheckpointError
from collapse_diag.io.files import MAX_CONFIG_BYTES, read_text_limited

__all__ = ["MODEL_PACKAGES", "MODEL_PACKAGES_ENV", "is_model_class", "model_packages",
           "resolve_factory"]

#: Top-level packages of model libraries whose modules a checkpoint may name.
MODEL_PACKAGES = ("collapse_diag", "torch", "torchvision", "torchaudio", "pythae",
                  "transformers", "lightning", "pytorch_lightning", "timm", "diffusers")
#: Environment variable adding top-level package names to :data:`MODEL_PACKAGES`.
MODEL_PACKAGES_ENV = "COLLAPSE_DIAG_MODEL_PACKAGES"
_ENVIRONMENT_DIRS = {"site-packages", "dist-packages"}

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


def model_packages() -> frozenset[str]:
    """:data:`MODEL_PACKAGES` and the names in ``$COLLAPSE_DIAG_MODEL_PACKAGES``."""
    extra = os.environ.get(MODEL_PACKAGES_ENV, "")
    return frozenset(MODEL_PACKAGES) | {n.strip() for n in extra.split(",") if n.strip()}


def _locate(module_name: str) -> Path | None:
    """The source file of ``module_name``, found level by level without importing anything.

    The search path is the one :func:`_import` uses: the current folder, then ``sys.path``.
    """
    cwd = str(Path.cwd())
    path: list[str] | None = [cwd] + [p for p in sys.path if p != cwd]
    parts = module_name.split(".")
    spec = None
    for i in range(len(parts)):
        if path is None:
            return None
        spec = importlib.machinery.PathFinder.find_spec(".".join(parts[:i + 1]), path)
        if spec is None and i == 0:  # e.g. an editable install's finder: a top-level find_spec
            try:                     # runs no code of the module
                spec = importlib.util.find_spec(parts[0])
            except (ImportError, ValueError):
                spec = None
        if spec is None:
            return None
        path = list(spec.submodule_search_locations or []) or None
    origin = getattr(spec, "origin", None)
    return Path(origin) if origin and origin not in ("namespace", "built-in") else None


def _user_roots() -> list[Path]:
    """Folders holding the user's own code: the current one and ``PYTHONPATH``'s entries."""
    entries = [Path.cwd()] + [Path(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
                              if p]
    return [p.resolve() for p in entries]


def _defines(source: str, name: str) -> bool:
    """Whether Python ``source`` binds ``name`` at its top level (or star-imports a module)."""
    for node in ast.parse(source).body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            found = node.name == name
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            found = any((a.asname or a.name.split(".")[0]) == name or a.name == "*"
                        for a in node.names)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            found = any(isinstance(t, ast.Name) and t.id == name for t in targets)
        else:
            found = False
        if found:
            return True
    return False


def _check_before_import(spec: str, module_name: str, attr: str) -> None:
    """Refuse a module a file names, before importing it, unless it is trusted to import.

    Trusted: a model library, or the user's own source defining ``attr`` (module docstring).
    """
    if module_name.split(".")[0] in model_packages():
        return
    origin = _locate(module_name)
    if origin is None or origin.suffix != ".py":
        raise CheckpointError(
            f"the checkpoint names factory {spec!r}, but no Python source of module "
            f"{module_name!r} is found in the current folder or on the import path; refusing "
            f"it: install the package that defines the model, or run from the folder holding "
            f"{module_name.replace('.', '/')}.py."
        )
    resolved = origin.resolve()
    installed = bool(_ENVIRONMENT_DIRS & set(resolved.parts))
    if installed or not any(resolved.is_relative_to(root) for root in _user_roots()):
        raise CheckpointError(
            f"the checkpoint names factory {spec!r} from {module_name!r}, an installed module "
            f"that is not a known model library ({MODEL_PACKAGES_ENV} adds one); refusing to "
            f"import it (importing a module runs its code). {_FIX}"
        )
    try:
        # a FIFO named like a module would block a read: regular files only, bounded
        source = read_text_limited(origin, "factory module", MAX_CONFIG_BYTES, CheckpointError)
        defined = _defines(source, attr)
    except (OSError, SyntaxError, ValueError, RecursionError) as err:
        raise CheckpointError(
            f"the checkpoint names factory {spec!r}, but {str(origin)!r} cannot be read as "
            f"Python source ({type(err).__name__}); refusing to import it. {_FIX}"
        ) from err
    if not defined:
        raise CheckpointError(
            f"the checkpoint names factory {spec!r}, but {str(origin)!r} does not define "
            f"{attr!r} at its top level; refusing to import it (importing a module runs its "
            f"code). {_FIX}"
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
            ``nn.Module`` subclasses are accepted, and the module is judged before it
            is imported (module docstring): a model library, or the user's own
            source defining the name.

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
        _check_before_import(spec, module_name, attr_path.split(".")[0])
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
