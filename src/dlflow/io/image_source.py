"""``ImageSourceDataset``: the raw images of ``image_source``, a registered IDX data set or your own folder.

A Kedro pipeline cannot change shape with a parameter, so the ``ingestion`` pipeline has one
raw input whatever the source; loading it gives a reader whose ``read(**options)`` returns the
image tables (``dlflow.sources.image_folder.ImageSplits``):

* a registered source (``fashion_mnist``, ``mnist``): its four IDX files, fetched as
  ``IdxDataset`` fetches them (present in ``raw_dir`` and verified → offline mirror →
  download), checked pair by pair; the test split is the source's own, the validation
  table is empty; the train and test tables are keyed parts of 10,000 images read in
  chunks (``dlflow.sources.idx_stream``), reused by the writer while the files are unchanged;
* ``folder``: the images of ``images_dir``, scanned, decoded in groups into shards kept in
  ``decoded_dir`` (a rerun decodes only the groups whose files changed) and split with the
  ``images`` parameters (``dlflow.sources.image_folder_shards``); its tables are chunks made a
  decoded shard at a time, for ``ParquetShardsDataset`` to write as they come, and its
  ``index`` lists every row's split, label, path and sha256 (no pixels).

Example catalog entry::

    image_raw:
      type: dlflow.io.ImageSourceDataset
      source: ${runtime_params:image_source,${globals:image_source}}
      images_dir: ${runtime_params:images_dir,${globals:images_dir,null}}
      raw_dir: data/01_raw/${runtime_params:image_source,${globals:image_source}}
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from kedro.io import AbstractDataset, DatasetError

from dlflow.io.parquet_shards import ParquetShardsDataset
from dlflow.sources.download import fetch
from dlflow.sources.idx_stream import check_pair, idx_parts, read_labels
from dlflow.sources.image_files import RESIZE_POLICIES
from dlflow.sources.image_folder import SPLITS, ImageSplits, _Progress, scan_image_folder
from dlflow.sources.image_folder_shards import (
    GROUP_FILES,
    DecodeCount,
    decode_pool,
    decoded_parts,
    plan_decoded,
    split_tables,
)
from dlflow.sources.image_sets import get_image_source
from dlflow.sources.image_table import image_table

FOLDER_SOURCE = "folder"

logger = logging.getLogger(__name__)


class FolderImages:
    """Your own folder of images, streamed through decoded shards in ``decoded`` (a rerun decodes only the
    groups of files that changed) into image tables made a shard at a time."""

    def __init__(self, root: Path, dataset_name: str | None, decoded_dir: Path, group_files: int = GROUP_FILES) -> None:
        self.root = root
        self.dataset_name = dataset_name
        self.decoded_dir = decoded_dir
        self.group_files = group_files

    def read(
        self,
        *,
        image_size: tuple[int, int] | None = None,
        channels: int | None = None,
        resize: str = "stretch",
        test_fraction: float = 0.2,
        split_seed: int = 42,
        on_bad_file: str = "fail",
        workers: int | None = None,
        progress: bool = True,
    ) -> ImageSplits:
        """The folder's tables as ``TableChunks`` (a decoded shard at a time) with their ``index``.

        Options as ``read_image_folder``'s. The decoded shards are brought up to date first, all or nothing
        (``ParquetShardsDataset`` with keyed parts); the report says how many files were decoded this time.
        """
        if resize not in RESIZE_POLICIES:
            raise ValueError(f"resize must be one of {RESIZE_POLICIES}, got {resize!r}")
        if on_bad_file not in ("fail", "skip"):
            raise ValueError(f"on_bad_file must be 'fail' or 'skip', got {on_bad_file!r}")
        started = time.perf_counter()
        scan = scan_image_folder(self.root)
        if scan.ignored:
            shown = ", ".join(scan.ignored[:5]) + (", ..." if len(scan.ignored) > 5 else "")
            logger.info("Ignoring %d file(s) without an image extension in %s: %s", len(scan.ignored), scan.root, shown)
        logger.info("Decoding the new and changed of %d image files of %d classes from %s (%s) into %s",
                    len(scan.paths), len(scan.class_names), scan.root, scan.layout, self.decoded_dir)  # fmt: skip
        given_size = tuple(int(n) for n in image_size) if image_size is not None else None
        count = DecodeCount()
        bar = _Progress(len(scan.paths), "decoding images", progress)
        pool = decode_pool(workers, len(scan.paths))
        try:
            parts = decoded_parts(
                scan,
                size=given_size,
                channels=channels,
                resize=resize,
                pool=pool,
                count=count,
                progress=bar,
                group_files=self.group_files,
            )
            ParquetShardsDataset(filepath=str(self.decoded_dir)).save(parts)
        finally:
            bar.close()
            if pool is not None:
                pool.terminate()
                pool.join()
        decoded = ParquetShardsDataset(filepath=str(self.decoded_dir), lazy=True).load()
        plan, shard_of = plan_decoded(scan, decoded, given_size=given_size, channels=channels, resize=resize,
                                      test_fraction=test_fraction, split_seed=split_seed, on_bad_file=on_bad_file)  # fmt: skip
        tables, index = split_tables(scan, decoded, plan, shard_of, workers=workers, progress=progress)
        elapsed = time.perf_counter() - started
        logger.info("Decoded %d of %d files (%d of %d groups) in %.1f s; tables: %s", count.files, len(scan.paths),
                    count.groups, len(decoded.parts), elapsed, ", ".join(f"{len(tables[s])} {s}" for s in SPLITS))  # fmt: skip
        report = {
            "source": FOLDER_SOURCE,
            "dataset_name": self.dataset_name,
            **plan.report,
            "decoded_dir": str(self.decoded_dir),
            "decoded_groups": len(decoded.parts),
            "decoded_now": {"files": count.files, "groups": count.groups},
            "seconds": round(elapsed, 2),
        }
        return ImageSplits(tables["train"], tables["val"], tables["test"], list(scan.class_names), report, index)


class IdxImages:
    """A registered source's four IDX files: 28x28 grey images, its own train/test split."""

    def __init__(self, source: str, raw_dir: Path, dataset_name: str | None, mirror: str | None = None) -> None:
        self.source = source
        self.paths = {key: raw_dir / remote.filename for key, remote in get_image_source(source).files.items()}
        self.mirror = mirror
        self.dataset_name = dataset_name

    def read(self, *, image_size=None, channels=None, **_: Any) -> ImageSplits:
        """The tables of the IDX files as keyed parts read in chunks (``dlflow.sources.idx_stream``: a rerun on
        the same files rewrites nothing), with their index; ``image_size`` and ``channels`` are refused (the
        files fix them). The headers and labels are checked here, before anything is written."""
        if image_size is not None or channels is not None:
            raise ValueError(
                f"images.image_size and images.channels apply to image_source=folder; {self.source}'s images are "
                "28x28 grey: leave both null"
            )
        class_names = list(get_image_source(self.source).class_names)
        tables, labels = {}, {}
        for split in ("train", "test"):
            images_path, labels_path = (
                fetch(get_image_source(self.source).files[f"{split}_{kind}"], self.paths[f"{split}_{kind}"], mirror=self.mirror)
                for kind in ("images", "labels")
            )
            check_pair(images_path, labels_path)
            labels[split] = read_labels(labels_path, len(class_names))
            tables[split] = PartList(lambda i=images_path, t=labels_path, v=labels[split]: idx_parts(i, t, v), len(labels[split]))
        index = pd.DataFrame(
            {
                "split": np.repeat(["train", "test"], [len(labels["train"]), len(labels["test"])]),
                "label": np.concatenate([labels["train"], labels["test"]]).astype(np.uint16),
            }
        )
        report = {
            "source": self.source,
            "dataset_name": self.dataset_name,
            "files": {key: str(path) for key, path in self.paths.items()},
            "test_split": f"{self.source}'s own test files",
            "validation_split": "drawn from the training split by the CNN pipeline",
            "images": int(len(index)),
            "skipped": 0,
            "bad_files": [],
            "image_size": [28, 28],
            "channels": 1,
            "class_names": class_names,
        }
        empty = image_table(np.zeros((0, 28, 28), np.uint8), np.zeros(0, np.int64))
        return ImageSplits(tables["train"], empty, tables["test"], class_names, report, index)


