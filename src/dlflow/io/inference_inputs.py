"""Read-only Kedro datasets for the files a user hands to batch inference.

kedro-datasets reads parquet and plain text, but not "an IDX file *or* a
parquet table" at one user-supplied path, which is what these do (chosen by
the file's suffix). Example catalog entries::

    cnn_inference_input:
      type: dlflow.io.ImagesFileDataset
      filepath: ${runtime_params:images_path,data/02_intermediate/fashion_mnist/test.parquet}

    rnn_inference_input:
      type: dlflow.io.SentencesFileDataset
      filepath: ${runtime_params:sentences_path,data/02_intermediate/mr/sentences.parquet}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from kedro.io import AbstractDataset, DatasetError

from dlflow.sources.idx import read_idx
from dlflow.sources.image_table import table_images


class _InputFileDataset(AbstractDataset):
    """A read-only input file; ``load`` is what subclasses add."""

    _what = "input"
    _parameter = "path"

    def __init__(self, *, filepath: str, metadata: dict[str, Any] | None = None) -> None:
        self._filepath = Path(filepath)
        self.metadata = metadata

    def _path(self) -> Path:
        if not self._filepath.is_file():
            raise DatasetError(f"No {self._what} file at {self._filepath}: name one with --params {self._parameter}=<file>")
        return self._filepath

    def save(self, data: Any) -> None:
        raise DatasetError(f"{self._filepath} is an inference input: {type(self).__name__} is read-only.")

    def _exists(self) -> bool:
        return self._filepath.is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}


class ImagesFileDataset(_InputFileDataset):
    """Images as a uint8 array: an IDX file (gzip or raw) or a parquet table with a ``pixels`` column.

    ``pixels`` holds raw bytes (the pipeline's own image tables) or lists of
    0-255 values. Rows of ``side * side`` values come back as ``(N, side, side)``,
    any other length as ``(N, length)``; the inference pipeline checks the
    shape against the model's signature.
    """

    _what, _parameter = "images", "images_path"

    def load(self) -> np.ndarray:
        path = self._path()
        if path.suffix != ".parquet":
            return read_idx(path)
        table = pd.read_parquet(path)
        if "pixels" not in table.columns:
            raise DatasetError(
                f"{path} has no 'pixels' column (it has {list(table.columns)}): "
                "expected a table like data/02_intermediate/<source>/test.parquet"
            )
        try:
            return table_images(table)
        except ValueError as error:
            raise DatasetError(f"{path}: {error}") from None


class SentencesFileDataset(_InputFileDataset):
    """Sentences as a table: a parquet file as it is, or a text file read as one ``sentence`` per non-empty line."""

    _what, _parameter = "sentences", "sentences_path"

    def __init__(self, *, filepath: str, encoding: str = "utf-8", metadata: dict[str, Any] | None = None) -> None:
        super().__init__(filepath=filepath, metadata=metadata)
        self._encoding = encoding

    def load(self) -> pd.DataFrame:
        path = self._path()
        if path.suffix != ".parquet":
            lines = path.read_text(encoding=self._encoding).splitlines()
            return pd.DataFrame({"sentence": [line.strip() for line in lines if line.strip()]})
        table = pd.read_parquet(path)
        if "sentence" not in table.columns:
            raise DatasetError(f"{path} has no 'sentence' column (it has {list(table.columns)}): expected one sentence per row")
        for row, value in enumerate(table["sentence"].tolist()):
            if not isinstance(value, str) or not value.strip():
                raise DatasetError(
                    f"{path}: row {row} has the sentence {value!r}; every row needs a non-empty string "
                    "(drop or fill that row, or use a text file: one sentence per line, empty lines skipped)"
                )
        return table
