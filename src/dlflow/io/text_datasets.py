"""Read-only Kedro datasets for raw text: labelled sentences (MR or a user's table), MR itself, corpora.

Loading is the ingestion step, as for ``IdxDataset``: a registered file is made
present (kept if it is there and verifies, else copied from the offline mirror,
else downloaded) and then read strictly.

Example catalog entries::

    labelled_text_raw:                           # the labelled sentences, whatever their source
      type: dlflow.io.LabelledTextDataset
      source: table                              # mr: MR polarity, fetched into filepath (a folder)
      filepath: /data/tickets.csv                # CSV, TSV, parquet or JSON Lines, by suffix
      text_column: body
      label_column: queue
      encoding: utf-8                            # null: the source's own (MR latin-1, tables utf-8)

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

from collections.abc import Callable, Iterator
from typing import Any

import pandas as pd

from dlflow.io.raw_input import RawInputDataset
from dlflow.sources.errors import DataSourceError, UndecodableTextError
from dlflow.sources.labelled_text import read_labelled_text, table_format, with_class_names
from dlflow.sources.text import (
    CORPUS_FORMATS,
    POLARITY_CLASS_NAMES,
    CorpusFormat,
    read_corpus,
    read_polarity,
)
from dlflow.sources.text_sets import (
    POLARITY_ENCODING,
    POLARITY_FILES,
    fetch_corpus,
    fetch_polarity,
    get_corpus_source,
)


class PolarityDataset(RawInputDataset):
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
        super().__init__(filepath=filepath, mirror=mirror, metadata=metadata)
        self._encoding = encoding

    def load(self) -> pd.DataFrame:
        pos, neg = fetch_polarity(self._filepath, mirror=self._mirror)
        return read_polarity(pos, neg, encoding=self._encoding)

    def _exists(self) -> bool:
        return all((self._filepath / remote.filename).is_file() for remote in POLARITY_FILES.values())

    def _settings(self) -> dict[str, Any]:
        return {"encoding": self._encoding}


TEXT_SOURCES = ("mr", "table")


class LabelledTextDataset(RawInputDataset):
    """Labelled sentences in one schema whatever their source (``dlflow.sources.labelled_text``):
    ``sentence`` (str), ``label`` (int8 class index) and ``class_name`` (str).

    ``source: mr`` is MR sentence polarity v1.0, made present in the folder ``filepath`` as
    ``PolarityDataset`` does (classes ``negative``, ``positive``); ``source: table`` reads the
    user's CSV, TSV, parquet or JSON Lines file ``filepath`` (classes: its sorted distinct labels).
    The loaded table's ``attrs["source"]`` says where it came from, for messages downstream.
    """

    def __init__(
        self,
        *,
        filepath: str,
        source: str = "mr",
        text_column: str = "text",
        label_column: str = "label",
        encoding: str | None = None,
        parameters: dict[str, str] | None = None,
        mirror: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """
        Args:
            filepath: ``mr``: the folder that holds or will hold the two MR files; ``table``: the file.
            source: ``mr`` or ``table``.
            text_column, label_column: the table's columns of text and label (a table only).
            encoding: how a CSV, TSV or JSON Lines file (or MR) is decoded, strictly; ``None``: the
                source's own (MR: latin-1, a table: utf-8). Parquet is UTF-8 by definition.
            parameters: the runtime parameters that set ``filepath``, ``encoding``, ``text_column`` and
                ``label_column`` (e.g. ``{"filepath": "labelled_text"}``), which error messages then name.
            mirror: offline mirror folder laid out like ``shared/data`` (MR); defaults to ``$DLFLOW_DATA_MIRROR``.
            metadata: free-form information for plugins such as kedro-viz.
        """
        if source not in TEXT_SOURCES:
            raise ValueError(f"Unknown text source {source!r}; choose one of: {', '.join(TEXT_SOURCES)}")
        self._parameters = dict(parameters or {})
        if source == "table":
            table_format(filepath)  # an unsupported suffix is refused before any work
        super().__init__(filepath=filepath, mirror=mirror, metadata=metadata)
        self._source = source
        self._text_column, self._label_column = str(text_column), str(label_column)
        self._encoding = encoding or (POLARITY_ENCODING if source == "mr" else "utf-8")

    def _setting(self, name: str) -> str:
        return f"--params {self._parameters[name]}" if name in self._parameters else name

    def load(self) -> pd.DataFrame:
        try:
            frame = self._read()
        except UndecodableTextError as error:
            raise error.with_setting(self._setting("encoding")) from None
        frame.attrs["source"] = str(self._filepath) if self._source == "table" else f"MR sentence polarity ({self._filepath})"
        return frame

    def _read(self) -> pd.DataFrame:
        if self._source == "mr":
            pos, neg = fetch_polarity(self._filepath, mirror=self._mirror)
            return with_class_names(read_polarity(pos, neg, encoding=self._encoding), POLARITY_CLASS_NAMES)
        if not self._filepath.is_file():
            raise DataSourceError(
                f"No labelled text at {self._filepath}: name a CSV, TSV, parquet or JSON Lines file with "
                f"{self._setting('filepath')}=/path/to/file."
            )
        settings = {name: self._setting(name) for name in ("text_column", "label_column", "encoding")}
        return read_labelled_text(
            self._filepath,
            text_column=self._text_column,
            label_column=self._label_column,
            encoding=self._encoding,
            settings=settings,
        )

    def _exists(self) -> bool:
        if self._source == "mr":
            return all((self._filepath / remote.filename).is_file() for remote in POLARITY_FILES.values())
        return self._filepath.is_file()

    def _settings(self) -> dict[str, Any]:
        columns = {} if self._source == "mr" else {"text_column": self._text_column, "label_column": self._label_column}
        return {"source": self._source, "encoding": self._encoding} | columns


class TextCorpusDataset(RawInputDataset):
    """A corpus as raw sentences (lines, or 1,000-token chunks of a text8 file).

    Loading returns the list of sentences; with ``lazy: true`` it returns a function
    instead (as ``PartitionedDataset`` does) whose every call streams the corpus
    afresh, a sentence at a time, so a node can take every corpus as input, read
    only the ones its parameters select, and read a corpus of any size in constant
    memory. Either way an undecodable file is refused by name (with the line and
    byte, and the parameter to set), whenever the reading reaches it.
    """

    def __init__(
        self,
        *,
        filepath: str,
        source: str | None = None,
        encoding: str = "utf-8",
        format: CorpusFormat = "auto",
        mirror: str | None = None,
        encoding_parameter: str | None = None,
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
                see :mod:`dlflow.sources.text`.
            mirror: offline mirror folder laid out like ``shared/data``;
                defaults to ``$DLFLOW_DATA_MIRROR``.
            encoding_parameter: the runtime parameter that sets ``encoding`` (e.g.
                ``user_corpus_encoding``), which an undecodable file's error then names.
            lazy: return a reader function instead of the sentences.
            metadata: free-form information for plugins such as kedro-viz.
        """
        if source is not None:
            get_corpus_source(source)  # ValueError naming the known corpora
        if format not in CORPUS_FORMATS:
            raise ValueError(f"Unknown corpus format {format!r}; choose one of: {', '.join(CORPUS_FORMATS)}")
        super().__init__(filepath=filepath, mirror=mirror, metadata=metadata)
        self._source = source
        self._encoding = encoding
        self._encoding_parameter = encoding_parameter
        self._format = format
        self._lazy = lazy

    def load(self) -> list[str] | Callable[[], Iterator[str]]:
        return self._stream if self._lazy else list(self._stream())

    def _stream(self) -> Iterator[str]:
        """The sentences, read as they are consumed (the corpus' files and format are checked at once)."""
        if self._source is not None:
            fetch_corpus(self._source, self._filepath, mirror=self._mirror)
        try:
            sentences = read_corpus(self._filepath, encoding=self._encoding, format=self._format)
        except UndecodableTextError as error:
            raise self._named(error) from None
        return self._named_errors(sentences)

    def _named_errors(self, sentences: Iterator[str]) -> Iterator[str]:
        try:
            yield from sentences
        except UndecodableTextError as error:
            raise self._named(error) from None

    def _named(self, error: UndecodableTextError) -> UndecodableTextError:
        """The error, naming the runtime parameter to set where there is one."""
        return error if self._encoding_parameter is None else error.with_setting(f"--params {self._encoding_parameter}")

    def _settings(self) -> dict[str, Any]:
        return {"source": self._source, "encoding": self._encoding, "format": self._format}
