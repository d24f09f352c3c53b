"""What registration needs of a trained classifier: the servable model, an input example, the test digest.

One function per servable kind, shared by the family's own pipeline and by its
tuning pipeline (which packages the best trial's model the same way).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from dlflow.sources.image_table import table_images
from dlflow.text import Vocabulary
from dlflow.tracking.lineage import table_digest


def image_classifier_package(
    network: Any,
    normalisation: dict[str, float],
    class_names: list[str],
    test_split: pd.DataFrame,
    *,
    architecture: str,
    options: dict[str, Any],
    flip_test_time: bool,
    image_shape: tuple[int, int],
) -> dict[str, Any]:
    """The servable CNN (raw pixels in, named classes out), four test images as its example, the test digest."""
    from dlflow.serving.image_classifier import ImageClassifierModel

    servable = ImageClassifierModel(
        network,
        architecture=architecture,
        options=options,
        mean=normalisation["mean"],
        std=normalisation["std"],
        class_names=class_names,
        flip_test_time=flip_test_time,
        image_shape=image_shape,
    )
    return {
        "model": servable,
        "input_example": table_images(test_split.head(4), image_shape).astype(np.float32),
        "test_data_digest": table_digest(test_split),
    }


def sentence_classifier_package(
    model: Any,
    vocabulary: dict,
    sentences: pd.DataFrame,
    predictions: pd.DataFrame,
    class_names: list[str],
    max_length: int,
) -> dict[str, Any]:
    """The servable RNN (raw sentences in, label and probability out), three sentences as its example,
    and the digest of the sentences ``predictions`` evaluated (its ``row`` column indexes ``sentences``)."""
    from dlflow.serving.sentence_classifier import SentenceClassifierModel

    servable = SentenceClassifierModel(model, Vocabulary.from_dict(vocabulary), class_names, max_length)
    evaluated = sentences.iloc[predictions["row"].to_numpy()]
    return {
        "model": servable,
        "input_example": pd.DataFrame({"sentence": sentences["sentence"].head(3).tolist()}),
        "test_data_digest": table_digest(evaluated[["sentence", "label", "fold"]].reset_index(drop=True)),
    }
