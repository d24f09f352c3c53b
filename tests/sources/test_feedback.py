"""Feedback tables as training rows (dlflow.sources.feedback), read through FeedbackDataset(reader: tables)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dlflow.io.feedback import FeedbackDataset
from dlflow.sources.feedback import FEEDBACK_FOLD, FeedbackRefused, feedback_images, feedback_sentences
from dlflow.sources.image_table import image_table, table_images

CLASSES = ["zero", "one", "two"]


def _images(count: int, shape=(4, 4), value: int = 7) -> np.ndarray:
    return np.full((count, *shape), value, np.uint8)


def test_feedback_images_become_image_table_rows_of_the_training_shape() -> None:
    full = image_table(_images(2, value=1), np.array([0, 2]))  # the pipeline's own layout
    legacy = pd.DataFrame({"pixels": [list(range(16)), [3] * 16], "label": ["one", "2"]})  # pixels as lists, names
    rows = feedback_images({"a.parquet": full, "b.parquet": legacy}, (4, 4, 1), CLASSES)
    assert rows["label"].tolist() == [0, 2, 1, 2]
    assert table_images(rows).shape == (4, 4, 4, 1) and table_images(rows)[2].reshape(-1).tolist() == list(range(16))
    empty = feedback_images({}, (4, 4, 1), CLASSES)
    assert len(empty) == 0 and list(empty.columns) == list(full.columns)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (image_table(_images(2, shape=(5, 5)), np.array([0, 1])), r"b\.parquet: its images are 5x5x1, the training images 4x4x1"),
        (image_table(_images(1), np.array([7])), r"b\.parquet: row 0 has the 'label' 7, not one of the model's classes"),
        (pd.DataFrame({"pixels": [[1] * 16]}), r"b\.parquet: no 'label' column"),
        (pd.DataFrame({"pixels": [[1] * 15], "label": [0]}), r"b\.parquet: its images do not fit the training images"),
    ],
)
def test_a_feedback_table_that_does_not_fit_is_refused_naming_the_file(table: pd.DataFrame, message: str) -> None:
    good = image_table(_images(1), np.array([0]))
    with pytest.raises(FeedbackRefused, match=message):
        feedback_images({"a.parquet": good, "b.parquet": table}, (4, 4, 1), CLASSES)


def test_feedback_sentences_are_training_only_rows() -> None:
    csv_cells = pd.DataFrame({"sentence": [" good film ", "bad"], "label": ["two", "0"]})  # CSV: strings
    parquet = pd.DataFrame({"sentence": ["fine"], "label": [1]})
    rows = feedback_sentences({"a.csv": csv_cells, "b.parquet": parquet}, CLASSES)
    assert rows["sentence"].tolist() == ["good film", "bad", "fine"]
    assert rows["label"].tolist() == [2, 0, 1] and rows["class_name"].tolist() == ["two", "zero", "one"]
    assert (rows["fold"] == FEEDBACK_FOLD).all() and FEEDBACK_FOLD < 0
    with pytest.raises(FeedbackRefused, match=r"c\.csv: row 1 has no 'sentence' text"):
        feedback_sentences({"c.csv": pd.DataFrame({"sentence": ["ok", " "], "label": [0, 1]})}, CLASSES)
    with pytest.raises(FeedbackRefused, match=r"d\.jsonl: row 0 has the 'label' 'maybe'"):
        feedback_sentences({"d.jsonl": pd.DataFrame({"sentence": ["ok"], "label": ["maybe"]})}, CLASSES)
    assert len(feedback_sentences({}, CLASSES)) == 0


def test_the_feedback_dataset_lists_or_reads_the_kept_batches(tmp_path: Path) -> None:
    source = tmp_path / "batch.csv"
    source.write_text("sentence,label\ngood film,1\n")
    table = tmp_path / "batch.parquet"
    pd.DataFrame({"sentence": ["fine"], "label": [0]}).to_parquet(table)
    writer = FeedbackDataset(folder=str(tmp_path / "kept"))
    for path in (source, table, source):
        writer.save({"source": str(path)})
    assert len(writer.load()) == 2 and all(isinstance(p, Path) for p in writer.load())
    tables = FeedbackDataset(folder=str(tmp_path / "kept"), reader="tables").load()
    assert sorted(Path(name).suffix for name in tables) == [".csv", ".parquet"]
    by_suffix = {Path(name).suffix: frame for name, frame in tables.items()}
    assert by_suffix[".csv"].to_dict("list") == {"sentence": ["good film"], "label": ["1"]}  # CSV cells as the file holds them
    assert by_suffix[".parquet"]["label"].tolist() == [0]
    assert FeedbackDataset(folder=str(tmp_path / "none"), reader="tables").load() == {}
    with pytest.raises(ValueError, match="reader must be one of"):
        FeedbackDataset(folder="x", reader="pixels")
