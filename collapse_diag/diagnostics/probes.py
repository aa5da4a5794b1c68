"""Linear probes: does the latent code carry the known factors of the inputs?

When the inputs come with labels (known factors such as topic or digit class),
a linear classifier is trained to predict each factor from the latent code and
its cross-validated accuracy is compared with the majority-class baseline, in
the manner of the probing classifiers of Alain & Bengio (2016), "Understanding
intermediate layers using linear classifier probes", and of the
disentanglement metrics of Eastwood & Williams (2018).

What is probed. With ``logvar`` given (as ``analyze`` does), the probe reads a
posterior sample ``z = mu(x) + sigma(x) * eps`` (one seeded draw per input): the
code the decoder actually receives. Its accuracy can exceed the baseline only if
``I(z; factor) > 0``, hence ``I(z; x) > 0``, and ``I(z; x) <= E_x KL(q(z|x) || p(z))``:
a collapsed model (KL ~ 0) scores the baseline even when its posterior *means*
still vary faintly with x, because that variation is drowned by sigma ~ 1.
``accuracy_mu`` is the same probe on the noiseless means mu(x): a factor with a
high ``accuracy_mu`` but ``accuracy`` near the baseline is known to the encoder
but lost in the posterior noise (the *noisy* / *weak* signal of the design).

Rules (all numbers in :class:`ProbeResult`):

* features are standardised per dimension inside each training fold, and the
  classifier is an L2-regularised (C = 1) multinomial logistic regression;
* accuracy is stratified k-fold (default 5) cross-validated, folds shuffled with
  ``random_state=seed``; the baseline is the frequency of the most common value;
* a dimension *carries* a factor when a one-dimensional linear classifier
  (linear discriminant analysis) on that dimension alone reaches a
  cross-validated accuracy of at least ``baseline + margin`` (default :data:`PROBE_MARGIN` = 0.05,
  about three standard errors of an accuracy near 0.5 on 1000 inputs);
* a factor with a single value, or with a value seen only once, cannot be
  cross-validated and is skipped with the reason; folds are reduced to the size
  of the rarest value when it has fewer members than ``folds``.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from collapse_diag.diagnostics.spec import DiagnosticSpec, RunContext, SectionRef
from collapse_diag.exceptions import DataError, DiagnosticError, invalid_parameter
from collapse_diag.io.data import validate_labels
from collapse_diag.report.report import ReportSection
from collapse_diag.report.schema import PROBE_KEY as PK
from collapse_diag.report.schema import SUMMARY_KEY as SK

if TYPE_CHECKING:
    from sklearn.model_selection import StratifiedKFold

__all__ = ["PROBE_MARGIN", "SPEC", "ProbeResult", "ProbesResult", "probe_factors"]

#: Accuracy over the majority-class baseline at which a probe counts as recovering
#: its factor (the report's explanation) and one dimension as carrying it (about
#: three standard errors of an accuracy near 0.5 on 1000 inputs). scikit-learn is
#: imported only when a probe runs, so readers of this constant stay light.
PROBE_MARGIN = 0.05


@dataclass(frozen=True)
class ProbeResult:
    """Linear-probe figures of one factor.

    Attributes:
        accuracy: Cross-validated accuracy from the probed code (posterior
            samples when ``logvar`` was given, else the means).
        baseline: Frequency of the most common value (accuracy of always guessing it).
        dimensions: Latent dimensions that alone predict the factor at
            ``>= baseline + margin``, ascending.
        accuracy_mu: Cross-validated accuracy from the posterior means mu(x).
        folds: Number of cross-validation folds used.
    """

    accuracy: float
    baseline: float
    dimensions: list[int]
    accuracy_mu: float
    folds: int


@dataclass(frozen=True)
class ProbesResult:
    """Result of :func:`probe_factors`.

    Attributes:
        factors: Factor name -> :class:`ProbeResult`, in the order of the labels.
        skipped: Factor name -> why it could not be probed.
        margin: Margin over the baseline used to list carrying dimensions.
        sampled: The probe read posterior samples (``logvar`` was given).
    """

    factors: dict[str, ProbeResult]
    skipped: dict[str, str] = field(default_factory=dict)
    margin: float = PROBE_MARGIN
    sampled: bool = False

    def section(self) -> ReportSection:
        """``summary.probes = {factor: {accuracy, baseline, dimensions, accuracy_mu, folds}}``.

        Skipped factors go to ``summary.probes_skipped = {factor: reason}``.
        """
        probes = {
            name: {
                PK.accuracy: r.accuracy,
                PK.baseline: r.baseline,
                PK.dimensions: list(r.dimensions),
                PK.accuracy_mu: r.accuracy_mu,
                PK.folds: r.folds,
            }
            for name, r in self.factors.items()
        }
        return ReportSection(
            summary={SK.probes: probes, SK.probes_skipped: dict(self.skipped)},
            dimensions={},
            distributions={},
        )


def _cv_accuracy(model: object, x: np.ndarray, y: np.ndarray, cv: StratifiedKFold) -> float:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import cross_val_score

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return float(np.mean(cross_val_score(model, x, y, cv=cv, scoring="accuracy")))


def _probe(features: np.ndarray, y: np.ndarray, cv: StratifiedKFold) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
    return _cv_accuracy(clf, features, y, cv)


def _univariate_accuracy(x: np.ndarray, y: np.ndarray, cv: StratifiedKFold) -> np.ndarray:
    """Cross-validated accuracy of a 1-D linear discriminant on each column of ``x``.

    For every dimension d separately: class means m_kd, pooled within-class
    variance s_d^2 and class frequencies pi_k on the training fold; a test input
    is assigned ``argmax_k log pi_k - (x_d - m_kd)^2 / (2 s_d^2)`` (linear
    discriminant analysis on one feature). Vectorised over dimensions.

    Returns:
        Accuracy per dimension, shape ``(D,)``, averaged over the folds.
    """
    classes, codes = np.unique(y, return_inverse=True)
    scores = []
    for train, test in cv.split(x, codes):
        xt, ct = x[train], codes[train]
        onehot = np.eye(len(classes))[ct]  # (n, K)
        counts = onehot.sum(axis=0)  # (K,)
        means = onehot.T @ xt / counts[:, None]  # (K, D)
        resid = xt - means[ct]
        var = np.maximum((resid**2).sum(axis=0) / max(len(ct) - len(classes), 1), 1e-300)
        logits = np.log(counts / len(ct))[None, :, None] - (
            (x[test][:, None, :] - means[None]) ** 2 / (2.0 * var)
        )  # (n_test, K, D)
        scores.append((logits.argmax(axis=1) == codes[test][:, None]).mean(axis=0))
    return np.mean(scores, axis=0)


def _validate(
    mu: np.ndarray, labels: Mapping[str, np.ndarray], logvar: np.ndarray | None, folds: int
) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray | None]:
    mu = np.asarray(mu, dtype=np.float64)
    if mu.ndim != 2 or mu.shape[0] == 0 or mu.shape[1] == 0:
        raise DataError(f"probe_factors needs mu of shape (N, D) with N, D >= 1; got {mu.shape}.")
    if not np.all(np.isfinite(mu)):
        raise DataError("probe_factors: mu contains NaN or Inf.")
    if logvar is not None:
        logvar = np.asarray(logvar, dtype=np.float64)
        if logvar.shape != mu.shape or not np.all(np.isfinite(logvar)):
            raise DataError(
                f"probe_factors: logvar must be finite with the shape of mu {mu.shape}; "
                f"got shape {logvar.shape}."
            )
    if not isinstance(folds, (int, np.integer)) or isinstance(folds, bool) or folds < 2:
        raise invalid_parameter("folds", "probe_factors", "an int >= 2", folds)
    return mu, validate_labels(labels, mu.shape[0]), logvar


def probe_factors(
    mu: np.ndarray,
    labels: Mapping[str, np.ndarray],
    seed: int,
    folds: int = 5,
    logvar: np.ndarray | None = None,
    margin: float = PROBE_MARGIN,
) -> ProbesResult:
    """Cross-validated linear probes of each known factor (see the module docstring).

    Args:
        mu: Posterior means, shape ``(N, D)``.
        labels: Factor name -> integer labels, shape ``(N,)`` each.
        seed: Seeds the fold shuffling and the posterior draws.
        folds: Cross-validation folds (reduced for rare values).
        logvar: Posterior log-variances, shape ``(N, D)``. When given, the probe
            reads one posterior sample per input (recommended); else the means.
        margin: A dimension carries a factor when it alone reaches
            ``baseline + margin`` accuracy.

    Returns:
        A :class:`ProbesResult`.

    Raises:
        DataError: malformed ``mu``, ``logvar`` or labels.
        InvalidParameterError: ``folds`` < 2.
    """
    from sklearn.model_selection import StratifiedKFold

    mu, arrays, logvar = _validate(mu, labels, logvar, folds)
    if logvar is None:
        features = mu
    else:
        eps = np.random.default_rng(seed).standard_normal(mu.shape)
        features = mu + np.exp(0.5 * logvar) * eps
    results: dict[str, ProbeResult] = {}
    skipped: dict[str, str] = {}
    for name, y in arrays.items():
        values, counts = np.unique(y, return_counts=True)
        if len(values) < 2:
            skipped[name] = f"a single value ({values[0]}) for all {len(y)} inputs"
            continue
        if counts.min() < 2:
            skipped[name] = f"value {values[counts.argmin()]} occurs once: cannot cross-validate"
            continue
        k = int(min(folds, counts.min()))
        cv = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
        baseline = float(counts.max() / len(y))
        accuracy = _probe(features, y, cv)
        accuracy_mu = accuracy if logvar is None else _probe(mu, y, cv)
        per_dim = _univariate_accuracy(features, y, cv)
        dims = [int(d) for d in np.flatnonzero(per_dim >= baseline + margin)]
        results[name] = ProbeResult(accuracy, baseline, dims, accuracy_mu, k)
    return ProbesResult(factors=results, skipped=skipped, margin=margin,
                        sampled=logvar is not None)


def _run(context: RunContext) -> ProbesResult | None:
    if not context.labels:
        return None
    if context.encodings.sequential:
        raise DiagnosticError("the linear probes do not support sequential latents z [B, T, D] "
                              "yet: analyse without --labels.")
    return probe_factors(context.encodings.mu, context.labels, seed=context.settings.seed,
                         logvar=context.encodings.logvar)


SPEC = DiagnosticSpec(
    name="probes",
    min_inputs=4,
    run=_run,
    sections=(
        SectionRef("Known factors", "known-factors",
                   "Accuracy of a linear probe predicting each labelled factor from one sampled "
                   "code z ~ q(z|x) per input (what the decoder receives), beside the same probe "
                   "on the noiseless means mu(x), against the baseline accuracy of a predictor "
                   "that does not look at z.",
                   "collapse_diag.render.tables:probes_table"),
    ),
    explanation=("collapse_diag.render.explain:probes_text",),
)
