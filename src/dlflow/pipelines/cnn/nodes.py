"""CNN nodes: split and normalise the image tables, train, predict, package for serving.

Each node is a thin, pure function of its inputs and of the narrowest
parameter block it reads (``params:cnn.data``, ``params:cnn.training``, ...):
the node cache fingerprints what a node receives, so changing the learning
rate does not re-split the data. The catalog does all file I/O and the shared
training loop does the training.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from dlflow.config import AugmentationParams, CnnModelParams, ImageDataParams, StreamingParams, TrainingParams
from dlflow.sources.feedback import feedback_images
from dlflow.sources.image_table import SHAPE_COLUMNS, arrow_images, table_images, table_shape
from dlflow.sources.sharded_table import ShardedTable, column, frame, take  # ShardedTable: Kedro reads the type hints
from dlflow.sources.splits import stratified_indices
from dlflow.tracking.context import RunContext  # at run time: Kedro reads the nodes' type hints
from dlflow.tracking.records import mlflow_metrics

logger = logging.getLogger(__name__)


def _chosen(table: pd.DataFrame | ShardedTable, size: int | None, seed: int) -> np.ndarray:
    """The ascending rows of a stratified subset of ``size`` rows (read from the labels alone), or every row."""
    if size is None or size >= len(table):
        return np.arange(len(table))
    chosen, _ = stratified_indices(column(table, "label"), size, seed)
    return chosen


def split_train_validation(
    train: pd.DataFrame | ShardedTable, validation: pd.DataFrame | ShardedTable, data: dict[str, Any]
) -> tuple[Iterator[pa.Table], pd.DataFrame]:
    """The training and validation tables: the data's own validation images when it has them (a ``val/``
    folder), else a seeded, stratified split of the training table (``cnn.data.validation_fraction``).

    The split is planned from the labels alone; the training rows come back as Arrow tables read a
    record batch at a time (``cnn_train_split`` writes them as they come), so the training table never
    has to fit in memory. The validation rows, a fraction of it, come back as a DataFrame.
    """
    data = ImageDataParams.model_validate(data)
    chosen = _chosen(train, data.max_train_samples, data.split_seed)
    if len(validation):
        logger.info("Training on %d images, validating on the data's own %d validation images", len(chosen), len(validation))
        return take(train, chosen), validation if isinstance(validation, pd.DataFrame) else validation.read()
    val_rows, train_rows = stratified_indices(
        column(train, "label")[chosen], round(len(chosen) * data.validation_fraction), data.split_seed
    )
    logger.info("Split %d images into %d train / %d validation", len(chosen), len(train_rows), len(val_rows))
    return take(train, chosen[train_rows]), frame(take(train, chosen[val_rows]))


def select_test_images(test: pd.DataFrame | ShardedTable, data: dict[str, Any]) -> pd.DataFrame:
    """The test table, or a stratified subset of it when ``max_test_samples`` is set (held in memory:
    evaluation, the mistakes' plot and the registered model's reference profile read it whole)."""
    data = ImageDataParams.model_validate(data)
    return frame(take(test, _chosen(test, data.max_test_samples, data.split_seed)))


def add_feedback_images(
    train_split: pd.DataFrame | ShardedTable, feedback: dict[str, pd.DataFrame], class_names: list[str], use_feedback: bool
) -> tuple[Iterator[pa.Table], dict[str, Any]]:
    """The training split with the feedback tables' labelled images appended (``cnn_feedback``: the batches that
    came back with labels), and MLflow metrics ``feedback_files`` / ``feedback_records``.

    Appended after the train/validation split: validation and test images stay as they were, so the gate
    compares the retrained model on the same test images. ``params:cnn.feedback`` false: the split alone.
    A table whose image shape or classes do not fit the training data is refused, naming the file.
    The training images come back a record batch at a time (the columns training reads), then the
    feedback images: ``cnn_training_images`` writes them as parquet shards as they come.
    """
    tables = feedback if use_feedback else {}
    shape = _shape(train_split)
    extra = feedback_images(tables, shape, class_names)
    if len(extra):
        logger.info("Training on %d images plus %d feedback images from %d file(s)", len(train_split), len(extra), len(tables))
    elif feedback and not use_feedback:
        logger.info("Feedback: %d file(s) kept, not used (cnn.feedback: false)", len(feedback))
    kept = ["label", "pixels", *SHAPE_COLUMNS]  # what training reads (an older table may lack the shape columns)
    chunks = (rows.select([name for name in kept if name in rows.column_names]) for rows in _batches(train_split))
    if len(extra):
        chunks = itertools.chain(chunks, [pa.Table.from_pandas(extra[kept], preserve_index=False)])
    return chunks, mlflow_metrics({"feedback_files": len(tables), "feedback_records": len(extra)})


def compute_normalisation(train_split: pd.DataFrame | ShardedTable) -> dict[str, Any]:
    """Mean and standard deviation of pixel values (scaled to 0-1) per channel, training split only.

    One channel (grey): ``{"mean": m, "std": s}``; colour: ``{"mean": [r, g, b], "std": [...]}``.
    Computed from the histogram of the 256 pixel values, counted a record batch at a time: exact,
    25x faster than converting 42 M pixels to floats, and in the memory of one batch.
    """
    counts = None
    for rows in _batches(train_split):
        images = arrow_images(rows)  # (N, H, W, C)
        found = np.stack([np.bincount(images[..., c].reshape(-1), minlength=256) for c in range(images.shape[-1])])
        counts = found if counts is None else counts + found
    if counts is None:
        raise ValueError("the training split has no images: there is nothing to normalise by")
    stats = [_histogram_statistics(channel.astype(np.float64)) for channel in counts]
    if len(stats) == 1:
        return {"mean": stats[0][0], "std": stats[0][1]}
    return {"mean": [mean for mean, _ in stats], "std": [std for _, std in stats]}


def _batches(table: pd.DataFrame | ShardedTable) -> Iterator[pa.Table]:
    """Every row of ``table``, as Arrow tables a record batch at a time (a DataFrame: at once)."""
    return take(table, np.arange(len(table)))


def _shape(table: pd.DataFrame | ShardedTable) -> tuple[int, int, int]:
    """``(height, width, channels)`` of a table's images (of a sharded one: from its first rows)."""
    return table_shape(table if isinstance(table, pd.DataFrame) else table.read_part(0).slice(0, 1).to_pandas())


