"""Read-only Kedro datasets for raw text: the MR polarity sentences and corpora.

Loading is the ingestion step, as for ``IdxDataset``: a registered file is made
present (kept if it is there and verifies, else copied from the offline mirror,
else downloaded) and then read strictly.

Example catalog entries::

    mr_polarity_raw:
      type: dlflow.io.PolarityDataset
      filepath: data/01_raw/rt-polarity          # folder: rt-polarity.pos, rt-polarity.neg

    movie_reviews_raw:
      type: dlflow.io.TextCorpusDataset
      filepath: data/01_raw/corpora/movie_reviews.zip
      source: movie_reviews                      # or brown; null: read filepath as given

    my_corpus_raw:
      type: dlflow.io.TextCorpusDataset
      filepath: data/01_raw/my-corpus            # a text file, .gz, folder or zip
      encoding: utf-8
      format: auto                               # lines | tagged | text8
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
from kedro.io import AbstractDataset, DatasetError

from dlflow.ingest.text import CORPUS_FORMATS, CorpusFormat, read_corpus, read_polarity
from dlflow.ingest.text_sources import (
    POLARITY_ENCODING,
    POLARITY_FILES,
    fetch_corpus,
    fetch_polarity,
    get_corpus_source,
)


class PolarityDataset(AbstractDataset[None, pd.DataFrame]):
    """MR sentence polarity v1.0 as a table: ``sentence`` (str) and ``label`` (int8, 1 = positive)."""

    def __init__(
        self,
        *,
        filepath: str,
        encoding: str = POLARITY_ENCODING,
        mirror: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """
        Args:
            filepath: folder (e.g. ``data/01_raw/rt-polarity``) that holds or
                will hold ``rt-polarity.pos`` and ``rt-polarity.neg``.
            encoding: how the files are decoded (strictly); they are Latin-1.
            mirror: offline mirror folder laid out like ``shared/data``;
                defaults to ``$DLFLOW_DATA_MIRROR``.
            metadata: free-form information for plugins such as kedro-viz.
        """
        self._folder = Path(filepath)
        self._encoding = encoding
        self._mirror = Path(mirror) if mirror else None
        self.metadata = metadata

    def load(self) -> pd.DataFrame:
        pos, neg = fetch_polarity(self._folder, mirror=self._mirror)
        return read_polarity(pos, neg, encoding=self._encoding)

    def save(self, data: None) -> None:
        raise DatasetError(
            f"{self._folder} is raw input: PolarityDataset is read-only. Save derived data to another dataset."
        )

    def _exists(self) -> bool:
        return all((self._folder / remote.filename).is_file() for remote in POLARITY_FILES.values())

    def _describe(self) -> dict[str, Any]:
        return {
            "filepath": str(self._folder),
            "encoding": self._encoding,
            "mirror": str(self._mirror) if self._mirror else None,
        }


class TextCorpusDataset(AbstractDataset[None, "list[str] | Callable[[], list[str]]"]):
    """A corpus as a list of raw sentences (lines, or 1,000-token chunks of a text8 file).

    With ``lazy: true`` loading returns a function that reads the corpus when
    called (as ``PartitionedDataset`` does), so a node can take every corpus
    as input and read only the ones its parameters select.
    """

    def __init__(
        self,
        *,
        filepath: str,
        source: str | None = None,
        encoding: str = "utf-8",
        format: CorpusFormat = "auto",
        mirror: str | None = None,
        lazy: bool = False,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """
        Args:
            filepath: the corpus: a text file, ``.gz`` file, folder or zip. For
                a registered ``source`` this is where its zip is kept.
            source: ``movie_reviews``, ``brown`` or ``subjectivity`` to fetch that NLTK corpus
                (present → mirror → download); ``None`` to read ``filepath``
                as the user supplied it.
            encoding: how the text is decoded (strictly).
            format: ``auto`` (detect per file), ``lines``, ``tagged`` or ``text8``;
                see :mod:`dlflow.ingest.text`.
            mirror: offline mirror folder laid out like ``shared/data``;
                defaults to ``$DLFLOW_DATA_MIRROR``.
            lazy: return a reader function instead of the sentences.
            metadata: free-form information for plugins such as kedro-viz.
        """
        if source is not None:
            get_corpus_source(source)  # ValueError naming the known corpora
        if format not in CORPUS_FORMATS:
            raise ValueError(f"Unknown corpus format {format!r}; choose one of: {', '.join(CORPUS_FORMATS)}")
        self._filepath = Path(filepath)
        self._source = source
        self._encoding = encoding
        self._format = format
        self._mirror = Path(mirror) if mirror else None
        self._lazy = lazy
        self.metadata = metadata

    def load(self) -> list[str] | Callable[[], list[str]]:
        return self._read if self._lazy else self._read()

    def _read(self) -> list[str]:
        if self._source is not None:
            fetch_corpus(self._source, self._filepath, mirror=self._mirror)
        return list(read_corpus(self._filepath, encoding=self._encoding, format=self._format))

    def save(self, data: None) -> None:
        raise DatasetError(
            f"{self._filepath} is raw input: TextCorpusDataset is read-only. Save derived data to another dataset."
        )

    def _exists(self) -> bool:
        return self._filepath.exists()

    def _describe(self) -> dict[str, Any]:
        return {
            "filepath": str(self._filepath),
            "source": self._source,
            "encoding": self._encoding,
            "format": self._format,
            "mirror": str(self._mirror) if self._mirror else None,
        }
