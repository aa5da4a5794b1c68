"""``compare``: several analysed models side by side, and identifiability across seeds.

Each model is a report folder written by ``analyze`` (``report.json``, and
``encodings.npz`` when analysed with ``--save-encodings``), a report.json file,
a checkpoint (analysed first, every checkpoint with the same settings), or in
library use a :class:`~collapse_diag.report.report.Report` (optionally paired with its
:class:`~collapse_diag.model.encodings.Encodings`). The result is a
:class:`Comparison`: one row of standard figures per model (-ELBO, NLL, PPL,
KL, MI, AU, verdict, status counts, swap delta), the best value of each
column among models analysed on the same inputs, the groups of models sharing
inputs (``provenance.data_sha256``), and, for every pair of models on the same
inputs with saved encodings, the MCC and CCA of their used dimensions
(collapse_diag/runs/latent_matching.py), and for every pair on the same inputs the paired
differences of NLL, -ELBO and KL with their intervals (collapse_diag/runs/paired.py).
Writers: collapse_diag/render/comparison.py.

Per-dimension statuses are read as opaque strings from ``dimensions[d].status``;
the version-1 name ``active`` is read as ``used``.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

from collapse_diag.diagnostics.registry import report_kind
from collapse_diag.exceptions import DataError, invalid_parameter
from collapse_diag.report.headlines import label
from collapse_diag.report.invariants import check_report
from collapse_diag.report.report import Report, to_jsonable
from collapse_diag.report.schema import DIMENSION_KEY as D
from collapse_diag.report.schema import PROVENANCE_KEY as P
from collapse_diag.report.schema import RENAMED_STATUSES, SUMMARY, Keys
from collapse_diag.report.schema import SUMMARY_KEY as S
from collapse_diag.report.schema import TOP_LEVEL_KEY as T
from collapse_diag.report.values import finite
from collapse_diag.runs.comparison_sources import ComparedModel, load_source
from collapse_diag.runs.latent_matching import match_latents
from collapse_diag.runs.paired import paired_entry

__all__ = ["COLLAPSED", "COLUMNS", "COMPARISON_KEY", "DISCRETE_COLUMNS", "EXTRA_FIELDS",
           "MODEL_KEY", "USED",
           "ComparedModel", "Comparison", "Column", "compare", "model_statuses",
           "short_unique_names"]


@dataclass(frozen=True)
class Column:
    """One column of the comparison table.

    Attributes:
        key: Name in a row (and in comparison.json / .csv).
        header: Column title.
        better: ``"lower"`` / ``"higher"``: which end is marked best; ``None``: never marked.
    """

    key: str
    header: str
    better: str | None


#: Keys of comparison.json (docs/report-schema.md, "comparison.json"): its own names, some of
#: which (``checkpoint``, ``identifiability``) happen to be report keys too.
COMPARISON_KEY = Keys("comparison.json",
                       "models columns rows best same_data data_groups identifiability notes "
                       "paired".split())
#: Keys of an entry of comparison.json's ``models``.
MODEL_KEY = Keys("comparison.json models[i]",
                 "name source checkpoint has_encodings path".split())


def _summary_column(key: str, better: str | None) -> Column:
    return Column(key, label(key), better)


#: Row keys of the two columns counted from ``dimensions[d].status`` (statuses, not fields).
USED, COLLAPSED = "used", "collapsed"
#: The standard columns, in table order (the one list of them: the table, comparison.json,
#: .csv and .tex read it; headers of summary fields from collapse_diag/report/headlines.py). KL is
#: not marked: more rate is not better per se.
COLUMNS: tuple[Column, ...] = (
    _summary_column(S.neg_elbo, "lower"),
    _summary_column(S.nll, "lower"),
    _summary_column(S.ppl, "lower"),
    _summary_column(S.kl, None),
    _summary_column(S.mutual_information, "higher"),
    _summary_column(S.mi_minibatch, None),  # its bias changes sign: never marked best
    _summary_column(S.active_units, "higher"),
    _summary_column(S.verdict, None),
    Column(USED, USED, "higher"),
    Column(COLLAPSED, COLLAPSED, "lower"),
    _summary_column(S.swap_delta, "higher"),
    # how much the decoded output changes with z (more is not better per se): never marked
    _summary_column(S.output_diversity, None),
)
#: The columns of models with discrete latents (collapse_diag/model/latent_kinds.py): the
#: headline figures of the discrete diagnostic (codebook perplexity and codes used for VQ
#: codes, KL for categorical ones; the exact MI and the swap for both), then the likelihood.
DISCRETE_COLUMNS: tuple[Column, ...] = (
    _summary_column(S.codebook_perplexity, "higher"),
    _summary_column(S.codebook_used, "higher"),
    _summary_column(S.discrete_kl, None),
    _summary_column(S.discrete_mi, "higher"),
    _summary_column(S.verdict, None),
    Column(USED, USED, "higher"),
    Column(COLLAPSED, COLLAPSED, "lower"),
    _summary_column(S.discrete_swap_delta, "higher"),
)


def columns_for(kind: str) -> tuple[Column, ...]:
    """The table columns of models of latent kind ``kind``."""
    return COLUMNS if kind == "gaussian" else DISCRETE_COLUMNS


#: Further summary figures every row carries (for the NLL cell, the rate-distortion plot, CSV).
EXTRA_FIELDS = (S.nll_se, S.rate, S.distortion)


@dataclass(frozen=True)
class Comparison:
    """Models side by side (the content of comparison.json).

    Attributes:
        models: The compared models, in the order given.
        rows: One dict per model: ``name``, ``data_group`` and every :data:`COLUMNS` key,
            plus the :data:`EXTRA_FIELDS` (``nll_se``, ``rate``, ``distortion``),
            ``status_counts``, ``latent_dim`` and ``n_examples``.
        best: Column key -> names of the models holding its best value, within each
            data group of at least two models.
        data_groups: Group label (``"A"``, ``"B"``, ...) -> ``{"data_sha256", "models"}``.
        identifiability: Per pair of models on the same inputs with encodings:
            ``{"a", "b", "mcc", "mcc_spearman", "cca", "matched", ...}``.
        notes: Sentences about what could not be compared, and why.
        paths: Model name -> the path it was given as, for models given as paths.
        kind: The latent kind every compared model has (``gaussian``, ``codes``,
            ``categorical``); it chooses the :attr:`columns`.
        paired: Per pair of models on the same inputs: the paired differences ``a - b`` of
            NLL, -ELBO and KL with their intervals (collapse_diag/runs/paired.py).
    """

    models: tuple[ComparedModel, ...]
    rows: tuple[dict[str, Any], ...]
    best: dict[str, list[str]]
    data_groups: dict[str, dict[str, Any]]
    identifiability: tuple[dict[str, Any], ...]
    notes: tuple[str, ...] = field(default=())
    paths: dict[str, str] = field(default_factory=dict)
    kind: str = "gaussian"
    paired: tuple[dict[str, Any], ...] = field(default=())

    @property
    def columns(self) -> tuple[Column, ...]:
        """The standard columns of this kind of model (:func:`columns_for`)."""
        return columns_for(self.kind)

    @property
    def names(self) -> list[str]:
        """Model names, in order."""
        return [m.name for m in self.models]

    @property
    def same_data(self) -> bool:
        """Every model was analysed on the same inputs."""
        return len(self.data_groups) == 1

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (comparison.json)."""
        c, m = COMPARISON_KEY, MODEL_KEY
        return to_jsonable({
            c.models: [{m.name: model.name, m.source: model.source,
                        m.checkpoint: model.report.checkpoint,
                        m.has_encodings: model.encodings is not None,
                        m.path: self.paths.get(model.name)} for model in self.models],
            c.columns: [{"key": col.key, "header": col.header, "better": col.better}
                        for col in self.columns],
            c.rows: list(self.rows),
            c.best: self.best,
            c.same_data: self.same_data,
            c.data_groups: self.data_groups,
            c.identifiability: list(self.identifiability),
            c.notes: list(self.notes),
            c.paired: list(self.paired),
        })


