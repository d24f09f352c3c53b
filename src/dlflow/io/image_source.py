"""``ImageSourceDataset``: the raw images of ``image_source``, a registered IDX data set or your own folder.

A Kedro pipeline cannot change shape with a parameter, so the ``ingestion`` pipeline has one
raw input whatever the source; loading it gives a reader whose ``read(**options)`` returns the
image tables (``dlflow.sources.image_folder.ImageSplits``):

* a registered source (``fashion_mnist``, ``mnist``): its four IDX files, fetched as
  ``IdxDataset`` fetches them (present in ``raw_dir`` and verified → offline mirror →
  download), checked pair by pair; the test split is the source's own, the validation
  table is empty;
* ``folder``: the images of ``images_dir``, scanned, decoded and split by
  ``dlflow.sources.image_folder.read_image_folder`` with the ``images`` parameters.

Example catalog entry::

    image_raw:
      type: dlflow.io.ImageSourceDataset
      source: ${runtime_params:image_source,${globals:image_source}}
      images_dir: ${runtime_params:images_dir,${globals:images_dir,null}}
      raw_dir: data/01_raw/${runtime_params:image_source,${globals:image_source}}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset, DatasetError

from dlflow.io.idx_dataset import IdxDataset
from dlflow.sources.idx import validate_image_label_pair
from dlflow.sources.image_folder import ImageSplits, read_image_folder
from dlflow.sources.image_sets import get_image_source
from dlflow.sources.image_table import image_table

FOLDER_SOURCE = "folder"


class FolderImages:
    """Your own folder of images, read with the ``images`` parameters."""

    def __init__(self, root: Path, dataset_name: str | None) -> None:
        self.root = root
        self.dataset_name = dataset_name

    def read(self, **options: Any) -> ImageSplits:
        """``read_image_folder(root, **options)``, the report naming the data set."""
        splits = read_image_folder(self.root, **options)
        splits.report = {"source": FOLDER_SOURCE, "dataset_name": self.dataset_name, **splits.report}
        return splits


class IdxImages:
    """A registered source's four IDX files: 28x28 grey images, its own train/test split."""

    def __init__(self, source: str, raw_dir: Path, dataset_name: str | None, mirror: str | None = None) -> None:
        self.source = source
        self.paths = {key: raw_dir / remote.filename for key, remote in get_image_source(source).files.items()}
        self.files = {
            key: IdxDataset(filepath=str(path), source=source, file=key, mirror=mirror) for key, path in self.paths.items()
        }
        self.dataset_name = dataset_name

    def read(self, *, image_size=None, channels=None, **_: Any) -> ImageSplits:
        """The tables of the IDX files; ``image_size`` and ``channels`` are refused (the files fix them)."""
        if image_size is not None or channels is not None:
            raise ValueError(
                f"images.image_size and images.channels apply to image_source=folder; {self.source}'s images are "
                "28x28 grey: leave both null"
            )
        class_names = list(get_image_source(self.source).class_names)
        tables = {}
        for split in ("train", "test"):
            images, labels = self.files[f"{split}_images"].load(), self.files[f"{split}_labels"].load()
            validate_image_label_pair(
                images,
                labels,
                images_path=self.paths[f"{split}_images"],
                labels_path=self.paths[f"{split}_labels"],
                num_classes=len(class_names),
            )
            tables[split] = image_table(images, labels)
        report = {
            "source": self.source,
            "dataset_name": self.dataset_name,
            "files": {key: str(path) for key, path in self.paths.items()},
            "test_split": f"{self.source}'s own test files",
            "validation_split": "drawn from the training split by the CNN pipeline",
            "images": sum(len(table) for table in tables.values()),
            "skipped": 0,
            "bad_files": [],
            "image_size": list(images.shape[1:3]),
            "channels": 1,
            "class_names": class_names,
        }
        return ImageSplits(tables["train"], tables["train"].iloc[:0].copy(), tables["test"], class_names, report)


class ImageSourceDataset(AbstractDataset[None, "FolderImages | IdxImages"]):
    """Read-only: loading gives a reader of ``source``'s images (``read(**options)`` → ``ImageSplits``)."""

    def __init__(
        self,
        *,
        source: str,
        images_dir: str | None = None,
        raw_dir: str = "data/01_raw",
        dataset_name: str | None = None,
        mirror: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """
        Args:
            source: ``folder``, or a key of ``dlflow.sources.image_sets.IMAGE_SOURCES``.
            images_dir: the folder of images (``source: folder`` only).
            raw_dir: where a registered source's IDX files are kept (fetched there when missing).
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
            return FolderImages(self._images_dir, self._dataset_name)
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
            "mirror": self._mirror,
        }
