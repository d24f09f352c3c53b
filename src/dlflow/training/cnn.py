"""The CNN's training recipe: image tables in, the shared loop's ``FitResult`` or test probabilities out.

Used by the ``cnn`` pipeline's nodes and by tuning trials alike; knows nothing of
Kedro or MLflow (the callbacks it is given may log). Images of any size and
channels: the network is built for the shape the training table records
(``dlflow.sources.image_table.table_shape``).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import torch

from dlflow.config import AugmentationParams, CnnModelParams, StreamingParams, TrainingParams
from dlflow.sources.image_table import SHAPE_COLUMNS, arrow_images, table_images, table_shape
from dlflow.sources.sharded_table import ShardedTable
from dlflow.training.config import TrainConfig
from dlflow.training.data import TensorDataset
from dlflow.training.loop import fit, predict
from dlflow.training.runtime import seed_everything
from dlflow.training.streaming import ShardStream

logger = logging.getLogger(__name__)

Normalisation = dict[str, Any]  # {"mean": float, "std": float} (one channel) or lists of one value per channel


def channel_statistics(normalisation: Normalisation, channels: int) -> tuple[list[float], list[float]]:
    """The per-channel ``mean`` and ``std`` of ``normalisation`` (a scalar applies to every channel).

    ``ValueError`` when a list has another length than ``channels``.
    """
    stats = []
    for key in ("mean", "std"):
        value = normalisation[key]
        values = [float(value)] * channels if np.isscalar(value) else [float(v) for v in value]
        if len(values) != channels:
            raise ValueError(f"normalisation {key!r} has {len(values)} values for {channels}-channel images")
        stats.append(values)
    return stats[0], stats[1]


def image_tensors(table: pd.DataFrame, normalisation: Normalisation) -> TensorDataset:
    """An image table as normalised ``(N, C, H, W)`` float images and int64 labels."""
    pixels = torch.from_numpy(table_images(table))  # (N, H, W, C) uint8
    images = Normalise(normalisation)((pixels,))[0]
    return TensorDataset(features=(images,), targets=torch.from_numpy(table["label"].to_numpy().astype(np.int64)))


@dataclass(frozen=True)
class Normalise:
    """``(N, H, W, C)`` uint8 images as normalised ``(N, C, H, W)`` floats: a ``ShardStream``'s ``prepare``.

    One channel is computed exactly as it always was (contiguous, scalar mean and
    std); colour images keep the channels-last layout, which is the memory
    format the loop trains in.
    """

    normalisation: Normalisation

    def __call__(self, features: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        (pixels,) = features
        channels = pixels.shape[-1]
        if channels == 1:
            images = pixels[..., 0].float().div_(255.0).unsqueeze(1)
            mean, std = channel_statistics(self.normalisation, 1)
            return (images.sub_(mean[0]).div_(std[0]),)
        images = pixels.float().div_(255.0).permute(0, 3, 1, 2)
        mean, std = (
            torch.tensor(v, dtype=torch.float32).view(1, -1, 1, 1) for v in channel_statistics(self.normalisation, channels)
        )
        return (images.sub_(mean).div_(std),)


def image_rows(rows: pa.Table) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
    """A window of image-table rows (Arrow) as uint8 ``(N, H, W, C)`` images and labels: a ``ShardStream``'s ``decode``."""
    labels = rows.column("label").to_numpy().astype(np.int64)
    return (torch.from_numpy(arrow_images(rows)),), torch.from_numpy(labels)


