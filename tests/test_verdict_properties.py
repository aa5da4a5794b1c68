"""Property tests (hypothesis) of the verdict rule (docs/statuses.md, issue 21 item 5).

Random per-dimension evidence (encoder cut-offs, per-dimension swap decisions, Fisher
grades, whole-vector significance) goes through the real ``decide_verdict``; the
verdict must follow from the statuses alone:

* ``healthy`` iff every dimension is used;
* ``partial`` iff some dimension is shown unused (collapsed / ignored / uninformative)
  and some is used;
* ``collapsed`` only when no dimension is used;
* ``undetermined`` never while a dimension is shown unused *and* one is used, and its
  reason never reads as collapse.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from collapse_diag.config.settings import Settings
from collapse_diag.diagnostics.verdict import decide_verdict
from collapse_diag.report.schema import STATUSES, VERDICTS

S = Settings()
UNUSED = ("collapsed", "ignored", "uninformative")


def _dims(draw, n):
    return [draw(st.tuples(st.booleans(), st.booleans(),
                           st.sampled_from(("used", "ignored", "undetermined")),
                           st.sampled_from((0.0, 0.01, 1.0)))) for _ in range(n)]


@st.composite
def evidence(draw):
    n = draw(st.integers(1, 6))
    rows = _dims(draw, n)
    collapsed = np.array([r[0] for r in rows])
    active = np.array([r[1] for r in rows])
    kl = SimpleNamespace(collapsed=collapsed, eps=0.01)
    act = SimpleNamespace(active=active, threshold=0.01)
    with_swap = draw(st.booleans())
    sens = None
    if with_swap:
        sens = SimpleNamespace(
            dim_p_values=np.full(n, 0.5), swap_delta=1.0, swap_p_value=0.01,
            swap_significant=draw(st.booleans()), per_dim_swap_examples=100,
            per_dim=SimpleNamespace(decision=tuple(r[2] for r in rows),
                                    inputs_needed=[None] * n))
    ident = None
    if draw(st.booleans()):
        fisher = np.array([r[3] for r in rows])
        ident = SimpleNamespace(fisher=fisher, fisher_ci=np.column_stack([fisher, fisher]),
                                identifiable_dims=int((fisher >= 0.1).sum()))
    return kl, act, sens, ident


@settings(max_examples=300, deadline=None)
@given(evidence())
def test_the_verdict_follows_from_the_statuses(case):
    v = decide_verdict(*case, S)
    counts = v.status_counts
    dim = len(v.status)
    assert set(counts) == set(STATUSES) and sum(counts.values()) == dim
    assert v.verdict in VERDICTS
    unused = sum(counts[s] for s in UNUSED)
    if v.verdict == "healthy":
        assert counts["used"] == dim
    if counts["used"] == dim:
        assert v.verdict == "healthy"
    if v.verdict == "partial":
        assert unused > 0 and counts["used"] > 0
    if unused > 0 and counts["used"] > 0:
        assert v.verdict == "partial"
    if v.verdict == "collapsed":
        assert counts["used"] == 0
    if v.verdict == "undetermined":
        assert counts["used"] < dim and not (unused and counts["used"])
        assert v.verdict_reason.startswith("Undetermined:")


@settings(max_examples=100, deadline=None)
@given(evidence())
def test_no_dimension_shown_used_is_collapsed_or_uninformative(case):
    v = decide_verdict(*case, S)
    sens = case[2]
    if sens is not None:
        for status, decision in zip(v.status, sens.per_dim.decision):
            if decision == "used":  # the swap interval lies above 0
                assert status == "used"