class PartList:
    """The ``ShardPart``s of a table, made when iterated (each iteration anew); ``len()`` is the row count."""

    def __init__(self, make, rows: int) -> None:
        self._make, self._rows = make, rows

    def __iter__(self):
        return iter(self._make())

    def __len__(self) -> int:
        return self._rows


class ImageSourceDataset(AbstractDataset[None, "FolderImages | IdxImages"]):
    """Read-only: loading gives a reader of ``source``'s images (``read(**options)`` → ``ImageSplits``)."""

    def __init__(
        self,
        *,
        source: str,
        images_dir: str | None = None,
        raw_dir: str = "data/01_raw",
        decoded_dir: str | None = None,
        group_files: int = GROUP_FILES,
        dataset_name: str | None = None,
        mirror: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """
        Args:
            source: ``folder``, or a key of ``dlflow.sources.image_sets.IMAGE_SOURCES``.
            images_dir: the folder of images (``source: folder`` only).
            raw_dir: where a registered source's IDX files are kept (fetched there when missing).
            decoded_dir: where a folder's decoded shards are kept between runs (``source: folder``); default
                ``<raw_dir>/decoded/<dataset_name or the folder's name>``.
            group_files: about how many files a group of decoded files holds at most (its pixels are in memory
                at once; a changed file decodes its group again).
            dataset_name: what the data set is called (``dlflow.sources.naming``), for the report.
            mirror: offline mirror folder laid out like ``shared/data``; defaults to ``$DLFLOW_DATA_MIRROR``.
            metadata: free-form information for plugins such as kedro-viz.
        """
        self._source = str(source)
        self._dataset_name = dataset_name
        self._mirror = mirror
        self.metadata = metadata
        self._images_dir = Path(str(images_dir)).expanduser() if images_dir not in (None, "") else None
        self._raw_dir = Path(raw_dir)
        self._decoded_dir = Path(decoded_dir) if decoded_dir not in (None, "") else None
        if int(group_files) < 1:
            raise ValueError(f"group_files must be positive, got {group_files}")
        self._group_files = int(group_files)
        if self._source != FOLDER_SOURCE:
            get_image_source(self._source)  # an unknown source fails here, naming the known ones
        # the node cache fingerprints what lies here (dlflow.caching): the folder's files or the IDX files
        self._filepath = self._images_dir if self._source == FOLDER_SOURCE else self._raw_dir

    def load(self) -> FolderImages | IdxImages:
        if self._source == FOLDER_SOURCE:
            if self._images_dir is None:
                raise DatasetError(
                    "image_source=folder needs the folder: --params image_source=folder,images_dir=/path/to/images"
                )
            if not self._images_dir.is_dir():
                raise DatasetError(
                    f"images_dir {self._images_dir} is not a folder: name a folder of class folders "
                    "with --params images_dir=/path/to/images"
                )
            decoded = self._decoded_dir or self._raw_dir / "decoded" / (self._dataset_name or self._images_dir.name)
            return FolderImages(self._images_dir, self._dataset_name, decoded, self._group_files)
        return IdxImages(self._source, self._raw_dir, self._dataset_name, self._mirror)

    def save(self, data: Any) -> None:
        raise DatasetError(f"{type(self).__name__} is raw input ({self._filepath}): read-only. Save derived data elsewhere.")

    def _exists(self) -> bool:
        return self._filepath is not None and self._filepath.exists()

    def _describe(self) -> dict[str, Any]:
        return {
            "source": self._source,
            "filepath": str(self._filepath) if self._filepath is not None else None,
            "dataset_name": self._dataset_name,
            "decoded_dir": str(self._decoded_dir) if self._decoded_dir is not None else None,
            "mirror": self._mirror,
        }