def training_images(
    table: pd.DataFrame | ShardedTable, normalisation: Normalisation, streaming: StreamingParams
) -> TensorDataset | ShardStream:
    """The training images for the loop: in memory, or streamed from the table's parquet shards.

    ``streaming.mode`` ``auto`` keeps them in memory while their decoded size (float32) fits
    ``memory_budget_mb`` and a quarter of the machine's memory; a DataFrame is in memory already.
    """
    if isinstance(table, pd.DataFrame):
        return image_tensors(table, normalisation)
    height, width, channels = _shape(table)
    decoded_mb = len(table) * height * width * channels * 4 / 2**20
    budget_mb = min(streaming.memory_budget_mb, _memory_mb() / 4)
    stream = streaming.mode == "shards" or (streaming.mode == "auto" and decoded_mb > budget_mb)
    logger.info(
        "%d training images (%.0f MB decoded, budget %.0f MB): %s",
        len(table), decoded_mb, budget_mb,
        f"streamed from {len(table.parts)} shards, shuffle buffer {streaming.shuffle_buffer_rows} rows" if stream else "in memory",
    )  # fmt: skip
    if not stream:
        return image_tensors(table.read(), normalisation)
    return ShardStream(
        table, image_rows, columns=("label", "pixels", *SHAPE_COLUMNS), prepare=Normalise(normalisation),
        buffer_rows=streaming.shuffle_buffer_rows,
    )  # fmt: skip


def _shape(table: pd.DataFrame | ShardedTable) -> tuple[int, int, int]:
    """The image shape of a table, of a sharded one from its first part."""
    return table_shape(table.read_part(0).to_pandas() if isinstance(table, ShardedTable) else table)


def _memory_mb() -> float:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20


def build_network(model: CnnModelParams, num_classes: int, image_shape: tuple[int, int, int]) -> torch.nn.Module:
    """The configured CNN for ``image_shape`` = ``(height, width, channels)`` images."""
    from dlflow.models import build_cnn

    height, width, channels = image_shape
    return build_cnn(
        model.architecture, num_classes=num_classes, in_channels=channels, image_size=(height, width), **model.options
    )


def _same_shape(tables: dict[str, pd.DataFrame | ShardedTable]) -> tuple[int, int, int]:
    shapes = {name: _shape(table) for name, table in tables.items()}
    if len(set(shapes.values())) > 1:
        listed = ", ".join(f"{name} {h}x{w}x{c}" for name, (h, w, c) in shapes.items())
        raise ValueError(f"the image tables differ in shape ({listed}): ingest them with one size and channel count")
    return next(iter(shapes.values()))


def fit_cnn(
    train_split: pd.DataFrame | ShardedTable,
    val_split: pd.DataFrame,
    normalisation: Normalisation,
    class_names: list[str],
    model: CnnModelParams,
    training: TrainingParams,
    augmentation: AugmentationParams,
    *,
    callbacks: list[Any],
    checkpoint_dir: str | None,
    streaming: StreamingParams | None = None,
) -> Any:
    """Train the configured CNN with the shared loop, seeded so every run starts from the same weights.

    The training images are held in memory or streamed from their shards (a ``ShardedTable``), as
    ``streaming`` decides (``training_images``). The network takes the tables' image shape. ``augmentation`` as resolved for the
    image source (``AugmentationParams.resolved``; a ``None`` left in it is off).
    Returns the loop's ``FitResult``.
    """
    from dlflow.models import random_hflip

    shape = _same_shape({"training split": train_split, "validation split": val_split})
    seed_everything(training.seed, training.deterministic)
    network = build_network(model, len(class_names), shape)
    return fit(
        network,
        training_images(train_split, normalisation, streaming or StreamingParams()),
        image_tensors(val_split, normalisation),
        TrainConfig(**training.model_dump() | {"checkpoint_dir": checkpoint_dir}),
        callbacks=callbacks,
        train_transform=random_hflip if augmentation.horizontal_flip else None,
    )


def predict_cnn(
    model: Any,
    test_split: pd.DataFrame,
    normalisation: Normalisation,
    eval_batch_size: int,
    flip_test_time: bool | None,
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
            "prediction": probabilities.argmax(axis=1).astype(np.uint8 if probabilities.shape[1] <= 256 else np.uint16),
            "probabilities": list(probabilities.astype(np.float32)),
        }
    )
