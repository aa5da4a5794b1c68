"""Named sets of analysis settings: the cheap preset of ``track`` and the monitor.

A preset is a dict of :class:`~collapse_diag.config.settings.Settings` fields; any of
them can still be overridden by the caller. The cheap preset keeps the figures
a trajectory needs (per-dimension KL, Var mu, MI, whole-vector and
per-dimension swap deltas, statuses and the verdict) and drops what costs most:

* ``identifiability`` (prior draws, one backward pass per input for the Fisher
  information) and ``probes`` (cross-validated classifiers) are not run;
* at most 512 inputs are analysed (a seeded subset, the same at every step);
* 64 inputs in the per-dimension swap subsample (``64 * (D + 1)`` decoder rows);
* 200 bootstrap resamples for the swap-delta interval.

Without identifiability, decoder use is judged from the swap tests alone
(docs/statuses.md). ``--full`` (``full=True``) runs the default analysis.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["CHEAP", "FULL", "PRESETS", "preset_label", "preset_settings", "skipped"]

#: The cheap preset used by ``collapse-diag track`` and :class:`CollapseMonitor` by default.
CHEAP: dict[str, Any] = {
    "diagnostics": ("kl", "activity", "information", "sensitivity", "verdict", "decoded"),
    "max_examples": 512,
    "per_dim_swap_examples": 64,
    "swap_bootstrap": 200,
}

#: The full analysis: every diagnostic at the default sample sizes.
FULL: dict[str, Any] = {}

#: Preset name -> its settings.
PRESETS: dict[str, dict[str, Any]] = {"cheap": CHEAP, "full": FULL}

#: Diagnostics ``analyze`` runs by default that a preset may leave out (diagnostic names, not
#: report keys), and how a page says so; identifiability first.
_LEFT_OUT = (("identifiability", "no per-dimension Fisher information (identifiability)"),
             ("probes", "no probes"))


def skipped(name: str | None, settings: Mapping[str, Any] | None = None) -> str:
    """What a run of preset ``name`` did not do that ``analyze``'s defaults do, in words.

    A page shows it beside the run's verdicts ('' for the full preset or custom settings).
    Read from the run's effective ``settings`` (the preset with the caller's overrides; the
    preset's own without them), so an override (``--per-dim-swap-examples 8``) is what the
    sentence says. Issue 22: the same weights read ``healthy`` under ``analyze`` and
    ``partial`` under the cheap preset, with nothing saying the preset decides less.
    """
    if name != "cheap":
        return ""
    effective = {**CHEAP, **(settings or {})}
    diagnostics = effective.get("diagnostics")
    absent = [what for key, what in _LEFT_OUT if diagnostics is not None and key not in diagnostics]
    parts = [" and ".join(absent)] if absent else []
    if effective.get("max_examples") is not None:
        parts.append(f"at most {effective['max_examples']:,} inputs")
    parts.append(f"per-dimension swap on {effective['per_dim_swap_examples']:,} inputs")
    text = "; ".join(parts)
    if diagnostics is not None and _LEFT_OUT[0][0] not in diagnostics:  # identifiability
        text += (". Decoder use is judged from the swap tests alone, and a dimension they "
                 "cannot decide on so few inputs reads undetermined: this preset's verdict may "
                 "read partial where a full analysis of the same weights reads healthy, never "
                 "the other way because of the preset")
    return text


def preset_label(name: str | None, settings: Mapping[str, Any] | None = None) -> str:
    """``"preset: cheap (no per-dimension Fisher ...)"``, ``"preset: full"`` or ``"custom"``.

    ``settings``: the run's effective settings (see :func:`skipped`).
    """
    if name is None:
        return "preset: custom settings"
    text = skipped(name, settings)
    return f"preset: {name}" + (f" ({text})" if text else "")


def preset_settings(full: bool, overrides: dict[str, Any]) -> dict[str, Any]:
    """The settings of the cheap (or full) preset, updated with the caller's ``overrides``.

    Args:
        full: Use the full analysis instead of the cheap preset.
        overrides: Settings fields given explicitly; they win over the preset.

    Returns:
        Keyword arguments for :func:`~collapse_diag.analysis.analyze`.
    """
    return {**(FULL if full else CHEAP), **overrides}
