"""The reference profile: what monitoring compares a batch with, made once when a model is registered.

It holds, for held-out test records the model never trained on, the same
observations a batch-inference run collects (input signals, class
probabilities, penultimate features: ``dlflow.monitoring.observations``), the
records' labels, and the model's test quality (accuracy, macro-F1, expected
calibration error) over the whole test set. So a batch job never needs the
training data. ``rows`` are the test-table rows the profile was built from: the
monitoring benchmark draws its batches from the other rows only.

Stored as one ``.npz`` file (arrays, plus a JSON ``meta`` entry), logged to the
training run and pointed at by the registered version's tag
``monitoring.profile`` (``dlflow.model_registry``).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dlflow.monitoring.observations import Observations

PROFILE_VERSION = 1


@dataclass(frozen=True)
class ReferenceProfile:
    """``family`` (cnn, rnn), ``class_names``, held-out ``observations`` with their ``labels`` and test-table
    ``rows``, and ``test``: the model's test quality (``accuracy``, ``macro_f1``, ``records``, ``ece``)."""

    family: str
    class_names: list[str]
    observations: Observations
    labels: np.ndarray
    rows: np.ndarray
    test: dict[str, float]
    about: dict[str, Any] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        meta = {
            "version": PROFILE_VERSION, "family": self.family, "class_names": self.class_names,
            "input_names": list(self.observations.input_names), "test": self.test, "about": self.about,
        }  # fmt: skip
        buffer = io.BytesIO()
        np.savez_compressed(
            buffer,
            meta=np.array(json.dumps(meta)),
            inputs=self.observations.inputs,
            probabilities=self.observations.probabilities,
            features=self.observations.features,
            labels=self.labels.astype(np.int64),
            rows=self.rows.astype(np.int64),
        )
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "the profile") -> ReferenceProfile:
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
                meta = json.loads(str(arrays["meta"]))
                observations = Observations(
                    tuple(meta["input_names"]), arrays["inputs"], arrays["probabilities"], arrays["features"]
                )
                labels, rows = arrays["labels"], arrays["rows"]
        except (OSError, ValueError, KeyError) as error:
            raise ValueError(f"{source} is not a dlflow reference profile ({error})") from None
        if meta.get("version") != PROFILE_VERSION:
            raise ValueError(f"{source} is a version {meta.get('version')} profile; this dlflow reads version {PROFILE_VERSION}")
        return cls(meta["family"], meta["class_names"], observations, labels, rows, meta["test"], meta.get("about", {}))

    def save(self, path: str | Path) -> None:
        Path(path).write_bytes(self.to_bytes())

    @classmethod
    def load(cls, path: str | Path) -> ReferenceProfile:
        return cls.from_bytes(Path(path).read_bytes(), str(path))


def profile_rows(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """A seeded, stratified choice of ``size`` test rows (all of them when there are fewer), sorted."""
    from dlflow.sources.splits import stratified_indices

    labels = np.asarray(labels)
    if size >= len(labels):
        return np.arange(len(labels))
    chosen, _ = stratified_indices(labels, size, seed)
    return np.sort(np.asarray(chosen))


def held_out_quality(labels: np.ndarray, probabilities: np.ndarray, class_names: list[str], bins: int = 15) -> dict[str, float]:
    """Accuracy, macro-F1, the number of records and the expected calibration error (``bins`` equal-width
    confidence bins) of a model's test predictions."""
    from dlflow.evaluation.metrics import classification_metrics

    labels, probabilities = np.asarray(labels), np.asarray(probabilities, dtype=np.float64)
    predictions = probabilities.argmax(axis=1)
    metrics = classification_metrics(labels, predictions, class_names)
    return {
        "accuracy": metrics["accuracy"],
        "macro_f1": metrics["macro_f1"],
        "records": int(len(labels)),
        "ece": expected_calibration_error(labels, probabilities, bins),
    }


def expected_calibration_error(labels: np.ndarray, probabilities: np.ndarray, bins: int = 15) -> float:
    """Σ over confidence bins of (share of records) × |accuracy − mean confidence| (Guo et al. 2017)."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            total += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(total)
