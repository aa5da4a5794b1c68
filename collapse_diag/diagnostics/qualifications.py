"""What a report says about the evidence behind its verdict, beside its figures.

Below the verdict's minimum of distinct inputs (collapse_diag/diagnostics/minimums.py)
``analyze`` refuses; between that minimum and :data:`FEW_DISTINCT_INPUTS` it
answers, and the report says that the verdict rests on few distinct inputs: a
warning ``few_distinct_inputs: ...`` in ``report.warnings``, shown at the top of
report.md and report.html (docs/cli.md, "Minimum number of inputs").

Why 50: the information estimate cannot exceed its ceiling log N (3.0 nats at
N = 20, 3.9 at N = 50), and the swap test's intervals narrow as 1/sqrt(N) (at
N = 20 they are 1.6 times as wide as at 50); from 50 distinct inputs on, a used
dimension of a few nats is no longer at the ceiling and the intervals are
narrow enough for the verdict to stand on its own.
"""

from __future__ import annotations

import math

from collapse_diag.exceptions import DataError
from collapse_diag.report.invariants import check_report
from collapse_diag.report.report import Report
from collapse_diag.report.schema import PROVENANCE_KEY as P

__all__ = ["FEW_DISTINCT_INPUTS", "FEW_INPUTS", "few_inputs_warnings", "is_qualification",
           "report_warnings"]

#: A verdict from fewer distinct inputs than this is reported with a warning.
FEW_DISTINCT_INPUTS = 50
#: The name that starts the warning (``few_distinct_inputs: ...``).
FEW_INPUTS = "few_distinct_inputs"


def few_inputs_warnings(report: Report) -> list[str]:
    """The warning of a verdict resting on fewer than FEW_DISTINCT_INPUTS distinct inputs."""
    distinct = (report.provenance or {}).get(P.distinct_inputs)
    if report.verdict is None or not isinstance(distinct, int) or isinstance(distinct, bool) \
            or distinct >= FEW_DISTINCT_INPUTS:
        return []
    return [f"{FEW_INPUTS}: the verdict rests on {distinct} distinct inputs "
            f"({report.n_examples} analysed), fewer than {FEW_DISTINCT_INPUTS} "
            f"(collapse_diag.diagnostics.qualifications): the information ceiling log N is "
            f"{math.log(max(distinct, 1)):.1f} nats and the swap intervals are wide; confirm "
            "it on more distinct inputs (--data, --max-examples)."]


def is_qualification(warning: str) -> bool:
    """Whether a line of ``report.warnings`` qualifies the evidence (not a broken invariant)."""
    return warning.startswith(f"{FEW_INPUTS}:")


def report_warnings(report: Report) -> list[str]:
    """Every warning of ``report``: the invariants it breaks, then the qualifications.

    Raises:
        DataError: a figure has a type no analysis writes (a hand-edited report.json,
            e.g. a status that is an object), so the relations cannot even be checked.
    """
    try:
        broken = [str(v) for v in check_report(report)]
    except (TypeError, ValueError, KeyError, AttributeError, IndexError) as err:
        raise DataError(
            f"the report's figures have types no analysis writes ({type(err).__name__}: "
            f"{str(err)[:200]}); was report.json edited by hand? Rewrite it with "
            "`collapse-diag analyze`."
        ) from err
    return broken + few_inputs_warnings(report)
