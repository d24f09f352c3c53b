"""Training on the training data plus the feedback data: the CNN's training split gets the feedback images, the
RNN gets the feedback sentences as training-only rows (never held out, so evaluation and the gate see the same)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dlflow.config import RnnEvaluationParams
from dlflow.pipelines.cnn.nodes import add_feedback_images, split_train_validation
from dlflow.pipelines.rnn.nodes import _folds_to_run, add_feedback_sentences
from dlflow.sources.feedback import FEEDBACK_FOLD, FeedbackRefused
from dlflow.sources.image_table import image_table, table_images
from dlflow.sources.sharded_table import frame
from tests.pipelines.test_rnn_nodes import RNN, cross_validate, encoded_inputs, mr_table, mr_vocabulary

CLASSES = ["zero", "one"]


def _table(n: int, value: int, label: int = 0) -> pd.DataFrame:
    return image_table(np.full((n, 3, 3), value, np.uint8), np.full(n, label))


def test_the_cnn_trains_on_its_split_plus_the_feedback_images_and_validates_as_before() -> None:
    train = pd.concat([_table(20, 1, 0), _table(20, 2, 1)], ignore_index=True)
    rows, validation = split_train_validation(train, train.iloc[:0], {"validation_fraction": 0.25, "split_seed": 1})
    split = frame(rows)  # written as cnn_train_split, loaded back (here: in memory)
    feedback = {"data/09_feedback/x/cnn/ab12.parquet": _table(3, 9, 1).drop(columns=["height", "width", "channels"]).assign(
        pixels=lambda t: [list(p) for p in t["pixels"]], label=["one", "1", 0])}  # fmt: skip
    chunks, metrics = add_feedback_images(split, feedback, CLASSES, True)
    table = frame(chunks)  # what cnn_training_images writes
    assert len(table) == len(split) + 3 and table.iloc[: len(split)].equals(split)
    assert table["label"].tolist()[-3:] == [1, 1, 0] and (table_images(table)[-3:] == 9).all()
    assert metrics == {"feedback_files": {"value": 1.0, "step": 0}, "feedback_records": {"value": 3.0, "step": 0}}
    assert len(validation) == 10  # the validation (and test) images are the data's alone

    off, metrics = add_feedback_images(split, feedback, CLASSES, False)  # cnn.feedback: false
    assert frame(off).equals(split) and metrics["feedback_records"]["value"] == 0
    alone, metrics = add_feedback_images(split, {}, CLASSES, True)
    assert frame(alone).equals(split) and metrics["feedback_files"]["value"] == 0
    with pytest.raises(FeedbackRefused, match=r"ab12\.parquet: its images are 4x4x1, the training images 3x3x1"):
        add_feedback_images(split, {"data/09_feedback/x/cnn/ab12.parquet": image_table(np.zeros((1, 4, 4), np.uint8), [0])},
                            CLASSES, True)  # fmt: skip


def test_the_rnn_trains_on_feedback_sentences_but_never_holds_them_out() -> None:
    mr = mr_table(repeats=10)
    encoded, embeddings = encoded_inputs(mr)
    vocabulary = mr_vocabulary(mr)
    # Feedback that contradicts the data: "wonderful" sentences labelled negative.
    feedback = {"kept/9f.csv": pd.DataFrame({"sentence": ["wonderful acting , great story"] * 30, "label": ["negative"] * 30})}
    extended, metrics = add_feedback_sentences(
        encoded, feedback, ["negative", "positive"], vocabulary, RNN["max_length"], "sentence", True
    )
    assert metrics["feedback_records"]["value"] == 30 and len(extended["labels"]) == len(mr) + 30
    cv = RnnEvaluationParams.model_validate(RNN["evaluation"])
    assert _folds_to_run(cv, extended["folds"]) == ("cv", [0, 1, 2])  # never the feedback fold
    assert (extended["folds"][len(mr) :] == FEEDBACK_FOLD).all() and (extended["labels"][len(mr) :] == 0).all()
    for key in encoded:
        np.testing.assert_array_equal(extended[key][: len(mr)], encoded[key])
        assert extended[key].dtype == encoded[key].dtype

    quick = RNN | {"evaluation": RNN["evaluation"] | {"mode": "split"}, "training": RNN["training"] | {"epochs": 3}}
    _, _, before, _, _ = cross_validate(encoded, embeddings, quick)
    _, _, after, _, report = cross_validate(extended, embeddings, quick)
    held_out = np.flatnonzero(encoded["folds"] == 0).tolist()
    assert after["row"].tolist() == before["row"].tolist() == held_out  # feedback never held out
    assert set(report["fold_accuracy"]) == {"0"}
    assert not np.allclose(np.stack(after["probabilities"]), np.stack(before["probabilities"]))  # it learned from them

    same, metrics = add_feedback_sentences(encoded, feedback, ["negative", "positive"], vocabulary, 8, "sentence", False)
    assert same is encoded and metrics["feedback_files"]["value"] == 0
