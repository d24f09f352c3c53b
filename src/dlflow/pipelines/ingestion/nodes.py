"""Ingestion nodes: validated IDX arrays become parquet tables and a data summary.

The raw files arrive through the catalog (``dlflow.io.IdxDataset`` fetches and
parses them); these nodes check that images and labels belong together and
turn them into tables with a documented schema:

``label``  uint8, the class index
``pixels`` binary, the 784 uint8 values of the 28x28 image in row-major order
(``dlflow.sources.image_table``)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from dlflow.sources.idx import validate_image_label_pair
from dlflow.sources.image_sets import get_image_source
from dlflow.sources.image_table import image_table


def build_train_table(images: np.ndarray, labels: np.ndarray, image_source: str) -> pd.DataFrame:
    """Check the training images/labels pair and return it as a ``label``/``pixels`` table."""
    return _image_table(images, labels, image_source, "train")


def build_test_table(images: np.ndarray, labels: np.ndarray, image_source: str) -> pd.DataFrame:
    """Check the test images/labels pair and return it as a ``label``/``pixels`` table."""
    return _image_table(images, labels, image_source, "test")


def _image_table(images: np.ndarray, labels: np.ndarray, image_source: str, split: str) -> pd.DataFrame:
    source = get_image_source(image_source)
    validate_image_label_pair(
        images,
        labels,
        images_path=f"data/01_raw/{image_source}/{source.files[f'{split}_images'].filename}",
        labels_path=f"data/01_raw/{image_source}/{source.files[f'{split}_labels'].filename}",
        num_classes=len(source.class_names),
    )
    return image_table(images, labels)


def list_class_names(image_source: str) -> list[str]:
    """The human-readable class names of the image source, in label order."""
    return list(get_image_source(image_source).class_names)


def summarise_image_data(train: pd.DataFrame, test: pd.DataFrame, class_names: list[str]) -> tuple[dict, Any]:
    """Class counts per split (JSON for MLflow) and a bar chart of the training split."""

    def counts(table: pd.DataFrame) -> dict[str, int]:
        found = np.bincount(table["label"].to_numpy(), minlength=len(class_names))
        return {name: int(n) for name, n in zip(class_names, found)}

    summary = {
        "num_train": len(train),
        "num_test": len(test),
        "image_shape": [28, 28],
        "train_class_counts": counts(train),
        "test_class_counts": counts(test),
    }
    from dlflow.evaluation.plots import plot_class_distribution

    figure = plot_class_distribution(summary["train_class_counts"], title="Training images per class")
    return summary, figure
