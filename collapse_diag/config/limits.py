"""Bounds on the work one run may be asked to do, declared once (docs/cli.md, "Limits").

A checkpoint, a report.json or a config file is untrusted: what it *claims*
(the size of z, the number of rows of a report, how deeply its values nest)
decides how much memory and time a run takes. Claims beyond these bounds are
refused with one line and exit code 3, before anything is allocated, instead
of a run that allocates gigabytes (a model with 10,000 latent dimensions took
4.2 GB and was still running after 150 s; rendering a report of 100,000
dimensions, 3.8 GB). The bounds are generous for real models: VAEs of text and
images use tens to a few hundred latent dimensions.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from collapse_diag.exceptions import CollapseDiagError, DataError

__all__ = ["MAX_LATENT_DIM", "MAX_REPORT_BYTES", "MAX_NESTING", "MAX_VALUES",
           "check_json_text", "check_latent_dim", "check_nesting"]

#: Most latent dimensions D analysed. The work grows with D: the per-dimension swap
#: decodes every input once per dimension and round, the Fisher information is D x D
#: per input; the toy linear VAE of tests/toy_models.py on 40 inputs takes 5.7 s and
#: 0.84 GB (peak RSS) at D = 512, 54 s and 3.0 GB at D = 1024, mostly the Fisher
#: (one CPU thread, benchmarks/bench_latent_size.py, docs/performance.md).
MAX_LATENT_DIM = 1024
#: Largest report.json (bytes) read by ``render`` and ``compare`` (a 1024-dimension
#: report over a million inputs is well below it).
MAX_REPORT_BYTES = 256 * 2**20
#: Deepest nesting of lists and dicts in a report.json or a factory config.
MAX_NESTING = 64
#: Most values (containers and scalars, counted as reached: a value shared by several
#: parents counts once per parent) in a factory config.
MAX_VALUES = 1_000_000


def check_latent_dim(latent_dim: int, what: str, error: type[CollapseDiagError] = DataError
                     ) -> None:
    """Refuse ``latent_dim`` above :data:`MAX_LATENT_DIM`.

    Raises:
        error: naming ``what`` and the limit.
    """
    if latent_dim > MAX_LATENT_DIM:
        raise error(
            f"{what} has {latent_dim} latent dimensions; collapse-diag analyses at most "
            f"{MAX_LATENT_DIM} (collapse_diag.config.limits.MAX_LATENT_DIM, docs/cli.md): "
            "the per-input Fisher matrices and per-dimension tables would take too much "
            "memory."
        )


def check_nesting(value: Any, what: str, error: type[CollapseDiagError] = DataError,
                  max_depth: int = MAX_NESTING, max_values: int = MAX_VALUES) -> None:
    """Refuse lists/dicts nested deeper than ``max_depth`` or holding over ``max_values`` values.

    Walks ``value`` without recursion, so a value nested 100,000 deep is refused
    instead of raising RecursionError; a structure whose parts are shared (a
    "billion laughs" built from references) is refused once it has reached
    ``max_values`` values, long before it would be expanded.

    Raises:
        error: naming ``what`` and the bound exceeded.
    """
    stack = [(value, 0)]
    seen = 0
    while stack:
        item, depth = stack.pop()
        seen += 1
        if seen > max_values:
            raise error(f"{what} holds more than {max_values} values "
                        "(collapse_diag.config.limits.MAX_VALUES); refusing to read it.")
        if isinstance(item, dict):
            children = list(item.values())
        elif isinstance(item, (list, tuple)):
            children = list(item)
        else:
            continue
        if depth >= max_depth and children:
            raise error(f"{what} nests lists/dicts more than {max_depth} deep "
                        "(collapse_diag.config.limits.MAX_NESTING); refusing to read it.")
        stack.extend((child, depth + 1) for child in children)


_JSON_STRING = re.compile(r'"(?:\\.|[^"\\])*"')


def check_json_text(text: str, what: str, error: type[CollapseDiagError] = DataError,
                    max_depth: int = MAX_NESTING) -> None:
    """Refuse JSON text whose arrays/objects nest deeper than ``max_depth``, before parsing.

    The depth is counted over the brackets outside strings (a vectorised pass), so
    a file of 100,000 ``[`` is refused in milliseconds instead of exhausting the
    parser's recursion.

    Raises:
        error: naming ``what`` and the bound.
    """
    bare = _JSON_STRING.sub("", text).encode("utf-8", "surrogatepass")
    codes = np.frombuffer(bare, dtype=np.uint8)
    steps = np.isin(codes, (ord("["), ord("{"))).astype(np.int64) - \
        np.isin(codes, (ord("]"), ord("}"))).astype(np.int64)
    if steps.size and int(np.cumsum(steps).max()) > max_depth:
        raise error(f"{what} nests arrays/objects more than {max_depth} deep "
                    "(collapse_diag.config.limits.MAX_NESTING); refusing to parse it.")
