"""CNN nodes: split and normalise the image tables, train, predict, package for serving.

Each node is a thin, pure function of its inputs and of the narrowest
parameter block it reads (``params:cnn.data``, ``params:cnn.training``, ...):
the node cache fingerprints what a node receives, so changing the learning
rate does not re-split the data. The catalog does all file I/O and the shared
training loop does the training.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from dlflow.config import AugmentationParams, CnnModelParams, ImageDataParams, TrainingParams
from dlflow.sources.image_table import table_images
from dlflow.sources.splits import stratified_indices
from dlflow.tracking.lineage import table_digest

if TYPE_CHECKING:
    from dlflow.training import TensorDataset

logger = logging.getLogger(__name__)

IMAGE_SHAPE = (28, 28)


def _subset(table: pd.DataFrame, size: int | None, seed: int) -> pd.DataFrame:
    if size is None or size >= len(table):
        return table
    chosen, _ = stratified_indices(table["label"].to_numpy(), size, seed)
    return table.iloc[chosen].reset_index(drop=True)


def split_train_validation(train: pd.DataFrame, data: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Seeded, stratified train/validation split of the training table."""
    data = ImageDataParams.model_validate(data)
    table = _subset(train, data.max_train_samples, data.split_seed)
    val_rows, train_rows = stratified_indices(
        table["label"].to_numpy(), round(len(table) * data.validation_fraction), data.split_seed
    )
    logger.info("Split %d images into %d train / %d validation", len(table), len(train_rows), len(val_rows))
    return table.iloc[train_rows].reset_index(drop=True), table.iloc[val_rows].reset_index(drop=True)


def select_test_images(test: pd.DataFrame, data: dict[str, Any]) -> pd.DataFrame:
    """The test table, or a stratified subset of it when ``max_test_samples`` is set."""
    data = ImageDataParams.model_validate(data)
    return _subset(test, data.max_test_samples, data.split_seed)


def compute_normalisation(train_split: pd.DataFrame) -> dict[str, float]:
    """Mean and standard deviation of pixel values (scaled to 0-1), training split only.

    Computed from the histogram of the 256 pixel values: exact, and 25x faster
    than converting 42 M pixels to floats. The histogram is counted in chunks
    because ``np.bincount`` first widens its whole input to int64.
    """
    pixels = table_images(train_split, IMAGE_SHAPE).reshape(-1)
    counts = sum(np.bincount(chunk, minlength=256) for chunk in np.array_split(pixels, 64)).astype(np.float64)
    values = np.arange(256) / 255.0
    mean = counts @ values / counts.sum()
    return {"mean": float(mean), "std": float(np.sqrt(counts @ (values - mean) ** 2 / counts.sum()))}


def _tensors(table: pd.DataFrame, normalisation: dict[str, float]) -> TensorDataset:
    import torch

    from dlflow.training import TensorDataset

    images = torch.from_numpy(table_images(table, IMAGE_SHAPE)).float().div_(255.0).unsqueeze(1)
    images.sub_(normalisation["mean"]).div_(normalisation["std"])
    return TensorDataset(features=(images,), targets=torch.from_numpy(table["label"].to_numpy().astype(np.int64)))


def train_cnn(
    train_split: pd.DataFrame,
    val_split: pd.DataFrame,
    normalisation: dict[str, float],
    class_names: list[str],
    model: dict[str, Any],
    training: dict[str, Any],
    augmentation: dict[str, Any],
) -> tuple[Any, list[dict[str, float]]]:
    """Train the configured CNN with the shared loop; return the model and its per-epoch history."""
    from dlflow.tracking.resume import run_checkpoint_dir
    from dlflow.training import MlflowEpochLogger

    checkpoint_dir = run_checkpoint_dir(TrainingParams.model_validate(training).checkpoint_dir)
    result = fit_cnn(
        train_split, val_split, normalisation, class_names, model, training, augmentation,
        callbacks=[MlflowEpochLogger()], checkpoint_dir=checkpoint_dir,
    )  # fmt: skip
    return result.model, [vars(record) for record in result.history]


def fit_cnn(
    train_split: pd.DataFrame,
    val_split: pd.DataFrame,
    normalisation: dict[str, float],
    class_names: list[str],
    model: dict[str, Any],
    training: dict[str, Any],
    augmentation: dict[str, Any],
    *,
    callbacks: list[Any],
    checkpoint_dir: str | None,
) -> Any:
    """``train_cnn``'s training, with the loop's callbacks and checkpoint folder given (tuning trials use it too).

    Returns the loop's ``FitResult``.
    """
    from dlflow.models import build_cnn, random_hflip
    from dlflow.training import TrainConfig, fit, seed_everything

    model, training = CnnModelParams.model_validate(model), TrainingParams.model_validate(training)
    seed_everything(training.seed, training.deterministic)  # same initial weights every run
    network = build_cnn(model.architecture, num_classes=len(class_names), **model.options)
    return fit(
        network,
        _tensors(train_split, normalisation),
        _tensors(val_split, normalisation),
        TrainConfig(**training.model_dump() | {"checkpoint_dir": checkpoint_dir}),
        callbacks=callbacks,
        train_transform=random_hflip if AugmentationParams.model_validate(augmentation).horizontal_flip else None,
    )


def predict_cnn(
    model: Any,
    test_split: pd.DataFrame,
    normalisation: dict[str, float],
    training: dict[str, Any],
    augmentation: dict[str, Any],
) -> pd.DataFrame:
    """Class probabilities for the test images: ``label``, ``prediction``, ``probabilities``."""
    import torch

    from dlflow.models import hflip
    from dlflow.training import predict

    test = _tensors(test_split, normalisation)
    probabilities = predict(
        model,
        test.features,
        batch_size=TrainingParams.model_validate(training).eval_batch_size,
        device=torch.device("cpu"),
        transform_tta=hflip if AugmentationParams.model_validate(augmentation).flip_test_time else None,
    ).numpy()
    return pd.DataFrame(
        {
            "label": test_split["label"].to_numpy(),
            "prediction": probabilities.argmax(axis=1).astype(np.uint8),
            "probabilities": list(probabilities.astype(np.float32)),
        }
    )


def plot_cnn_mistakes(test_split: pd.DataFrame, predictions: pd.DataFrame, class_names: list[str], max_examples: int) -> Any:
    """A grid of the most confident misclassified test images."""
    from dlflow.evaluation.plots import plot_misclassified

    return plot_misclassified(
        table_images(test_split, IMAGE_SHAPE),
        predictions["label"].to_numpy(),
        predictions["prediction"].to_numpy(),
        np.stack(predictions["probabilities"].to_numpy()),
        class_names,
        max_examples=max_examples,
    )


def package_cnn(
    network: Any,
    normalisation: dict[str, float],
    class_names: list[str],
    test_split: pd.DataFrame,
    model: dict[str, Any],
    augmentation: dict[str, Any],
) -> dict[str, Any]:
    """The servable model (raw pixels in, named classes out), an input example and the test digest."""
    from dlflow.serving.image_classifier import ImageClassifierModel

    model = CnnModelParams.model_validate(model)
    servable = ImageClassifierModel(
        network,
        architecture=model.architecture,
        options=model.options,
        mean=normalisation["mean"],
        std=normalisation["std"],
        class_names=class_names,
        flip_test_time=AugmentationParams.model_validate(augmentation).flip_test_time,
        image_shape=IMAGE_SHAPE,
    )
    return {
        "model": servable,
        "input_example": table_images(test_split.head(4), IMAGE_SHAPE).astype(np.float32),
        "test_data_digest": table_digest(test_split),
    }
