"""What monitoring sees of the records a model scored: input signals, class probabilities, penultimate features.

A served model asked with ``params={"monitoring": True}`` appends to its answers
one ``input_<signal>`` column per input signal (``dlflow.monitoring.signals``)
and one ``feature_<i>`` column per penultimate feature
(:func:`monitoring_columns`). :func:`split_answers` takes them back out, so the
answers are written as usual and the rest becomes an :class:`Observations`
sample: the same arrays for the reference profile (made at registration) and
for a batch (accumulated chunk by chunk by :class:`BatchObservations`, which
keeps a uniform sample of bounded size, whatever the size of the input).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

INPUT_PREFIX = "input_"
FEATURE_PREFIX = "feature_"


@dataclass(frozen=True)
class Observations:
    """One row per record: ``inputs`` float64 ``(N, k)`` named ``input_names``, ``probabilities`` float64
    ``(N, C)``, ``features`` float32 ``(N, D)``."""

    input_names: tuple[str, ...]
    inputs: np.ndarray
    probabilities: np.ndarray
    features: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.probabilities)
        if self.inputs.shape != (n, len(self.input_names)) or len(self.features) != n:
            raise ValueError(
                f"observations disagree: inputs {self.inputs.shape} for {len(self.input_names)} signals, "
                f"probabilities {self.probabilities.shape}, features {self.features.shape}"
            )

    def __len__(self) -> int:
        return len(self.probabilities)

    def take(self, rows: np.ndarray) -> Observations:
        return Observations(self.input_names, self.inputs[rows], self.probabilities[rows], self.features[rows])

    def as_sample(self) -> dict[str, np.ndarray]:
        """The arrays by name, as the checks (``dlflow.monitoring.checks``) take them."""
        return {"inputs": self.inputs, "probabilities": self.probabilities, "features": self.features}

    @staticmethod
    def concatenate(parts: list[Observations]) -> Observations:
        first = parts[0]
        return Observations(
            first.input_names,
            np.concatenate([p.inputs for p in parts]),
            np.concatenate([p.probabilities for p in parts]),
            np.concatenate([p.features for p in parts]),
        )


def monitoring_columns(signal_names: tuple[str, ...], signals: np.ndarray, features: np.ndarray) -> pd.DataFrame:
    """The columns a model appends to its answers for monitoring: ``input_<name>`` then ``feature_<i>``."""
    columns = {f"{INPUT_PREFIX}{name}": signals[:, i] for i, name in enumerate(signal_names)}
    frame = pd.DataFrame(columns)
    feature_frame = pd.DataFrame(
        np.asarray(features, dtype=np.float32), columns=[f"{FEATURE_PREFIX}{i}" for i in range(features.shape[1])]
    )
    return pd.concat([frame, feature_frame], axis=1)


def split_answers(answers: pd.DataFrame, class_names: list[str]) -> tuple[pd.DataFrame, Observations]:
    """``answers`` without the monitoring columns, and those columns (with ``p_<class>``) as :class:`Observations`."""
    inputs = [c for c in answers.columns if c.startswith(INPUT_PREFIX)]
    features = [c for c in answers.columns if c.startswith(FEATURE_PREFIX)]
    if not inputs or not features:
        raise ValueError("the model's answers carry no monitoring columns: was it asked with params={'monitoring': True}?")
    probabilities = answers[[f"p_{name}" for name in class_names]].to_numpy(np.float64)
    observed = Observations(
        tuple(c[len(INPUT_PREFIX) :] for c in inputs),
        answers[inputs].to_numpy(np.float64),
        probabilities,
        answers[features].to_numpy(np.float32),
    )
    return answers.drop(columns=inputs + features), observed


@dataclass
class BatchObservations:
    """A batch seen chunk by chunk: a uniform sample of at most ``keep`` records' observations (each record gets a
    seeded random key; the ``keep`` smallest stay), the count of every predicted class over all records and,
    where labels came back, the confusion matrix (rows: label, columns: prediction) over all labelled records.

    Memory is bounded by ``keep``, not by the input. ``finished`` is set once the
    last chunk was seen (the scoring loop ran to its end).
    """

    num_classes: int
    keep: int = 5000
    seed: int = 0
    monitored: bool = True  # False: the records are counted, nothing else (no profile to compare with, or monitoring off)
    records: int = 0
    finished: bool = False
    predicted: np.ndarray = field(init=False)
    confusion: np.ndarray = field(init=False)
    labelled: int = 0
    _sample: Observations | None = field(default=None, init=False, repr=False)
    _keys: np.ndarray = field(default_factory=lambda: np.empty(0), init=False, repr=False)

    def __post_init__(self) -> None:
        self.predicted = np.zeros(self.num_classes, np.int64)
        self.confusion = np.zeros((self.num_classes, self.num_classes), np.int64)
        self._rng = np.random.default_rng(self.seed)

    def observe(self, observed: Observations, labels: np.ndarray | None = None) -> None:
        """Add one chunk: its observations and, when the input carried them, its labels (class indices)."""
        predictions = observed.probabilities.argmax(axis=1)
        self.predicted += np.bincount(predictions, minlength=self.num_classes)
        if labels is not None:
            labels = np.asarray(labels, dtype=np.int64)
            np.add.at(self.confusion, (labels, predictions), 1)
            self.labelled += len(labels)
        self.records += len(observed)
        keys = self._rng.random(len(observed))
        if self._sample is None:
            merged, merged_keys = observed, keys
        else:
            merged, merged_keys = Observations.concatenate([self._sample, observed]), np.concatenate([self._keys, keys])
        if len(merged) > self.keep:
            kept = np.sort(np.argpartition(merged_keys, self.keep - 1)[: self.keep])
            merged, merged_keys = merged.take(kept), merged_keys[kept]
        self._sample, self._keys = merged, merged_keys

    @property
    def sample(self) -> Observations | None:
        """The kept observations (all of them while the batch has at most ``keep`` records); None before any chunk."""
        return self._sample
