"""The cause rule (collapse_diag/diagnostics/cause.py, docs/statuses.md), row by row.

Hand-made per-input KL arrays: the intervals are Student-t over 50 inputs at
alpha / D, so a column of constant values has a zero-width interval, and a column
drawn around a mean has an interval of about +-4 sd / sqrt(50) around it.
"""

from __future__ import annotations

import numpy as np
import pytest

from collapse_diag.diagnostics.cause import decide_causes, model_cause
from collapse_diag.report.schema import CAUSES

EPS, RATIO, ALPHA = 0.01, 2.0, 0.05


def _column(mean: float, sd: float = 0.0, n: int = 50, seed: int = 0) -> np.ndarray:
    return mean + sd * np.random.default_rng(seed).standard_normal(n)


@pytest.mark.parametrize("status, encoder, refined, sd, fisher, expected", [
    ("collapsed", 0.0, 1.0, 0.02, True, "inference"),        # q at the prior, q* not
    ("uninformative", 0.1, 0.5, 0.02, False, "inference"),
    ("collapsed", 0.0, 0.0, 0.0, False, "model"),            # q* at the prior too, flat
    ("collapsed", 0.0, 0.0, 0.0, True, "undetermined"),      # q* at the prior, Fisher reads d
    ("collapsed", 0.0, 0.01, 0.02, False, "undetermined"),   # q*'s interval straddles kl_eps
    ("ignored", 0.5, 0.0, 0.0, False, "decoder"),
    ("ignored", 0.5, 1.0, 0.02, False, "undetermined"),      # contradiction: left undecided
    ("used", 1.0, 0.1, 0.02, True, "objective"),             # the encoder carries 10x
    ("used", 1.0, 0.9, 0.02, True, "none"),
    ("undetermined", 0.5, 0.5, 0.02, False, "undetermined"),
])
def test_each_row_of_the_table(status, encoder, refined, sd, fisher, expected):
    kl_ref, kl_enc = _column(refined, sd)[:, None], _column(encoder)[:, None]
    result = decide_causes([status], kl_ref, kl_enc, np.array([fisher]), EPS, RATIO, ALPHA)
    assert result.cause == (expected,)
    assert sum(result.counts.values()) == 1 and set(result.counts) == set(CAUSES)


@pytest.mark.parametrize("causes, expected", [
    (["none", "none"], "none"),
    (["none", "undetermined"], "undetermined"),
    (["model", "undetermined", "none"], "model"),
    (["inference", "model"], "mixed"),
    (["objective"], "objective"),
])
def test_the_model_cause(causes, expected):
    assert model_cause(causes) == expected
