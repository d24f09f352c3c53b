"""Drift and live-quality statistics: pure functions of a reference sample and a batch, no framework.

A *sample* (the reference profile's or a batch's) is a dict of numpy arrays with one row per record:

``inputs``         float64 ``(N, k)`` cheap per-record input signals (``signals.py``), names given separately
``probabilities``  float64 ``(N, C)`` the model's class probabilities
``features``       float ``(N, D)`` the network's penultimate features (the input of its last linear layer)

Each check answers one question with a two-sample test and returns a :class:`CheckResult`:

- ``input.<name>``: has this input signal's distribution moved? Two-sample Kolmogorov-Smirnov.
- ``prediction.classes``: are the classes predicted in other proportions? Chi-squared test of the
  2 x C contingency table of predicted-class counts (classes too rare for the test pooled).
- ``prediction.confidence``: is the model more or less sure than on the reference? KS on the top probability.
- ``feature.mmd``: has the distribution of what the network sees moved, in any direction of its
  feature space? Squared maximum mean discrepancy with a Gaussian kernel, its bandwidth the median
  pairwise distance, and a permutation p-value (Gretton et al., JMLR 2012).

:func:`run_checks` runs them all and applies a :class:`Policy`: the p-values of the checks that may
alert are corrected for their number (Bonferroni or Holm), and the batch is said to drift when the
smallest corrected p-value is below ``alpha``; a batch under ``min_batch_size`` records is not judged.
:func:`live_quality` scores predictions once their labels come back, against the champion's test accuracy.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

KINDS = ("input", "prediction", "feature", "quality")
CORRECTIONS = ("bonferroni", "holm", "none")
MIN_EXPECTED = 5.0  # chi-squared: classes expected fewer times than this in either sample are pooled
MIN_P_VALUE = 1e-300  # -log10 of a p-value that underflowed to 0 stays finite


@dataclass(frozen=True)
class CheckResult:
    """One test of a batch against the reference.

    ``statistic`` is the test's own (KS D, chi-squared, MMD squared, ...), ``p_value`` its p-value (a
    permutation p-value for MMD); ``detail`` holds JSON-able extras for the report. ``run_checks``
    fills ``corrected_p_value`` (the p-value corrected for the number of alerting checks) and
    ``alerting`` (whether the policy lets this check raise the alert); otherwise they stay ``None``
    and ``False``.
    """

    name: str
    kind: str
    statistic: float
    p_value: float
    detail: dict = field(default_factory=dict)
    corrected_p_value: float | None = None
    alerting: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"check {self.name!r}: kind must be one of {KINDS}, got {self.kind!r}")
        if not 0.0 <= self.p_value <= 1.0:
            raise ValueError(f"check {self.name!r}: p-value {self.p_value} is outside [0, 1]")

    def to_dict(self) -> dict:
        """This result as plain JSON-able values."""
        return _jsonable(dataclasses.asdict(self))


@dataclass(frozen=True)
class Policy:
    """When a batch counts as drifted (``conf/base/parameters_monitoring.yml``, validated by the caller).

    ``min_batch_size``: smaller batches are not judged. ``alpha``: the family-wise false-alarm rate
    per batch. ``correction``: how the p-values of the alerting checks are corrected for their number
    (``bonferroni``, ``holm`` or ``none``). ``alert_on``: the kinds of check that can raise the alert
    (the others are reported only). ``permutations``: of the MMD test.
    """

    min_batch_size: int = 200
    alpha: float = 0.05
    correction: str = "bonferroni"
    alert_on: tuple[str, ...] = ("input", "prediction", "feature")
    permutations: int = 500

    def __post_init__(self) -> None:
        if self.min_batch_size < 2:
            raise ValueError(f"min_batch_size must be at least 2, got {self.min_batch_size}")
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha must be between 0 and 1, got {self.alpha}")
        if self.correction not in CORRECTIONS:
            raise ValueError(f"correction must be one of {CORRECTIONS}, got {self.correction!r}")
        unknown = sorted(set(self.alert_on) - set(KINDS))
        if unknown:
            raise ValueError(f"alert_on has unknown kinds {unknown}: each must be one of {KINDS}")
        if self.permutations < 1:
            raise ValueError(f"permutations must be at least 1, got {self.permutations}")

    @property
    def threshold(self) -> float:
        """The drift score above which a batch alerts: ``-log10(alpha)``."""
        return -math.log10(self.alpha)


@dataclass(frozen=True)
class Decision:
    """The verdict on one batch: ``drift_score`` is ``-log10`` of the smallest corrected p-value among
    the alerting checks (0 when not judged), and ``drift_detected`` is ``drift_score > threshold``."""

    judged: bool
    drift_detected: bool
    drift_score: float
    threshold: float
    results: list[CheckResult]
    reason: str

    def to_dict(self) -> dict:
        return _jsonable(dataclasses.asdict(self))


# --------------------------------------------------------------------------------------------- checks


def input_checks(reference: np.ndarray, batch: np.ndarray, names: Sequence[str]) -> list[CheckResult]:
    """A two-sample KS test per column of the ``(N, k)`` input signals, named ``input.<name>``."""
    reference = _matrix(reference, "reference inputs")
    batch = _matrix(batch, "batch inputs")
    names = list(names)
    if reference.shape[1] != len(names) or batch.shape[1] != len(names):
        raise ValueError(
            f"{len(names)} input names {names} for {reference.shape[1]} reference and {batch.shape[1]} batch columns"
        )
    results = []
    for column, name in enumerate(names):
        ref, new = reference[:, column], batch[:, column]
        test = stats.ks_2samp(ref, new, method="asymp")
        results.append(
            CheckResult(
                name=f"input.{name}",
                kind="input",
                statistic=float(test.statistic),
                p_value=_p(test.pvalue),
                detail={"reference": _summary(ref), "batch": _summary(new)},
            )
        )
    return results


def class_proportion_check(reference_probs: np.ndarray, batch_probs: np.ndarray) -> CheckResult:
    """Chi-squared test of the predicted-class counts (arg max of each row), reference against batch.

    Classes expected fewer than ``MIN_EXPECTED`` times in either sample are pooled into one
    category (and classes never predicted dropped), so the chi-squared approximation holds; with
    fewer than two categories left there is nothing to compare (statistic 0, p-value 1).
    """
    reference_probs, batch_probs = _probabilities(reference_probs, batch_probs)
    classes = reference_probs.shape[1]
    counts = np.stack([np.bincount(p.argmax(axis=1), minlength=classes) for p in (reference_probs, batch_probs)]).astype(
        np.float64
    )
    totals = counts.sum(axis=1, keepdims=True)
    expected = counts.sum(axis=0, keepdims=True) * totals / totals.sum()
    sparse = (expected < MIN_EXPECTED).any(axis=0)
    table = counts[:, ~sparse]
    if sparse.any() and counts[:, sparse].sum() > 0:
        table = np.concatenate([table, counts[:, sparse].sum(axis=1, keepdims=True)], axis=1)
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        statistic, p_value, dof = 0.0, 1.0, 0
    else:
        test = stats.chi2_contingency(table, correction=False)
        statistic, p_value, dof = float(test.statistic), _p(test.pvalue), int(test.dof)
    shares = counts / totals
    return CheckResult(
        name="prediction.classes",
        kind="prediction",
        statistic=statistic,
        p_value=p_value,
        detail={
            "reference_share": shares[0].tolist(),
            "batch_share": shares[1].tolist(),
            "pooled_classes": np.flatnonzero(sparse).tolist(),
            "degrees_of_freedom": dof,
        },
    )


def confidence_check(reference_probs: np.ndarray, batch_probs: np.ndarray) -> CheckResult:
    """Two-sample KS test of the top class probability of each record (the model's confidence)."""
    reference_probs, batch_probs = _probabilities(reference_probs, batch_probs)
    ref, new = reference_probs.max(axis=1), batch_probs.max(axis=1)
    test = stats.ks_2samp(ref, new, method="asymp")
    return CheckResult(
        name="prediction.confidence",
        kind="prediction",
        statistic=float(test.statistic),
        p_value=_p(test.pvalue),
        detail={"reference": _summary(ref), "batch": _summary(new)},
    )


def mmd_check(
    reference_features: np.ndarray,
    batch_features: np.ndarray,
    *,
    permutations: int = 500,
    max_reference: int = 2000,
    max_batch: int = 2000,
    seed: int = 0,
) -> CheckResult:
    """Unbiased squared MMD between the feature rows, Gaussian kernel, permutation p-value.

    The rows are standardised with the pooled mean and standard deviation (so no feature dominates
    by its scale; columns constant in both samples are dropped) and the kernel's bandwidth is the
    median pairwise squared distance of the pooled rows: both depend on the pooled rows only, so the
    permutation test stays exact. Samples larger than ``max_reference`` / ``max_batch`` rows are
    subsampled (seeded by ``seed``): with a thousand or more rows a side the test already sees
    small shifts, and the kernel matrix grows with the square of the rows.

    Fast: the kernel matrix is computed once; every permutation is a column of a 0/1 matrix ``Z``
    marking its "batch" rows, and one matrix product ``K @ Z`` gives every permutation's
    within-batch and cross sums (``z' K z`` and ``z' K 1``), from which the statistic follows.
    The p-value is ``(1 + #{permuted >= observed}) / (1 + permutations)``.
    """
    if permutations < 1:
        raise ValueError(f"permutations must be at least 1, got {permutations}")
    if max_reference < 2 or max_batch < 2:
        raise ValueError(f"max_reference and max_batch must be at least 2, got {max_reference} and {max_batch}")
    reference = _matrix(reference_features, "reference features")
    batch = _matrix(batch_features, "batch features")
    if reference.shape[1] != batch.shape[1]:
        raise ValueError(f"reference features have {reference.shape[1]} columns, batch features {batch.shape[1]}")
    rng = np.random.default_rng(seed)
    reference = _subsample(reference, max_reference, rng)
    batch = _subsample(batch, max_batch, rng)
    n_x, n_y = len(reference), len(batch)
    if n_x < 2 or n_y < 2:
        raise ValueError(f"MMD needs at least 2 rows a side, got {n_x} reference and {n_y} batch rows")

    pooled = np.concatenate([reference, batch]).astype(np.float64)
    scale = pooled.std(axis=0)
    varying = scale > 1e-12 * max(float(scale.max()), 1.0)
    if not varying.any():  # every feature constant in both samples: nothing can differ
        return _mmd_result(0.0, 1.0, permutations, n_x, n_y, bandwidth=0.0, null=np.zeros(1))
    pooled = ((pooled[:, varying] - pooled[:, varying].mean(axis=0)) / scale[varying]).astype(np.float32)

    kernel, bandwidth = _gaussian_kernel(pooled, rng)
    n = n_x + n_y
    # column 0: the observed split; columns 1..: random splits with n_y "batch" rows each
    labels = np.zeros((permutations + 1, n), dtype=np.float32)
    labels[:, n_x:] = 1.0
    labels[1:] = rng.permuted(labels[1:], axis=1)
    within = np.einsum("pn,np->p", labels, kernel @ labels.T, dtype=np.float64)  # z' K z
    row_sums = kernel.sum(axis=1, dtype=np.float64)
    cross_and_within = labels.astype(np.float64) @ row_sums  # z' K 1
    total = row_sums.sum()
    k_yy = within
    k_xy = cross_and_within - within
    k_xx = total - 2 * cross_and_within + within
    diagonal = 1.0  # exp(0)
    mmd2 = (k_xx - n_x * diagonal) / (n_x * (n_x - 1)) + (k_yy - n_y * diagonal) / (n_y * (n_y - 1)) - 2 * k_xy / (n_x * n_y)
    observed, null = float(mmd2[0]), mmd2[1:]
    p_value = (1 + int(np.count_nonzero(null >= observed))) / (1 + permutations)
    return _mmd_result(observed, p_value, permutations, n_x, n_y, bandwidth=bandwidth, null=null)


def _gaussian_kernel(rows: np.ndarray, rng: np.random.Generator, max_pairs: int = 200_000) -> tuple[np.ndarray, float]:
    """float32 ``exp(-|x - y|^2 / h)`` of every pair of ``rows``, ``h`` the median squared distance
    (over every pair, or a seeded sample of ``max_pairs`` pairs when there are more); and ``h``."""
    norms = np.einsum("nd,nd->n", rows, rows)
    distances = rows @ rows.T
    distances *= -2.0
    distances += norms[:, None]
    distances += norms[None, :]
    np.maximum(distances, 0.0, out=distances)
    np.fill_diagonal(distances, 0.0)
    n = len(rows)
    if n * (n - 1) // 2 <= max_pairs:  # every pair: the bandwidth does not depend on the order of the rows
        first, second = np.triu_indices(n, k=1)
    else:
        first = rng.integers(0, n, max_pairs)
        second = rng.integers(0, n - 1, max_pairs)
        second += second >= first  # a different row
    bandwidth = float(np.median(distances[first, second]))
    if bandwidth <= 0.0:  # most rows identical: fall back to the mean distance
        bandwidth = float(distances.mean()) or 1.0
    distances *= -1.0 / bandwidth
    return np.exp(distances, out=distances), bandwidth


def _mmd_result(
    statistic: float, p_value: float, permutations: int, n_x: int, n_y: int, *, bandwidth: float, null: np.ndarray
) -> CheckResult:
    return CheckResult(
        name="feature.mmd",
        kind="feature",
        statistic=statistic,
        p_value=p_value,
        detail={
            "reference_rows": n_x,
            "batch_rows": n_y,
            "permutations": permutations,
            "bandwidth": bandwidth,
            "null_mean": float(null.mean()),
            "null_q95": float(np.quantile(null, 0.95)),
            "min_attainable_p": 1 / (1 + permutations),
        },
    )


# ---------------------------------------------------------------------------------- policy, decision


def run_checks(
    reference: dict[str, np.ndarray],
    batch: dict[str, np.ndarray],
    input_names: Sequence[str],
    policy: Policy,
    seed: int = 0,
    extra: Sequence[CheckResult] = (),
) -> Decision:
    """Every check the two samples allow, corrected and judged by ``policy``.

    Both samples must have the same keys among ``inputs``, ``probabilities`` and ``features``
    (at least one). ``extra`` results (e.g. :func:`live_quality`'s ``check``) join the family.
    A batch of fewer than ``policy.min_batch_size`` rows is not judged, and no check is run.
    """
    known = ("inputs", "probabilities", "features")
    keys = [k for k in known if k in reference or k in batch]
    unknown = sorted((set(reference) | set(batch)) - set(known))
    if unknown:
        raise ValueError(f"unknown sample keys {unknown}: expected some of {list(known)}")
    if not keys:
        raise ValueError(f"the samples hold none of {list(known)}")
    for key in keys:
        if key not in reference or key not in batch:
            side = "reference" if key not in reference else "batch"
            raise ValueError(f"the {side} has no {key!r} while the other sample has")
    rows = {len(np.asarray(batch[k])) for k in keys}
    if len(rows) > 1:
        raise ValueError(f"the batch's arrays differ in rows: { ({k: len(np.asarray(batch[k])) for k in keys}) }")
    batch_rows = rows.pop()
    threshold = policy.threshold
    if batch_rows < policy.min_batch_size:
        reason = f"batch of {batch_rows} records < min_batch_size {policy.min_batch_size}: not judged"
        return Decision(False, False, 0.0, threshold, list(extra), reason)

    results: list[CheckResult] = []
    family = (
        (len(input_names) if "inputs" in keys and "input" in policy.alert_on else 0)
        + (2 if "probabilities" in keys and "prediction" in policy.alert_on else 0)
        + (1 if "features" in keys and "feature" in policy.alert_on else 0)
        + sum(r.kind in policy.alert_on for r in extra)
    )
    if "inputs" in keys:
        results += input_checks(reference["inputs"], batch["inputs"], input_names)
    if "probabilities" in keys:
        results += [
            class_proportion_check(reference["probabilities"], batch["probabilities"]),
            confidence_check(reference["probabilities"], batch["probabilities"]),
        ]
    if "features" in keys:
        permutations = enough_permutations(policy.permutations, family, policy.alpha)
        results.append(mmd_check(reference["features"], batch["features"], permutations=permutations, seed=seed))
    results += list(extra)
    return judge(results, policy)


def judge(results: Sequence[CheckResult], policy: Policy) -> Decision:
    """The decision on a batch of checked ``results`` (already judged large enough): correct the
    alerting checks' p-values for their number and compare the smallest with ``alpha``."""
    alerting = [i for i, r in enumerate(results) if r.kind in policy.alert_on]
    corrected = correct([results[i].p_value for i in alerting], policy.correction)
    judged = [dataclasses.replace(r, alerting=False, corrected_p_value=None) for r in results]
    for i, p in zip(alerting, corrected, strict=True):
        judged[i] = dataclasses.replace(judged[i], alerting=True, corrected_p_value=p)
    threshold = policy.threshold
    if not alerting:
        reason = f"no check can alert: none of the {len(results)} checks is of a kind in alert_on {list(policy.alert_on)}"
        return Decision(True, False, 0.0, threshold, judged, reason)
    worst = min((judged[i] for i in alerting), key=lambda r: r.corrected_p_value)
    score = -math.log10(max(worst.corrected_p_value, MIN_P_VALUE))
    family = f"{policy.correction} over {len(alerting)} checks" if policy.correction != "none" else "uncorrected"
    if score > threshold:
        fired = sorted(
            (r for r in judged if r.alerting and r.corrected_p_value < policy.alpha), key=lambda r: r.corrected_p_value
        )
        named = ", ".join(f"{r.name} (p {r.corrected_p_value:.2g})" for r in fired[:4])
        more = f" and {len(fired) - 4} more" if len(fired) > 4 else ""
        reason = f"drift: {named}{more} below alpha {policy.alpha} ({family})"
    else:
        reason = (
            f"no drift: the smallest corrected p-value, {worst.corrected_p_value:.2g} ({worst.name}), "
            f"is not below alpha {policy.alpha} ({family})"
        )
    return Decision(True, score > threshold, score, threshold, judged, reason)


def correct(p_values: Sequence[float], method: str) -> list[float]:
    """``p_values`` corrected for their number: ``bonferroni`` (times m, at most 1), ``holm``
    (step-down: the i-th smallest times m - i + 1, made monotone) or ``none``."""
    if method not in CORRECTIONS:
        raise ValueError(f"correction must be one of {CORRECTIONS}, got {method!r}")
    p = np.asarray(p_values, dtype=np.float64)
    m = len(p)
    if method == "none" or m == 0:
        return p.tolist()
    if method == "bonferroni":
        return np.minimum(p * m, 1.0).tolist()
    order = np.argsort(p, kind="stable")
    stepped = np.minimum(np.maximum.accumulate(p[order] * (m - np.arange(m))), 1.0)
    adjusted = np.empty(m)
    adjusted[order] = stepped
    return adjusted.tolist()


def enough_permutations(permutations: int, family: int, alpha: float) -> int:
    """``permutations``, raised where needed so that a permutation test can alert on its own.

    Its p-value is at least ``1 / (1 + permutations)``, and corrected over ``family`` checks at least
    ``family`` times that: with too few permutations (say 19 for 7 checks at alpha 0.05) the feature
    check could never alert however strong the drift. So at least ``2 * family / alpha`` are used,
    which puts the smallest corrected p-value at ``alpha / 2``.
    """
    return max(permutations, math.ceil(2 * max(family, 1) / alpha) - 1)


# ------------------------------------------------------------------------------------------ quality


def live_quality(
    labels: np.ndarray,
    predictions: np.ndarray,
    num_classes: int,
    reference_accuracy: float,
    reference_n: int,
    alpha: float = 0.05,
    *,
    bootstrap: int = 2000,
    seed: int = 0,
) -> dict:
    """How well the model did on records whose labels came back, against its test accuracy.

    Accuracy with a 95 % Wilson interval; macro-F1 (mean over the classes present in labels or
    predictions) with a 95 % percentile-bootstrap interval over the records; and a one-sided
    Fisher exact test that the live accuracy is below the champion's ``reference_accuracy``,
    measured on ``reference_n`` test records. ``check`` is that test as a ``quality`` CheckResult
    (statistic: live minus reference accuracy), for ``run_checks(extra=...)``.
    """
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    if labels.ndim != 1 or predictions.shape != labels.shape:
        raise ValueError(f"labels and predictions must be equal-length vectors, got {labels.shape} and {predictions.shape}")
    if len(labels) == 0:
        raise ValueError("no labelled records to score")
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}")
    for name, values in (("labels", labels), ("predictions", predictions)):
        if not np.issubdtype(values.dtype, np.integer):
            raise ValueError(f"{name} must be integer class indices, got {values.dtype}")
        if values.min() < 0 or values.max() >= num_classes:
            raise ValueError(f"{name} must lie in 0..{num_classes - 1}, got {values.min()}..{values.max()}")
    if not 0.0 <= reference_accuracy <= 1.0:
        raise ValueError(f"reference_accuracy must be in [0, 1], got {reference_accuracy}")
    if reference_n < 1:
        raise ValueError(f"reference_n must be at least 1, got {reference_n}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")

    n = len(labels)
    correct_n = int((labels == predictions).sum())
    accuracy = correct_n / n
    wilson = stats.binomtest(correct_n, n).proportion_ci(confidence_level=0.95, method="wilson")
    cells = np.bincount(labels * num_classes + predictions, minlength=num_classes**2).astype(np.float64)
    present = (np.bincount(labels, minlength=num_classes) + np.bincount(predictions, minlength=num_classes)) > 0
    macro_f1 = float(_macro_f1(cells[None], num_classes, present)[0])
    # resampling records with replacement = a multinomial draw of the confusion matrix's cells
    draws = np.random.default_rng(seed).multinomial(n, cells / n, size=bootstrap).astype(np.float64)
    f1_low, f1_high = np.nanquantile(_macro_f1(draws, num_classes, present), [0.025, 0.975])
    reference_correct = round(reference_accuracy * reference_n)
    table = [[correct_n, n - correct_n], [reference_correct, reference_n - reference_correct]]
    p_value = _p(stats.fisher_exact(table, alternative="less").pvalue)
    check = CheckResult(
        name="quality.accuracy",
        kind="quality",
        statistic=accuracy - reference_accuracy,
        p_value=p_value,
        detail={"labelled": n, "accuracy": accuracy, "reference_accuracy": reference_accuracy, "reference_n": reference_n},
    )
    return {
        "labelled": n,
        "accuracy": accuracy,
        "accuracy_ci95": [float(wilson.low), float(wilson.high)],
        "macro_f1": macro_f1,
        "macro_f1_ci95": [float(f1_low), float(f1_high)],
        "reference_accuracy": reference_accuracy,
        "reference_n": reference_n,
        "drop_p_value": p_value,
        "drop_detected": p_value < alpha,
        "check": check,
    }