def model_statuses(report: Report) -> list[str | None]:
    """Status of each dimension as stored (``active`` read as ``used``); ``None`` where absent."""
    out = []
    for d in report.dimensions:
        status = d.get(D.status) if isinstance(d, dict) else None
        out.append(RENAMED_STATUSES.get(status, status) if isinstance(status, str) else None)
    return out


def _row(model: ComparedModel, group: str, columns: tuple[Column, ...]) -> dict[str, Any]:
    s = model.report.summary
    statuses = [st for st in model_statuses(model.report) if st is not None]
    counts = {st: statuses.count(st) for st in dict.fromkeys(statuses)}
    row: dict[str, Any] = {"name": model.name, "data_group": group}
    for column in columns:  # USED and COLLAPSED are counted here, not summary fields
        row[column.key] = s.get(column.key) if column.key in SUMMARY else None
    row[USED] = counts.get(USED, 0) if statuses else None
    row[COLLAPSED] = counts.get(COLLAPSED, 0) if statuses else None
    row[S.status_counts] = counts
    row.update({key: s.get(key) for key in EXTRA_FIELDS})
    row[T.latent_dim] = model.report.latent_dim
    row[T.n_examples] = model.report.n_examples
    return row


def _best(rows: Sequence[dict[str, Any]], columns: tuple[Column, ...]) -> dict[str, list[str]]:
    best: dict[str, list[str]] = {}
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(row["data_group"], []).append(row)
    for column in columns:
        if column.better is None:
            continue
        for members in groups.values():
            values = [(finite(r.get(column.key)), r["name"]) for r in members]
            values = [(v, n) for v, n in values if v is not None]
            if len(members) < 2 or not values:
                continue
            target = (min if column.better == "lower" else max)(v for v, _ in values)
            best.setdefault(column.key, []).extend(n for v, n in values if v == target)
    return best


