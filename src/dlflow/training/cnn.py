"""The CNN's training recipe: image tables in, the shared loop's ``FitResult`` or test probabilities out.

Used by the ``cnn`` pipeline's nodes and by tuning trials alike; knows nothing of
Kedro or MLflow (the callbacks it is given may log).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from dlflow.config import AugmentationParams, CnnModelParams, TrainingParams
from dlflow.sources.image_table import IMAGE_SHAPE, table_images
from dlflow.training.config import TrainConfig
from dlflow.training.data import TensorDataset
from dlflow.training.loop import fit, predict
from dlflow.training.runtime import seed_everything


def image_tensors(table: pd.DataFrame, normalisation: dict[str, float]) -> TensorDataset:
    """An image table as normalised ``(N, 1, H, W)`` float images and int64 labels."""
    images = torch.from_numpy(table_images(table, IMAGE_SHAPE)).float().div_(255.0).unsqueeze(1)
    images.sub_(normalisation["mean"]).div_(normalisation["std"])
    return TensorDataset(features=(images,), targets=torch.from_numpy(table["label"].to_numpy().astype(np.int64)))


def fit_cnn(
    train_split: pd.DataFrame,
    val_split: pd.DataFrame,
    normalisation: dict[str, float],
    class_names: list[str],
    model: CnnModelParams,
    training: TrainingParams,
    augmentation: AugmentationParams,
    *,
    callbacks: list[Any],
    checkpoint_dir: str | None,
) -> Any:
    """Train the configured CNN with the shared loop, seeded so every run starts from the same weights.

    Returns the loop's ``FitResult``.
    """
    from dlflow.models import build_cnn, random_hflip

    seed_everything(training.seed, training.deterministic)
    network = build_cnn(model.architecture, num_classes=len(class_names), **model.options)
    return fit(
        network,
        image_tensors(train_split, normalisation),
        image_tensors(val_split, normalisation),
        TrainConfig(**training.model_dump() | {"checkpoint_dir": checkpoint_dir}),
        callbacks=callbacks,
        train_transform=random_hflip if augmentation.horizontal_flip else None,
    )


def predict_cnn(
    model: Any, test_split: pd.DataFrame, normalisation: dict[str, float], eval_batch_size: int, flip_test_time: bool
) -> pd.DataFrame:
    """The prediction table of the test images: ``label``, ``prediction``, ``probabilities``."""
    from dlflow.models import hflip

    test = image_tensors(test_split, normalisation)
    probabilities = predict(
        model,
        test.features,
        batch_size=eval_batch_size,
        device=torch.device("cpu"),
        transform_tta=hflip if flip_test_time else None,
    ).numpy()
    return pd.DataFrame(
        {
            "label": test_split["label"].to_numpy(),
            "prediction": probabilities.argmax(axis=1).astype(np.uint8),
            "probabilities": list(probabilities.astype(np.float32)),
        }
    )
