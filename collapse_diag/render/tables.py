"""Number formatting and the tables both document writers show.

Each table is a :class:`Table` of already formatted cells plus raw sort keys;
the Markdown and HTML writers only decide how to print it, so what a table
holds is decided here, once.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from typing import Any, NamedTuple

from collapse_diag.report import Report
from collapse_diag.report_values import finite, setting

__all__ = [
    "MISSING",
    "Table",
    "dimension_table",
    "errors_table",
    "fmt_counts",
    "fmt_interval",
    "fmt_num",
    "fmt_p",
    "fmt_pct",
    "join_names",
    "probes_table",
    "provenance_table",
    "settings_table",
    "summary_table",
    "text_table",
]

#: Shown for a figure that was not computed.
MISSING = "—"


class Table(NamedTuple):
    """A table ready to print.

    Attributes:
        headers: Column titles.
        rows: Formatted cells, one list per row.
        keys: Raw value of each cell (number or text, ``None`` when missing), for sorting.
        sortable: Whether an interactive document may let a reader sort it by column.
    """

    headers: list[str]
    rows: list[list[str]]
    keys: list[list[float | str | None]]
    sortable: bool = False


def text_table(rows: list[list[str]], align_right: bool = False) -> str:
    """Fixed-width plain-text table for a terminal; ``rows[0]`` is the header.

    Columns are padded to their widest cell and separated by two spaces.
    """
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    pad = str.rjust if align_right else str.ljust
    return "\n".join("  ".join(pad(c, w) for c, w in zip(r, widths)).rstrip() for r in rows)


def fmt_num(value: Any, digits: int = 3) -> str:
    """A number in at most ``digits`` significant figures; :data:`MISSING` for null/NaN."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    number = finite(value)
    if number is None:
        return MISSING
    if number == 0:
        return "0"
    if abs(number) >= 1e7:
        return f"{number:.{digits - 1}e}"
    text = f"{number:.{digits}g}"
    return f"{number:.0f}" if "e+" in text else text


def fmt_p(value: Any) -> str:
    """A p-value: ``< 0.001`` below a thousandth, else three decimals."""
    number = finite(value)
    if number is None:
        return MISSING
    return "< 0.001" if number < 1e-3 else f"{number:.3f}"


def fmt_pct(value: Any) -> str:
    """A fraction in [0, 1] as a percentage."""
    number = finite(value)
    if number is None:
        return MISSING
    return f"{100 * number:.1f}%" if 0 < abs(number) < 0.01 else f"{100 * number:.0f}%"


def join_names(names: Iterable[str], limit: int = 6) -> str:
    """``"z0, z3 and z5"``; past ``limit`` names, ``"z0, z1, ... and 9 more"``."""
    names = list(names)
    if len(names) > limit:
        return f"{', '.join(names[:limit])} and {len(names) - limit} more"
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _table(headers: list[str], raw_rows: list[list[Any]],
           formats: list[Callable[[Any], str]]) -> Table:
    rows = [[fmt(v) for fmt, v in zip(formats, row, strict=True)] for row in raw_rows]
    keys = [[finite(v) if finite(v) is not None else (None if v is None else str(v)) for v in row]
            for row in raw_rows]
    return Table(headers, rows, keys)


def _text(value: Any) -> str:
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ", ".join(_text(v) for v in value) or "none"
    return fmt_num(value) if isinstance(value, (int, float)) else str(value)


def fmt_interval(value: Any) -> str:
    """``[low, high]`` as ``"low to high"``; :data:`MISSING` when either bound is missing."""
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        return MISSING
    low, high = (finite(v) for v in value)
    if low is None or high is None:
        return MISSING
    return f"{fmt_num(low)} to {fmt_num(high)}"


def fmt_counts(counts: Any) -> str | None:
    """``{"used": 3, "ignored": 0, ...}`` as ``"3 used"`` (zero counts left out), or None."""
    if not isinstance(counts, dict) or not counts:
        return None
    parts = [f"{int(v)} {k}" for k, v in counts.items() if finite(v)]
    return ", ".join(parts) if parts else "none"


#: Per-dimension columns: report key, header, formatter.
_DIMENSION_COLUMNS: tuple[tuple[str, str, Callable[[Any], str]], ...] = (
    ("status", "status", _text),
    ("signal", "signal", _text),
    ("kl", "KL (nats)", fmt_num),
    ("kl_collapse_rate", "collapse rate", fmt_pct),
    ("mu_variance", "Var mu(x)", fmt_num),
    ("posterior_variance", "E sigma²(x)", fmt_num),
    ("mutual_information", "MI (nats)", fmt_num),
    ("swap_delta", "swap delta (nats)", fmt_num),
    ("swap_ci", "swap delta interval", fmt_interval),
    ("swap_threshold", "negligible below", fmt_num),
    ("swap_examples", "swap inputs", fmt_num),
    ("swap_inputs_needed", "inputs to decide", fmt_num),
    ("swap_delta_per_token", "swap delta / token", fmt_num),
    ("swap_p_value", "swap p", fmt_p),
    ("fisher", "Fisher", fmt_num),
    ("contraction_ci", "contraction interval", fmt_interval),
    ("identifiability", "identifiability", _text),
)


