"""Ingestion nodes: the raw images of any source become image tables, a leakage check and a data summary.

The raw input arrives through the catalog (``image_raw``, ``dlflow.io.ImageSourceDataset``): a
registered source's IDX files or your own folder of class folders. These nodes turn it into
tables with one schema (``dlflow.sources.image_table``: ``label``, ``pixels``, ``height``,
``width``, ``channels``, and for a folder ``path`` and ``sha256``), one per split, and report
what they found. A folder's tables are streamed (written a decoded shard at a time), and the
checks read the small index of the rows, never the pixels.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from dlflow.config import ImagesParams, parse
from dlflow.sources.image_folder import find_duplicates

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


def ingest_images(image_raw: Any, images: dict[str, Any]) -> tuple[Any, Any, Any, list[str], dict, pd.DataFrame]:
    """Read the source's images (``image_raw.read``) with the ``images`` parameters.

    Returns the train, validation (no rows unless the folder has val/) and test tables (DataFrames, or
    chunks that ``ParquetShardsDataset`` writes as they come), the class names, the ingestion report
    (source, size, channels, bad files skipped, ...) and the index of the tables' rows (split, label, and
    for a folder path and sha256), which the checks below read instead of the pixels.
    """
    options: ImagesParams = parse("images", images)  # type: ignore[assignment]
    data = image_raw.read(
        image_size=options.image_size,
        channels=options.channels,
        resize=options.resize,
        test_fraction=options.test_fraction,
        split_seed=options.split_seed,
        on_bad_file=options.on_bad_file,
        workers=options.workers,
    )
    index = data.index if data.index is not None else table_index({"train": data.train, "val": data.val, "test": data.test})
    return data.train, data.val, data.test, data.class_names, data.report, index


def table_index(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The index of in-memory tables: split, label, and path and sha256 where the tables have them."""
    columns = [name for name in ("label", "path", "sha256") if all(name in t.columns for t in tables.values())]
    frames = [table[columns].assign(split=split) for split, table in tables.items()]
    return pd.concat(frames, ignore_index=True)[["split", *columns]]


def _by_split(index: pd.DataFrame) -> dict[str, pd.DataFrame]:
    return {split: index[index["split"] == split] for split in SPLITS}


def find_image_leakage(index: pd.DataFrame) -> dict[str, Any]:
    """Files of one content (sha256) in more than one split, and contents given two labels; warns of either.

    ``index``: every table row's split, label, path and sha256 (``ingest_images``)."""
    report = find_duplicates(_by_split(index))
    if report["leaked_images"]:
        pairs = ", ".join(f"{n} in {pair.replace('-', ' and ')}" for pair, n in report["leaked_by_splits"].items())
        example = report["leaked"][0]["files"]
        logger.warning(
            "Leakage: %d image(s) appear in more than one split with the same content (%s), e.g. %s; "
            "the test metrics overstate. The list: data/leakage.json in the MLflow run.",
            report["leaked_images"], pairs, " = ".join(path for paths in example.values() for path in paths[:1]),
        )  # fmt: skip
    if report.get("conflicting_labels"):
        logger.warning(
            "%d image content(s) carry two or more labels (data/leakage.json lists them)", report["conflicting_labels"]
        )
    return report


def summarise_image_data(
    index: pd.DataFrame,
    class_names: list[str],
    ingestion_report: dict[str, Any],
    leakage: dict[str, Any],
) -> tuple[dict, Any]:
    """Class counts per split, imbalance ratios, image shape and source (JSON for MLflow), and their bar chart.

    ``index``: every table row's split and label; the shape is the report's (every row has it)."""
    splits = _by_split(index)
    tables = {split: table for split, table in splits.items() if len(table)}
    counts = {split: _class_counts(table, class_names) for split, table in tables.items()}
    total = {name: sum(split_counts[name] for split_counts in counts.values()) for name in class_names}
    summary = {
        "source": ingestion_report.get("source"),
        "dataset_name": ingestion_report.get("dataset_name"),
        **({"images_dir": ingestion_report["images_dir"]} if "images_dir" in ingestion_report else {}),
        "image_size": list(ingestion_report["image_size"]),
        "channels": ingestion_report["channels"],
        "num_classes": len(class_names),
        **{f"num_{split}": len(table) for split, table in splits.items()},
        "class_counts": counts,
        "imbalance_ratio": {split: _imbalance(split_counts) for split, split_counts in (*counts.items(), ("all", total))},
        "train_class_counts": counts["train"],
        "test_class_counts": counts.get("test", {}),
        "skipped_files": ingestion_report.get("skipped", 0),
        "leaked_images": leakage.get("leaked_images", 0),
    }
    from dlflow.evaluation.plots import plot_class_distribution

    figure = plot_class_distribution(counts, title=f"Images per class: {summary['dataset_name'] or summary['source']}")
    return summary, figure


def image_data_metrics(summary: dict[str, Any]) -> dict[str, dict[str, float]]:
    """The summary's headline numbers as MLflow metrics: bad files skipped, leaked images, class imbalance."""
    ratio = summary["imbalance_ratio"]["train"]
    metrics = {
        "data_skipped_files": summary["skipped_files"],
        "data_leaked_images": summary["leaked_images"],
        "data_num_train": summary["num_train"],
        "data_num_test": summary["num_test"],
        **({"data_imbalance_ratio": ratio} if ratio is not None else {}),  # None: a class has no training image
    }
    return {name: {"value": float(value), "step": 0} for name, value in metrics.items()}


def _class_counts(table: pd.DataFrame, class_names: list[str]) -> dict[str, int]:
    found = np.bincount(table["label"].to_numpy().astype(np.int64), minlength=len(class_names))
    return {name: int(n) for name, n in zip(class_names, found)}


def _imbalance(counts: dict[str, int]) -> float | None:
    """The largest class's count over the smallest's; None when a class has none."""
    values = list(counts.values())
    return round(max(values) / min(values), 3) if values and min(values) > 0 else None
