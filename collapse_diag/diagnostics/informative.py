"""Encoder-side facts the decoder-side rules start from: informative dimensions, I(x; z_d).

Read by the sensitivity diagnostic (which dimensions get a per-dimension swap
test, and the negligible-effect threshold) and by the verdict (which
dimensions can be used at all). Rules: docs/statuses.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from collapse_diag.report.schema import DIMENSION_KEY as DK

if TYPE_CHECKING:
    from collapse_diag.diagnostics.activity import ActivityResult
    from collapse_diag.diagnostics.kl import KLResult

__all__ = ["informative_dims", "swap_reference"]


def informative_dims(kl: KLResult | None, activity: ActivityResult | None) -> np.ndarray | None:
    """Not collapsed and Var_x[mu_d] >= active_threshold, ``(D,)``; ``None`` if one is missing."""
    if kl is None or activity is None:
        return None
    return ~np.asarray(kl.collapsed, dtype=bool) & np.asarray(activity.active, dtype=bool)


def swap_reference(information: Any, kl: KLResult | None) -> np.ndarray | None:
    """I(x; z_d) for the negligible-effect threshold: the MI estimate, else the mean KL_d.

    The mean KL_d >= I(x; z_d) is the fallback when the information diagnostic
    is missing; ``None`` (the absolute cap alone) when both are.
    """
    if information is not None:
        mi = information.section().dimensions.get(DK.mutual_information)
        if mi is not None:
            return np.array([np.nan if v is None else v for v in mi], dtype=np.float64)
    return None if kl is None else np.asarray(kl.per_dimension, dtype=np.float64)