def _pair(a: ComparedModel, b: ComparedModel) -> dict[str, Any] | str:
    """The identifiability entry of a pair, or the reason it cannot be computed."""
    if a.encodings is None or b.encodings is None:
        missing = [m.name for m in (a, b) if m.encodings is None]
        verb = "have" if len(missing) > 1 else "has"
        return (f"{' and '.join(missing)} {verb} no saved encodings (analyse with "
                "--save-encodings)")
    if a.encodings.n_examples != b.encodings.n_examples:
        return "their encodings hold different numbers of inputs"
    dims = []
    for m in (a, b):
        statuses = model_statuses(m.report)
        dims.append([d for d, st in enumerate(statuses) if st == USED])
    entry: dict[str, Any] = {"a": a.name, "b": b.name, "dims_a": dims[0], "dims_b": dims[1],
                             "mcc": None, "mcc_spearman": None, "cca": None, "matched": []}
    if not dims[0] or not dims[1]:
        entry["note"] = "a model has no used dimension: nothing to match"
        return entry
    result = match_latents(a.encodings.mu[:, dims[0]], b.encodings.mu[:, dims[1]])
    entry.update(mcc=result.mcc, mcc_spearman=result.mcc_spearman, cca=result.cca,
                 matched=[[dims[0][i], dims[1][j]] for i, j in result.matched],
                 pair_correlations=result.pair_correlations,
                 cca_correlations=result.cca_correlations)
    return entry


