"""What registration needs of a trained classifier: the servable model, an input example, the test digest.

One function per servable kind, shared by the family's own pipeline and by its
tuning pipeline (which packages the best trial's model the same way).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from dlflow.sources.image_table import table_images, table_shape
from dlflow.text import Vocabulary
from dlflow.tracking.lineage import table_digest


def image_classifier_package(
    network: Any,
    normalisation: dict[str, Any],
    class_names: list[str],
    test_split: pd.DataFrame,
    *,
    architecture: str,
    options: dict[str, Any],
    flip_test_time: bool,
    resize: str = "stretch",
) -> dict[str, Any]:
    """The servable CNN (pixels or encoded image files in, named classes out), four test images as its
    example (base64 PNG files in an ``image`` column: what real clients send), the test digest.

    The model's input shape is the test table's (``table_shape``); ``resize`` is how it fits
    encoded images of another size (``dlflow.sources.image_files.decode_image``).
    """
    from dlflow.serving.image_classifier import IMAGE_COLUMN, ImageClassifierModel

    servable = ImageClassifierModel(
        network,
        architecture=architecture,
        options=options,
        mean=normalisation["mean"],
        std=normalisation["std"],
        class_names=class_names,
        flip_test_time=flip_test_time,
        image_shape=table_shape(test_split),
        resize=resize,
    )
    return {
        "model": servable,
        "input_example": pd.DataFrame({IMAGE_COLUMN: [png_base64(image) for image in table_images(test_split.head(4))]}),
        "test_data_digest": table_digest(test_split),
        "enforce_input_schema": False,  # the model checks both input forms itself (strings would be refused before it)
        "predict_params": {"monitoring": False},  # True: input signals and features too (dlflow.monitoring)
    }


def png_base64(image: np.ndarray) -> str:
    """A ``(height, width, channels)`` uint8 image as a base64 PNG file (lossless: it decodes to the same pixels)."""
    import base64
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


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
        "predict_params": {"monitoring": False},  # True: input signals and features too (dlflow.monitoring)
        "test_data_digest": table_digest(evaluated[["sentence", "label", "fold"]].reset_index(drop=True)),
    }