def dimension_table(report: Report, keys: Collection[str] | None = None) -> Table:
    """One row per latent dimension; columns with no value in any dimension are left out.

    Args:
        report: The report.
        keys: Show only these columns (report keys of :data:`_DIMENSION_COLUMNS`, in
            that order); default all. The terminal shows a subset.
    """
    columns = [c for c in _DIMENSION_COLUMNS if keys is None or c[0] in keys]
    columns = [c for c in columns
               if any(isinstance(d, dict) and d.get(c[0]) is not None for d in report.dimensions)]
    raw = [[d.get("index", i) if isinstance(d, dict) else i]
           + [d.get(key) if isinstance(d, dict) else None for key, _, _ in columns]
           for i, d in enumerate(report.dimensions)]
    table = _table(["dim"] + [h for _, h, _ in columns], raw,
                   [lambda v: f"z{v}"] + [f for _, _, f in columns])
    return table._replace(sortable=True)


def summary_table(report: Report) -> Table:
    """The model-level figures that were computed: verdict, KL, MI, swap test, identifiability."""
    s, d = report.summary, report.latent_dim
    ci = [finite(v) for v in s.get("swap_ci") or []]
    ci_text = (f" ({setting(report, 'confidence'):.0%} CI {fmt_num(ci[0])} to {fmt_num(ci[1])})"
               if len(ci) == 2 and None not in ci else "")
    flags = [flag for key, flag in (("mi_saturated", "saturated"), ("mi_negative", "negative"))
             if s.get(key)]

    def of_d(key: str) -> str | None:
        return None if finite(s.get(key)) is None else f"{int(s[key])} of {d}"

    def nats(key: str, extra: str = "") -> str | None:
        return None if finite(s.get(key)) is None else f"{fmt_num(s[key])} nats{extra}"

    rows = [
        ("verdict", s.get("verdict")),
        ("mean KL(q(z|x) || p(z))", nats("kl")),
        ("collapsed units (KL < kl_eps)", of_d("collapsed_units")),
        ("active units (Var mu >= active_threshold)", of_d("active_units")),
        ("signal (clear / noisy / weak)", fmt_counts(s.get("signal_counts"))),
        ("mutual information I(x; z)", nats("mutual_information",
                                            f" ({', '.join(flags)})" if flags else "")),
        ("marginal KL(q(z) || p(z))", nats("marginal_kl")),
        ("MI ceiling log N", nats("mi_ceiling")),
        ("swap delta", nats("swap_delta", ci_text)),
        ("swap delta per token", nats("swap_delta_per_token")),
        ("swap p-value", None if s.get("swap_p_value") is None else fmt_p(s["swap_p_value"])),
        ("per-dimension swap: decoder use", fmt_counts(s.get("decoder_use_counts"))),
        ("per-dimension swap: inputs, rounds", None if s.get("per_dim_swap_rounds") is None
         else f"{s.get('per_dim_swap_examples')} of at most {s.get('per_dim_swap_budget')}, "
              f"{s['per_dim_swap_rounds']} round(s)"),
        ("reconstruction E log p(x|z), z ~ q", nats("reconstruction")),
        ("prior reconstruction E log p(x|z), z ~ p", nats("prior_reconstruction")),
        ("prior gap", nats("prior_gap")),
        ("likelihood flatness", nats("likelihood_flatness")),
        ("likelihood flatness per token", nats("likelihood_flatness_per_token")),
        ("inputs with a flat likelihood", None if finite(s.get("flat_fraction")) is None
         else fmt_pct(s["flat_fraction"])),
        ("identifiable directions (Fisher rank)", of_d("identifiable_dims")),
        ("Fisher directions by grade", fmt_counts(s.get("identifiability_counts"))),
        ("status counts", fmt_counts(s.get("status_counts"))),
    ]
    kept = [[label, value] for label, value in rows if value is not None]
    return Table(["figure", "value"], kept, [[a, b] for a, b in kept])


def settings_table(report: Report) -> Table:
    """Every setting of the run, as stored in report.json."""
    raw = [[name, value] for name, value in (report.settings or {}).items()]
    return _table(["setting", "value"], raw, [str, lambda v: "none" if v is None else _text(v)])


def _flatten(prefix: str, value: Any) -> list[list[Any]]:
    if isinstance(value, dict):
        return [row for key, sub in value.items() for row in _flatten(f"{prefix}{key}.", sub)]
    return [[prefix[:-1], value]]


def provenance_table(report: Report) -> Table:
    """How the report was produced: checkpoint, seed, versions, model, data, time."""
    checkpoint = report.checkpoint or {}
    raw = [
        ["checkpoint", checkpoint.get("path", "none (library use)")],
        ["checkpoint sha256", checkpoint.get("sha256")],
        ["seed", (report.settings or {}).get("seed")],
        ["inputs analysed (N)", report.n_examples],
        ["latent dimensions (D)", report.latent_dim],
        ["collapse-diag version", report.collapse_diag_version],
        ["report schema version", report.schema_version],
        *_flatten("", report.provenance or {}),
    ]
    return _table(["item", "value"], raw, [str, _text])


def probes_table(report: Report) -> Table | None:
    """Linear probes of known factors from a sampled z (and from mu(x)), or ``None`` when none."""
    probes = report.summary.get("probes")
    if not isinstance(probes, dict) or not probes:
        return None
    raw = [[factor, p.get("accuracy"), p.get("accuracy_mu"), p.get("baseline"),
            [f"z{i}" for i in p.get("dimensions") or []]]
           for factor, p in sorted(probes.items()) if isinstance(p, dict)]
    return _table(["factor", "accuracy from z", "accuracy from mu(x)", "baseline",
                   "dimensions used"], raw, [str, fmt_num, fmt_num, fmt_num, _text])


def errors_table(report: Report) -> Table | None:
    """Diagnostics that failed and their messages, or ``None`` when none failed."""
    if not report.errors:
        return None
    return _table(["diagnostic", "message"], [[k, v] for k, v in sorted(report.errors.items())],
                  [str, str])

