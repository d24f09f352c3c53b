"""CNN nodes: split and normalise the image tables, train, predict, package for serving.

Each node is a thin, pure function of its inputs and the validated ``cnn``
parameters; the catalog does all file I/O and the shared training loop does
the training.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from sklearn.model_selection import train_test_split

from dlflow.config import CnnParams, parse
from dlflow.evaluation import plot_misclassified
from dlflow.lineage import table_digest
from dlflow.models import build_cnn, hflip, random_hflip
from dlflow.models.pixel_classifier import PixelClassifier
from dlflow.resume import run_checkpoint_dir
from dlflow.training import MlflowEpochLogger, TensorDataset, TrainConfig, fit, predict, seed_everything

logger = logging.getLogger(__name__)


def _images(table: pd.DataFrame) -> np.ndarray:
    """The ``pixels`` column as a ``(N, 28, 28)`` uint8 array."""
    return np.stack(table["pixels"].to_numpy()).reshape(-1, 28, 28)


def _stratified_subset(table: pd.DataFrame, size: int | None, seed: int) -> pd.DataFrame:
    if size is None or size >= len(table):
        return table
    subset, _ = train_test_split(table, train_size=size, stratify=table["label"], random_state=seed)
    return subset.sort_index()


def split_train_validation(
    train: pd.DataFrame, params: dict[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Seeded, stratified train/validation split of the training table."""
    data = parse("cnn", params).data
    table = _stratified_subset(train, data.max_train_samples, data.split_seed)
    train_split, val_split = train_test_split(
        table,
        test_size=data.validation_fraction,
        stratify=table["label"],
        random_state=data.split_seed,
    )
    logger.info("Split %d images into %d train / %d validation", len(table), len(train_split), len(val_split))
    return train_split.reset_index(drop=True), val_split.reset_index(drop=True)


def select_test_images(test: pd.DataFrame, params: dict[str, Any]) -> pd.DataFrame:
    """The test table, or a stratified subset of it when ``max_test_samples`` is set."""
    data = parse("cnn", params).data
    return _stratified_subset(test, data.max_test_samples, data.split_seed).reset_index(drop=True)


def compute_normalisation(train_split: pd.DataFrame) -> dict[str, float]:
    """Mean and standard deviation of pixel values (scaled to 0-1), training split only."""
    pixels = _images(train_split).astype(np.float64) / 255.0
    return {"mean": float(pixels.mean()), "std": float(pixels.std())}


def _tensors(table: pd.DataFrame, normalisation: dict[str, float]) -> TensorDataset:
    images = torch.from_numpy(_images(table)).float().div_(255.0).unsqueeze(1)
    images = (images - normalisation["mean"]) / normalisation["std"]
    return TensorDataset(features=(images,), targets=torch.from_numpy(table["label"].to_numpy().astype(np.int64)))


def train_cnn(
    train_split: pd.DataFrame,
    val_split: pd.DataFrame,
    normalisation: dict[str, float],
    class_names: list[str],
    params: dict[str, Any],
) -> tuple[torch.nn.Module, list[dict[str, float]]]:
    """Train the configured CNN with the shared loop; return the model and its per-epoch history."""
    cnn: CnnParams = parse("cnn", params)
    seed_everything(cnn.training.seed, cnn.training.deterministic)  # same initial weights every run
    model = build_cnn(cnn.model.architecture, num_classes=len(class_names), **cnn.model.options)
    result = fit(
        model,
        _tensors(train_split, normalisation),
        _tensors(val_split, normalisation),
        TrainConfig(**cnn.training.model_dump() | {"checkpoint_dir": run_checkpoint_dir(cnn.training.checkpoint_dir)}),
        callbacks=[MlflowEpochLogger()],
        train_transform=random_hflip if cnn.augmentation.horizontal_flip else None,
    )
    return result.model, [vars(record) for record in result.history]


def predict_cnn(
    model: torch.nn.Module,
    test_split: pd.DataFrame,
    normalisation: dict[str, float],
    params: dict[str, Any],
) -> pd.DataFrame:
    """Class probabilities for the test images: ``label``, ``prediction``, ``probabilities``."""
    cnn: CnnParams = parse("cnn", params)
    test = _tensors(test_split, normalisation)
    probabilities = predict(
        model,
        test.features,
        batch_size=cnn.training.eval_batch_size,
        device=torch.device("cpu"),
        transform_tta=hflip if cnn.augmentation.flip_test_time else None,
    ).numpy()
    return pd.DataFrame(
        {
            "label": test_split["label"].to_numpy(),
            "prediction": probabilities.argmax(axis=1).astype(np.uint8),
            "probabilities": list(probabilities.astype(np.float32)),
        }
    )


def plot_cnn_mistakes(
    test_split: pd.DataFrame, predictions: pd.DataFrame, class_names: list[str], params: dict[str, Any]
) -> Figure:
    """A grid of the most confident misclassified test images."""
    return plot_misclassified(
        _images(test_split),
        predictions["label"].to_numpy(),
        predictions["prediction"].to_numpy(),
        np.stack(predictions["probabilities"].to_numpy()),
        class_names,
        max_examples=parse("cnn", params).misclassified_examples,
    )


def package_cnn(
    model: torch.nn.Module, normalisation: dict[str, float], test_split: pd.DataFrame, params: dict[str, Any]
) -> dict[str, Any]:
    """The servable model (pixels in, probabilities out), an input example and the test digest."""
    servable = PixelClassifier(
        model.cpu().eval(),
        normalisation["mean"],
        normalisation["std"],
        flip_test_time=parse("cnn", params).augmentation.flip_test_time,
    ).eval()
    return {
        "model": servable,
        "input_example": _images(test_split.head(4)).astype(np.float32),
        "test_data_digest": table_digest(test_split),
    }