def _histogram_statistics(counts: np.ndarray) -> tuple[float, float]:
    values = np.arange(256) / 255.0
    mean = counts @ values / counts.sum()
    return float(mean), float(np.sqrt(counts @ (values - mean) ** 2 / counts.sum()))


def _augmentation(augmentation: dict[str, Any], image_source: str) -> AugmentationParams:
    """The flips this run uses: ``cnn.augmentation``, its nulls resolved for ``image_source``."""
    return AugmentationParams.model_validate(augmentation).resolved(image_source)


def train_cnn(
    train_split: ShardedTable | pd.DataFrame,
    val_split: pd.DataFrame,
    normalisation: dict[str, Any],
    class_names: list[str],
    model: dict[str, Any],
    training: dict[str, Any],
    augmentation: dict[str, Any],
    image_source: str,
    streaming: dict[str, Any],
    checkpoints: str,
    run_context: RunContext,
) -> tuple[Any, list[dict[str, float]]]:
    """Train the configured CNN with the shared loop; return the model and its per-epoch history.

    The network fits the tables' image size and channels; random flips follow
    ``cnn.augmentation.horizontal_flip`` (null: on for Fashion-MNIST only). The training images
    (``cnn_training_images``, parquet shards) are held in memory or streamed, as ``cnn.streaming`` says.
    Epochs are checkpointed under ``checkpoints`` (the catalog's ``cnn_checkpoints``) in a folder
    of this MLflow run's own, so only a re-opened run resumes from them.
    """
    from dlflow.training import MlflowEpochLogger
    from dlflow.training.cnn import fit_cnn

    result = fit_cnn(
        train_split, val_split, normalisation, class_names,
        CnnModelParams.model_validate(model), TrainingParams.model_validate(training), _augmentation(augmentation, image_source),
        callbacks=[MlflowEpochLogger()], checkpoint_dir=run_context.checkpoint_dir(checkpoints),
        streaming=StreamingParams.model_validate(streaming),
    )  # fmt: skip
    return result.model, [vars(record) for record in result.history]


def predict_cnn(
    model: Any,
    test_split: pd.DataFrame,
    normalisation: dict[str, Any],
    training: dict[str, Any],
    augmentation: dict[str, Any],
    image_source: str,
) -> pd.DataFrame:
    """Class probabilities for the test images: ``label``, ``prediction``, ``probabilities``
    (averaged over each image and its mirror with ``flip_test_time``, null: Fashion-MNIST only)."""
    from dlflow.training.cnn import predict_cnn as predict

    eval_batch_size = TrainingParams.model_validate(training).eval_batch_size
    flip_test_time = _augmentation(augmentation, image_source).flip_test_time
    return predict(model, test_split, normalisation, eval_batch_size, flip_test_time)


def plot_cnn_mistakes(test_split: pd.DataFrame, predictions: pd.DataFrame, class_names: list[str], max_examples: int) -> Any:
    """A grid of the most confident misclassified test images."""
    from dlflow.evaluation.plots import plot_misclassified

    return plot_misclassified(
        table_images(test_split),
        predictions["label"].to_numpy(),
        predictions["prediction"].to_numpy(),
        np.stack(predictions["probabilities"].to_numpy()),
        class_names,
        max_examples=max_examples,
    )


def package_cnn(
    network: Any,
    normalisation: dict[str, Any],
    class_names: list[str],
    test_split: pd.DataFrame,
    model: dict[str, Any],
    augmentation: dict[str, Any],
    image_source: str,
    resize: str,
) -> dict[str, Any]:
    """The servable model (pixels or encoded image files in, named classes out), an input example and the test digest.

    ``resize`` (``images.resize``, the policy ingestion fitted the images with) is how the served
    model fits an encoded image of another size to its input.
    """
    from dlflow.serving.packaging import image_classifier_package

    model = CnnModelParams.model_validate(model)
    return image_classifier_package(
        network, normalisation, class_names, test_split,
        architecture=model.architecture, options=model.options,
        flip_test_time=bool(_augmentation(augmentation, image_source).flip_test_time),
        resize=resize,
    )  # fmt: skip
