"""Feedback data as training data: labelled batches that came back through batch inference, checked and shaped
like the pipeline's own tables, so that a retrained model learns from them.

Monitoring keeps every labelled batch once (``data/09_feedback/<data set>/<family>``,
``dlflow.io.feedback``); these functions turn the kept tables, ``{file: table}``,
into rows the training steps append to their training data only:

* ``feedback_images``: image-table rows (``label``, ``pixels``, ``height``,
  ``width``, ``channels``) of the training images' shape;
* ``feedback_sentences``: labelled-sentence rows (``sentence``, ``label``,
  ``class_name``, ``fold``) in fold ``FEEDBACK_FOLD``, a fold no evaluation
  holds out, so they are trained on and never tested or profiled.

A label is a class name or a class index, as the batch carried it. Every refusal
names the file (and the row) and says what to fix.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from dlflow.sources.image_table import image_table, table_images, table_shape

#: The fold of feedback sentences: never held out (folds count from 0), so training-only rows.
FEEDBACK_FOLD = -1
LABEL = "label"


class FeedbackRefused(ValueError):
    """A feedback table that does not fit the training data; the message names the file."""


def class_indices(values: Sequence[Any], class_names: Sequence[str], where: str) -> np.ndarray:
    """``values`` (class names, or indices 0..C-1) as class indices; a refusal names ``where`` and the row."""
    index = {str(name): i for i, name in enumerate(class_names)}
    found = np.empty(len(values), np.int64)
    for row, value in enumerate(values):
        text = "" if value is None else str(value).strip()
        if text in index:
            found[row] = index[text]
        elif text.isdigit() and int(text) < len(class_names) and not isinstance(value, float):
            found[row] = int(text)
        elif isinstance(value, (float, np.floating)) and float(value).is_integer() and 0 <= value < len(class_names):
            found[row] = int(value)
        else:
            raise FeedbackRefused(
                f"{where}: row {row} has the {LABEL!r} {value!r}, not one of the model's classes {list(class_names)} "
                f"(names, or indices 0-{len(class_names) - 1}): correct it or remove the file"
            )
    return found


def _labelled(name: str, table: pd.DataFrame, column: str) -> None:
    missing = [c for c in (column, LABEL) if c not in table.columns]
    if missing:
        raise FeedbackRefused(f"{name}: no {' or '.join(map(repr, missing))} column (it has {list(table.columns)}): "
                              "feedback for training needs both; remove the file")  # fmt: skip


def feedback_images(tables: Mapping[str, pd.DataFrame], shape: Sequence[int], class_names: Sequence[str]) -> pd.DataFrame:
    """The feedback tables' images as one image table, each checked against the training images' ``shape``
    (``(height, width, channels)``) and ``class_names``; an empty table when there are none."""
    parts = []
    for name, table in tables.items():
        _labelled(name, table, "pixels")
        if not len(table):
            continue
        wanted = "x".join(map(str, shape))
        try:
            found = table_shape(table)
            if found != tuple(shape):
                raise FeedbackRefused(
                    f"{name}: its images are {'x'.join(map(str, found))}, the training images {wanted} (height x width "
                    "x channels): remove the file, or retrain on data of its shape"
                )
            images = table_images(table, shape=tuple(shape))
        except FeedbackRefused:
            raise
        except ValueError as error:
            raise FeedbackRefused(
                f"{name}: its images do not fit the training images ({wanted}, height x width x channels): {error}. "
                "Remove the file, or retrain on data of its shape"
            ) from None
        parts.append(image_table(images, class_indices(table[LABEL].tolist(), class_names, name)))
    if not parts:
        return image_table(np.empty((0, *shape), np.uint8), np.empty(0, np.int64))
    return pd.concat(parts, ignore_index=True)


def feedback_sentences(
    tables: Mapping[str, pd.DataFrame], class_names: Sequence[str], text_column: str = "sentence"
) -> pd.DataFrame:
    """The feedback tables' sentences as labelled-sentence rows in fold ``FEEDBACK_FOLD`` (training only);
    blank sentences are refused by row. An empty table when there are none."""
    sentences: list[str] = []
    labels: list[np.ndarray] = []
    for name, table in tables.items():
        _labelled(name, table, text_column)
        texts = table[text_column].tolist()
        for row, text in enumerate(texts):
            if not isinstance(text, str) or not text.strip():
                raise FeedbackRefused(f"{name}: row {row} has no {text_column!r} text: fill it or remove the file")
        sentences += [text.strip() for text in texts]
        labels.append(class_indices(table[LABEL].tolist(), class_names, name))
    label = np.concatenate(labels) if labels else np.empty(0, np.int64)
    return pd.DataFrame(
        {
            "sentence": sentences,
            LABEL: label,
            "class_name": np.asarray(class_names, dtype=object)[label] if len(label) else np.empty(0, object),
            "fold": np.full(len(label), FEEDBACK_FOLD, np.int8),
        }
    )
