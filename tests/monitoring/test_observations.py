"""What monitoring keeps of a batch: the model's monitoring columns taken out of its answers, a bounded sample."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dlflow.monitoring.observations import BatchObservations, Observations, monitoring_columns, split_answers
from dlflow.monitoring.signals import IMAGE_SIGNALS, TEXT_SIGNALS, image_signals, sentence_signals


def _observations(n: int, start: int = 0, classes: int = 3) -> Observations:
    rows = np.arange(start, start + n, dtype=np.float64)
    probabilities = np.full((n, classes), 0.1)
    probabilities[np.arange(n), (rows % classes).astype(int)] = 1 - 0.1 * (classes - 1)
    return Observations(("row",), rows[:, None], probabilities, np.tile(rows[:, None], (1, 4)).astype(np.float32))


def test_split_answers_gives_back_the_answers_and_the_observations() -> None:
    answers = pd.DataFrame({"prediction": [1, 0], "p_a": [0.2, 0.9], "p_b": [0.8, 0.1]})
    signals, features = np.array([[1.0, 2.0], [3.0, 4.0]]), np.arange(6, dtype=np.float32).reshape(2, 3)
    extended = pd.concat([answers, monitoring_columns(TEXT_SIGNALS, signals, features)], axis=1)
    assert list(extended.columns[3:]) == ["input_length", "input_oov_rate", "feature_0", "feature_1", "feature_2"]
    plain, observed = split_answers(extended, ["a", "b"])
    pd.testing.assert_frame_equal(plain, answers)
    assert observed.input_names == TEXT_SIGNALS
    np.testing.assert_array_equal(observed.inputs, signals)
    np.testing.assert_array_equal(observed.features, features)
    np.testing.assert_array_equal(observed.probabilities, answers[["p_a", "p_b"]].to_numpy())
    with pytest.raises(ValueError, match="no monitoring columns"):
        split_answers(answers, ["a", "b"])


def test_a_batch_keeps_a_bounded_uniform_sample_and_counts_everything() -> None:
    batch = BatchObservations(num_classes=3, keep=500, seed=1)
    for start in range(0, 10_000, 1000):  # ten chunks
        labels = (np.arange(start, start + 1000) + 1) % 3  # every label one off the prediction
        batch.observe(_observations(1000, start), labels if start < 2000 else None)
    sample = batch.sample
    assert batch.records == 10_000 and len(sample) == 500
    assert batch.predicted.tolist() == [3334, 3333, 3333]
    assert batch.labelled == 2000 and batch.confusion.sum() == 2000 and np.trace(batch.confusion) == 0
    rows = sample.inputs[:, 0]
    assert len(set(rows.tolist())) == 500 and (np.diff(rows) > 0).all()  # distinct, kept in arrival order
    per_chunk = np.bincount((rows // 1000).astype(int), minlength=10)
    assert per_chunk.min() >= 25 and per_chunk.max() <= 80  # about 50 from each chunk: uniform, not the first ones
    np.testing.assert_array_equal(sample.features[:, 0], rows.astype(np.float32))  # rows stay whole


def test_a_small_batch_is_kept_whole() -> None:
    batch = BatchObservations(num_classes=3, keep=500)
    batch.observe(_observations(120))
    assert len(batch.sample) == 120 and batch.sample.inputs[:, 0].tolist() == list(range(120))


def test_image_signals_measure_brightness_contrast_edges_and_background() -> None:
    flat = np.full((1, 8, 8), 100, np.uint8)
    stripes = np.zeros((1, 8, 8, 1), np.uint8)
    stripes[:, :, ::2] = 200
    signals = image_signals(np.concatenate([flat[..., None], stripes]))
    assert signals.shape == (2, len(IMAGE_SIGNALS))
    np.testing.assert_allclose(signals[0], [100, 0, 0, 0])
    brightness, contrast, edges, dark = signals[1]
    assert brightness == 100 and contrast == 100 and dark == 0.5
    assert edges == pytest.approx((200 + 0) / 2)  # every horizontal neighbour differs by 200, no vertical one
    with pytest.raises(ValueError, match="images must be"):
        image_signals(np.zeros((4, 8)))


def test_sentence_signals_count_length_and_unknown_words_within_the_sentence() -> None:
    ids = np.array([[5, 1, 7, 0], [1, 1, 0, 0]])  # 1 = <unk>, 0 = padding
    np.testing.assert_allclose(sentence_signals(ids, np.array([3, 2]), unknown_id=1), [[3, 1 / 3], [2, 1.0]])