def _macro_f1(cells: np.ndarray, num_classes: int, present: np.ndarray) -> np.ndarray:
    """Macro-F1 of each row of flattened confusion matrices ``(B, C*C)`` (label-major), over ``present`` classes."""
    confusion = cells.reshape(len(cells), num_classes, num_classes)
    true_positive = np.einsum("bcc->bc", confusion)
    denominator = confusion.sum(axis=2) + confusion.sum(axis=1)  # 2 tp + fn + fp
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(denominator > 0, 2 * true_positive / denominator, 0.0)
    return f1[:, present].mean(axis=1)


# ---------------------------------------------------------------------------------------- validation


def _matrix(values: Any, what: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 2:
        raise ValueError(f"{what} must be a 2-D (rows, columns) array, got shape {array.shape}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"{what} are empty (shape {array.shape})")
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise ValueError(f"{what} must be real numbers, got {array.dtype}")
    bad = ~np.isfinite(array).all(axis=1)
    if bad.any():
        raise ValueError(f"{what} have NaN or infinite values in {int(bad.sum())} rows (first: row {int(np.argmax(bad))})")
    return array


def _probabilities(reference: Any, batch: Any) -> tuple[np.ndarray, np.ndarray]:
    reference = _matrix(reference, "reference probabilities")
    batch = _matrix(batch, "batch probabilities")
    if reference.shape[1] != batch.shape[1]:
        raise ValueError(f"reference probabilities have {reference.shape[1]} classes, batch {batch.shape[1]}")
    if reference.shape[1] < 2:
        raise ValueError(f"probabilities need at least 2 classes, got {reference.shape[1]}")
    for what, p in (("reference", reference), ("batch", batch)):
        if (p < 0).any() or (p > 1 + 1e-6).any():
            raise ValueError(f"{what} probabilities must lie in [0, 1]")
    return reference, batch


def _subsample(rows: np.ndarray, limit: int, rng: np.random.Generator) -> np.ndarray:
    return rows if len(rows) <= limit else rows[np.sort(rng.choice(len(rows), limit, replace=False))]


def _summary(values: np.ndarray) -> dict:
    return {"mean": float(values.mean()), "std": float(values.std()), "median": float(np.median(values)), "n": len(values)}


def _p(value: float) -> float:
    return float(min(max(value, 0.0), 1.0))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value
