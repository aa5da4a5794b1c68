"""The fewest inputs each diagnostic, and the verdict, may be computed from.

Each number is its spec's ``min_inputs`` (collapse_diag/diagnostics/spec.py);
:data:`MIN_INPUTS` collects them, read by :func:`collapse_diag.analyze` before
anything runs (documented in docs/cli.md, "Minimum number of inputs"). Below
a minimum the analysis refuses with a :class:`~collapse_diag.exceptions.DataError`
(exit code 3) that says how many inputs are needed, instead of returning figures
or a verdict the evidence cannot support.

Why these numbers:

* ``activity`` (Var_x[mu_d(x)]), ``information`` (the estimate's ceiling is
  log N) and ``sensitivity`` (codes are swapped *between* inputs) are undefined
  on one input: 2.
* ``probes`` cross-validates a classifier with at least 2 inputs per class value: 4.
* ``verdict``: 20. It combines the swap test (a significance test at
  ``alpha``) and the information ceiling log N (3.0 nats at N = 20). Before
  this minimum existed, healthy models analysed on 2 to 4 inputs got the
  verdict ``collapsed`` (issue 14), and so did the healthy linear Gaussian VAE
  of tests/toy_models.py (weights (2, 1.5), noise 0.5) on 5 inputs with seed 2;
  at 20 inputs it is not called collapsed for seeds 0-2
  (tests/test_hardening.py).
"""

from __future__ import annotations

from collections.abc import Iterable

from collapse_diag.diagnostics.registry import SPECS
from collapse_diag.exceptions import DataError

__all__ = ["MIN_INPUTS", "min_inputs", "require_inputs"]

#: Fewest analysed inputs per diagnostic name (from the specs; 1 where a spec sets none).
MIN_INPUTS: dict[str, int] = {spec.name: spec.min_inputs for spec in SPECS}


def min_inputs(name: str) -> int:
    """Fewest inputs the diagnostic ``name`` needs (1 when not listed)."""
    return MIN_INPUTS.get(name, 1)


def require_inputs(n: int, names: Iterable[str], distinct: int | None = None) -> None:
    """Refuse an analysis of ``n`` inputs when a selected diagnostic needs more.

    Repeated inputs carry no new evidence, so the minimum applies to the
    ``distinct`` ones when they are fewer (all inputs identical, or two distinct
    inputs repeated: a verdict from them would claim an evidence it does not have).

    Args:
        n: Inputs that will be analysed (after ``max_examples`` subsampling).
        names: The diagnostics that will run.
        distinct: How many of them differ from each other (``None``: all).

    Raises:
        DataError: naming the diagnostic with the largest minimum and that minimum.
    """
    names = list(names)
    if not names:
        return
    need = max(names, key=min_inputs)
    what = "the verdict" if need == "verdict" else f"the {need} diagnostic"
    if n < min_inputs(need):
        raise DataError(
            f"{n} input(s) are too few: {what} needs at least {min_inputs(need)} "
            "(collapse_diag.diagnostics.minimums.MIN_INPUTS, docs/cli.md). Pass more inputs "
            "with --data or raise --max-examples."
        )
    if distinct is not None and distinct < min_inputs(need):
        raise DataError(
            f"{n} inputs, but only {distinct} distinct: {what} needs at least "
            f"{min_inputs(need)} distinct inputs (repeats carry no new evidence). Pass "
            "different inputs with --data."
        )
