"""The diagnostics in the order they run, one :class:`~.spec.DiagnosticSpec` each.

``analyze`` runs :data:`SPECS` in this order (a diagnostic reads the results of
those before it: ``spec.requires``); the tables, the terminal, the plots, the
document sections and the explanation show them in :func:`display_order`.
Adding a diagnostic: write its module ending in ``SPEC = DiagnosticSpec(...)``
and add it here: its name in the import and its `SPEC` in :data:`SPECS`
(docs/adding-a-diagnostic.md).
"""

from __future__ import annotations

from collapse_diag.diagnostics import (
    activity,
    decoded_outputs,
    discrete,
    identifiability,
    information,
    kl,
    likelihood,
    probes,
    refinement,
    sensitivity,
    verdict,
)
from collapse_diag.diagnostics.spec import DiagnosticSpec
from collapse_diag.report.report import Report
from collapse_diag.report.schema import PROVENANCE_KEY

__all__ = ["SPECS", "SPEC_BY_NAME", "display_order", "report_kind"]

#: Every diagnostic, in the order they run.
SPECS: tuple[DiagnosticSpec, ...] = (
    kl.SPEC,
    activity.SPEC,
    information.SPEC,
    sensitivity.SPEC,
    identifiability.SPEC,
    verdict.SPEC,
    probes.SPEC,
    likelihood.SPEC,
    refinement.SPEC,
    discrete.SPEC,
    decoded_outputs.SPEC,
)

#: Name -> spec.
SPEC_BY_NAME: dict[str, DiagnosticSpec] = {spec.name: spec for spec in SPECS}


def display_order(kind: str | None = None) -> tuple[DiagnosticSpec, ...]:
    """:data:`SPECS` with the leading ones (``spec.leads``: the verdict) first.

    ``kind``: only the diagnostics of that latent kind (``spec.kinds``); ``None``: all.
    """
    return tuple(sorted((spec for spec in SPECS if kind is None or kind in spec.kinds),
                        key=lambda spec: not spec.leads))


def report_kind(report: Report) -> str:
    """The latent kind of the model ``report`` describes (``gaussian`` for older reports)."""
    return str(report.provenance.get(PROVENANCE_KEY.latent_kind) or "gaussian")