def compare(
    sources: Sequence[Any],
    *,
    names: Sequence[str] | None = None,
    data: Any = None,
    labels: Any = None,
    factory: str | None = None,
    config: Any = None,
    trust_checkpoint: bool = False,
    adapter: str | None = None,
    state_dict_prefix: str | None = None,
    method_map: Mapping[str, str] | Sequence[str] | None = None,
    show_progress: bool = False,
    **settings: Any,
) -> Comparison:
    """Put several models side by side.

    Args:
        sources: Two or more of: a report folder, a report.json path, a checkpoint
            path (analysed here), a Report, a ``(Report, Encodings)`` pair, a
            :class:`ComparedModel`.
        names: One name per source (default: the path as given, or ``model<i>``).
        data: Inputs for every checkpoint (a Batch or a data file), instead of each
            checkpoint's stored ``data``.
        labels: Known factors of ``data`` (a dict or a labels file), as for ``analyze``.
        factory: ``"module:callable"`` for state-dict-only checkpoints.
        config: Factory keyword arguments (a dict or a JSON file).
        trust_checkpoint: Allow unpickling arbitrary objects in the checkpoints.
        adapter: The adapter reading the checkpoints (``None``: auto-detected).
        state_dict_prefix: Keep only the weights with this prefix (see ``load_checkpoint``).
        method_map: A method map for every checkpoint's model
            (:func:`~collapse_diag.model.method_map.map_methods`).
        show_progress: Progress bars while analysing checkpoints.
        **settings: :class:`~collapse_diag.config.settings.Settings` fields for analysing
            checkpoints (``seed``, ``max_examples``, ``nll_samples``, ...).

    Returns:
        A :class:`Comparison`.

    Raises:
        InvalidParameterError: fewer than two sources, names that repeat or do not fit.
        DataError, CheckpointError, ProtocolError: a source cannot be read or analysed.
    """
    sources = list(sources)
    if len(sources) < 2:
        raise invalid_parameter("sources", "compare", "at least two models", len(sources))
    if names is None:
        names = short_unique_names([
            str(s) if isinstance(s, (str, Path)) else
            s.name if isinstance(s, ComparedModel) else f"model{i}"
            for i, s in enumerate(sources)])
    names = [str(n) for n in names]
    paths = {n: str(s) for n, s in zip(names, sources) if isinstance(s, (str, Path))}
    if len(names) != len(sources) or len(set(names)) != len(names):
        raise invalid_parameter("names", "compare", f"{len(sources)} distinct names", names)
    if settings:
        from collapse_diag.config.settings import Settings

        Settings.from_kwargs("compare", **settings)  # reject bad settings before any work
    load = dict(factory=factory, config=config, trust_checkpoint=trust_checkpoint,
                adapter=adapter, state_dict_prefix=state_dict_prefix)
    analyse = dict(data=data, labels=labels, load=load, method_map=method_map,
                   show_progress=show_progress, settings=settings)
    models = tuple(load_source(s, n, analyse) for s, n in zip(sources, names, strict=True))
    kinds = {m.name: report_kind(m.report) for m in models}
    if len(set(kinds.values())) > 1:
        raise DataError("compare puts models of one latent kind side by side; these are "
                        + ", ".join(f"{n}: {k}" for n, k in kinds.items())
                        + " (docs/model-protocol.md, 'Latent kinds'): compare each kind apart.")
    kind = next(iter(kinds.values()))
    columns = columns_for(kind)

    hashes = [str((m.report.provenance or {}).get(P.data_sha256) or f"unknown:{m.name}")
              for m in models]
    labels = {h: chr(ord("A") + i) if i < 26 else f"G{i}"
              for i, h in enumerate(dict.fromkeys(hashes))}
    groups = {labels[h]: {P.data_sha256: None if h.startswith("unknown:") else h,
                          "models": [m.name for m, mh in zip(models, hashes) if mh == h]}
              for h in labels}
    rows = tuple(_row(m, labels[h], columns) for m, h in zip(models, hashes, strict=True))
    notes: list[str] = []
    if len(groups) > 1:
        notes.append(f"The models were analysed on {len(groups)} different sets of inputs "
                     "(data groups " + ", ".join(groups) + "): figures are only comparable "
                     "within a group, and best values are marked within each group.")
    for model in models:  # a report's figures that contradict each other (invariants.py)
        broken = [str(v) for v in check_report(model.report)]
        if broken:
            notes.append(f"Consistency warnings in {model.name}'s report: " + "; ".join(broken)
                         + ".")
    pairs, paired = [], []
    if kind != "gaussian":
        notes.append(f"No identifiability across models: it matches Gaussian encodings, and "
                     f"these models have {kind} latents.")
    for (a, ha), (b, hb) in itertools.combinations(zip(models, hashes), 2):
        if ha != hb or kind != "gaussian":
            continue
        diff = paired_entry(a.name, a.report, b.name, b.report,
                            float(a.report.settings.get("confidence", 0.95)))
        if isinstance(diff, str):
            notes.append(f"No paired differences for {a.name} vs {b.name}: {diff}.")
        else:
            paired.append(diff)
        entry = _pair(a, b)
        if isinstance(entry, str):
            notes.append(f"No identifiability for {a.name} vs {b.name}: {entry}.")
        else:
            pairs.append(entry)
    return Comparison(models, rows, _best(rows, columns), groups, tuple(pairs), tuple(notes),
                      paths, kind, tuple(paired))


def short_unique_names(names: Sequence[str]) -> list[str]:
    """The shortest distinct trailing path parts of ``names``: the common prefix removed.

    ``["/home/u/runs/a/seed1/model.pt", "/home/u/runs/a/seed2/model.pt"]`` ->
    ``["seed1/model.pt", "seed2/model.pt"]``; names that are not distinct by any tail
    are kept whole.
    """
    parts = [PurePath(n).parts or (n,) for n in names]
    for k in range(1, max((len(p) for p in parts), default=0) + 1):
        short = ["/".join(p[-k:]) for p in parts]
        if len(set(short)) == len(short):
            return short
    return [str(n) for n in names]
