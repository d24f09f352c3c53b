"""The CNN's validation images: the data's own (a ``val/`` folder) when it has them, else a seeded split."""

from __future__ import annotations

import numpy as np

from dlflow.pipelines.cnn.nodes import split_train_validation
from dlflow.sources.image_table import image_table
from dlflow.sources.sharded_table import frame

DATA = {"validation_fraction": 0.25, "split_seed": 1}


def _table(n: int, value: int) -> object:
    return image_table(np.full((n, 4, 4, 3), value, np.uint8), np.arange(n) % 2)


def test_a_validation_folder_is_used_as_it_is():
    rows, validation = split_train_validation(_table(8, 1), _table(3, 2), DATA)
    train = frame(rows)  # the training rows come as Arrow tables, for cnn_train_split to write as they come
    assert len(train) == 8 and len(validation) == 3  # nothing of the training images held out
    assert set(validation["pixels"].map(lambda b: b[0])) == {2}


def test_without_one_the_training_images_are_split_seeded_and_stratified():
    empty = _table(0, 0)
    rows, validation = split_train_validation(_table(8, 1), empty, DATA)
    train = frame(rows)
    assert (len(train), len(validation)) == (6, 2) and sorted(validation["label"]) == [0, 1]
    again, _ = split_train_validation(_table(8, 1), empty, DATA)
    assert train.equals(frame(again))
