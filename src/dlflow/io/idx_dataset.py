"""``IdxDataset``: a read-only Kedro dataset for the IDX files of a registered image source.

Loading it is the ingestion step: the raw file is made present at
``filepath`` (kept if it is there and verifies, else copied from the offline
mirror, else downloaded), then decoded to a numpy array.

Example catalog entry::

    fashion_mnist_train_images_raw:
      type: dlflow.io.IdxDataset
      filepath: data/01_raw/fashion-mnist/train-images-idx3-ubyte.gz
      source: fashion_mnist
      file: train_images
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
from kedro.io import DatasetError

from dlflow.io.raw_input import RawInputDataset
from dlflow.sources.download import fetch
from dlflow.sources.idx import parse_idx, read_idx_bytes
from dlflow.sources.image_sets import get_image_source


class IdxDataset(RawInputDataset):
    """Fetches (present → mirror → download) and reads one IDX file of an image source."""

    def __init__(
        self,
        *,
        filepath: str,
        source: str,
        file: str,
        mirror: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """
        Args:
            filepath: where the raw file lives, e.g. under ``data/01_raw``.
            source: key in ``dlflow.sources.image_sets.IMAGE_SOURCES``.
            file: key in that source's files (``train_images``, ``test_labels``, ...).
            mirror: offline mirror folder laid out like ``shared/data``;
                defaults to ``$DLFLOW_DATA_MIRROR``.
            metadata: free-form information for plugins such as kedro-viz.
        """
        files = get_image_source(source).files
        if file not in files:
            known = ", ".join(files)
            raise ValueError(f"Image source {source!r} has no file {file!r}; choose one of: {known}.")
        super().__init__(filepath=filepath, mirror=mirror, metadata=metadata)
        self._source = source
        self._file = file
        self._remote = files[file]
        self._digest: str | None = None

    def load(self) -> np.ndarray:
        path = fetch(self._remote, self._filepath, mirror=self._mirror)
        data = read_idx_bytes(path)
        self._digest = hashlib.sha256(data).hexdigest()
        return parse_idx(data, source=str(path))

    @property
    def digest(self) -> str:
        """sha256 hex of the decompressed IDX bytes, for data lineage (computed by ``load``)."""
        if self._digest is None:
            if not self._filepath.exists():
                raise DatasetError(f"{self._filepath} is not there yet: load() the dataset to obtain it.")
            self._digest = hashlib.sha256(read_idx_bytes(self._filepath)).hexdigest()
        return self._digest

    def _settings(self) -> dict[str, Any]:
        return {"source": self._source, "file": self._file}
