"""Labelled text in the formats people export: CSV, TSV, parquet or JSON Lines, one example a row.

:func:`read_labelled_text` reads such a table (the format by the file's suffix,
:data:`TABLE_FORMATS`), takes the text and label columns it is told, and returns the
project's labelled-sentence table, the one schema every source of labelled text gives
(MR's included, :func:`with_class_names`):

``sentence``     str: the text, stripped; never empty
``label``        int8 (int16 beyond 127 classes): the class index, ``0 .. k-1``
``class_name``   str: the name of class ``label``

The class names are the distinct labels, sorted (integers by value, anything else as
strings) and written as strings: labels ``2, 10, 1`` give ``"1", "2", "10"``; ``pos``,
``neg`` give ``"neg", "pos"``. A CSV or TSV cell is an integer label when it is written as
one (``7``, ``-1``; not ``07``). String labels are stripped of surrounding spaces.

Text files (CSV, TSV, JSON Lines) are decoded strictly in the given encoding (a UTF-8 or
UTF-16 byte-order mark is dropped); parquet holds UTF-8 by definition. Every refusal is a
:class:`DataValidationError` (:class:`DataSourceError` for a missing file) that names the
file and, where rows are at fault, the rows: a CSV/TSV file's rows are numbered as a
spreadsheet shows them (the header is row 1), a JSON Lines file's by line, a parquet
table's from 0. Refused are: an unknown suffix, undecodable bytes, a malformed file, a
missing column (the message lists the file's columns), an empty or missing text, a text
that is not a string, a missing label, a fractional number as a label, and fewer than two
classes. Framework-free: the catalog reads through ``dlflow.io.LabelledTextDataset``.
"""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dlflow.sources.errors import DataSourceError, DataValidationError, UndecodableTextError
from dlflow.sources.text import read_text

logger = logging.getLogger("dlflow.sources")

TABLE_FORMATS: dict[str, str] = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}
SENTENCE, LABEL, CLASS_NAME = "sentence", "label", "class_name"

_INTEGER = re.compile(r"-?(0|[1-9][0-9]*)")  # an integer as written canonically: "7", "-1", not "07" or "+7"
_SHOWN = 10  # rows named in a message before "and N more"
# How each format's rows are numbered for a user: the frame's index holds the numbers (see read_table).
_ROW_NOUN = {"csv": "row", "tsv": "row", "parquet": "row", "jsonl": "line"}
_NUMBERING_NOTE = {"csv": " (row 1 is the header)", "tsv": " (row 1 is the header)", "parquet": " (counting from 0)"}


def table_format(path: Path | str) -> str:
    """``csv``, ``tsv``, ``parquet`` or ``jsonl``, by the suffix of ``path``; DataValidationError otherwise."""
    suffix = Path(path).suffix.lower()
    if suffix not in TABLE_FORMATS:
        known = ", ".join(TABLE_FORMATS)
        raise DataValidationError(
            f"{path}: cannot tell the format of a {suffix or 'suffix-less'} file. Labelled text is read from "
            f"CSV, TSV, parquet or JSON Lines, by the file's suffix ({known}): rename the file or export it as one of these."
        )
    return TABLE_FORMATS[suffix]


def read_table(path: Path | str, *, encoding: str = "utf-8", settings: Mapping[str, str] | None = None) -> pd.DataFrame:
    """The rows of a CSV, TSV, parquet or JSON Lines file as a DataFrame, cells as the file holds them.

    CSV and TSV cells are strings (an empty cell is ``""``: nothing is guessed to be missing or
    numeric); JSON Lines and parquet keep their types (a key absent from a JSON line is missing).
    The index numbers the rows as a user finds them in the file (see the module docstring).
    ``settings`` words the fixes a message suggests (``{"encoding": "--params labelled_text_encoding"}``).
    """
    path = Path(path)
    kind = table_format(path)
    if not path.is_file():
        raise DataSourceError(f"{path} does not exist: point it at a CSV, TSV, parquet or JSON Lines file.")
    settings = dict(settings or {})
    if kind == "parquet":
        frame = _read_parquet(path)
    else:
        try:
            text = read_text(path, encoding)
        except UndecodableTextError as error:
            raise error.with_setting(settings.get("encoding", "encoding")) from None
        frame = _parse_jsonl(path, text) if kind == "jsonl" else _parse_delimited(path, text, "\t" if kind == "tsv" else ",")
    if frame.empty:
        raise DataValidationError(f"{path} holds no rows: labelled text needs one example per row.")
    return frame


def read_labelled_text(
    path: Path | str,
    *,
    text_column: str = "text",
    label_column: str = "label",
    encoding: str = "utf-8",
    settings: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """The labelled-sentence table (``sentence``, ``label``, ``class_name``) of a user's file.

    ``settings`` words the fixes the messages suggest: how a user sets ``text_column``,
    ``label_column`` and ``encoding`` (e.g. ``{"text_column": "--params text_column"}``);
    by default the argument names themselves.
    """
    path = Path(path)
    words = {"text_column": "text_column", "label_column": "label_column", "encoding": "encoding"} | dict(settings or {})
    table = read_table(path, encoding=encoding, settings=words)
    kind = table_format(path)
    for role, column in (("text", text_column), ("label", label_column)):
        if column not in table.columns:
            columns = ", ".join(repr(str(c)) for c in table.columns)
            raise DataValidationError(
                f"{path} has no column {column!r} for the {role} (its columns: {columns}). "
                f"Name the {role} column with {words[f'{role}_column']}=<column>."
            )
    if text_column == label_column:
        raise DataValidationError(f"{path}: the text and the label cannot both be column {text_column!r}.")
    sentences = _sentences(path, kind, table[text_column], text_column)
    labels, class_names = _labels(path, kind, table[label_column], label_column)
    frame = labelled_frame(sentences, labels, class_names)
    logger.info("Read %d labelled sentences in %d classes from %s", len(frame), len(class_names), path)
    return frame


def labelled_frame(sentences: Sequence[str], labels: Any, class_names: Sequence[str]) -> pd.DataFrame:
    """The labelled-sentence table from its parts: class ``i`` is ``class_names[i]``."""
    names = [str(name) for name in class_names]
    if len(names) < 2:
        raise ValueError(f"a classifier needs at least two classes, got {names}")
    if len(set(names)) != len(names):
        raise ValueError(f"class names must be distinct, got {names}")
    dtype = np.int8 if len(names) <= np.iinfo(np.int8).max else np.int16 if len(names) <= np.iinfo(np.int16).max else np.int32
    labels = np.asarray(labels, dtype=np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= len(names)):
        raise ValueError(f"labels must lie in 0..{len(names) - 1} for {len(names)} class names")
    return pd.DataFrame(
        {SENTENCE: list(sentences), LABEL: labels.astype(dtype), CLASS_NAME: np.asarray(names, dtype=object)[labels]}
    )


def with_class_names(frame: pd.DataFrame, class_names: Sequence[str]) -> pd.DataFrame:
    """A table of ``sentence`` and integer ``label`` (MR's) as the labelled-sentence table."""
    return labelled_frame(frame[SENTENCE].tolist(), frame[LABEL].to_numpy(), class_names)


def class_names_of(frame: pd.DataFrame) -> list[str]:
    """The class names of a labelled-sentence table, in label order; ValueError if it is inconsistent."""
    missing = {LABEL, CLASS_NAME} - set(frame.columns)
    if missing:
        raise ValueError(f"a labelled-sentence table needs {sorted(missing)}; it has {list(frame.columns)}")
    pairs = frame[[LABEL, CLASS_NAME]].drop_duplicates().sort_values(LABEL)
    labels = pairs[LABEL].tolist()
    if labels != list(range(len(labels))) or pairs[CLASS_NAME].duplicated().any():
        raise ValueError(f"labels and class names do not pair up one to one as 0..k-1: {pairs.values.tolist()[:10]}")
    return [str(name) for name in pairs[CLASS_NAME]]


def class_counts(frame: pd.DataFrame) -> dict[str, int]:
    """Examples per class, in label order."""
    counts = frame[LABEL].value_counts()
    return {name: int(counts.get(label, 0)) for label, name in enumerate(class_names_of(frame))}


# --- internals -----------------------------------------------------------------------


def _read_parquet(path: Path) -> pd.DataFrame:
    import pyarrow as pa

    try:
        frame = pd.read_parquet(path)
    except (OSError, ValueError, pa.ArrowException) as error:
        raise DataValidationError(
            f"{path} is not a readable parquet file ({type(error).__name__}: {error}). "
            "Export it again, or as CSV, TSV or JSON Lines with a matching suffix."
        ) from None
    return frame.reset_index(drop=True)


def _parse_delimited(path: Path, text: str, separator: str) -> pd.DataFrame:
    try:
        frame = pd.read_csv(io.StringIO(text), sep=separator, dtype=str, keep_default_na=False, na_filter=False)
    except pd.errors.EmptyDataError:
        raise DataValidationError(f"{path} is empty: expected a header row, then one example per row.") from None
    except (pd.errors.ParserError, ValueError) as error:
        what = "TSV (tab-separated)" if separator == "\t" else "CSV"
        raise DataValidationError(f"{path} is not valid {what}: {error}. Fix the row it names, or quote its fields.") from None
    frame.index = frame.index + 2  # the header is row 1
    return frame


def _parse_jsonl(path: Path, text: str) -> pd.DataFrame:
    rows, numbers = [], []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataValidationError(
                f"{path}, line {number}: not valid JSON ({error.msg} at column {error.colno}). "
                "JSON Lines holds one JSON object per line."
            ) from None
        if not isinstance(row, dict):
            raise DataValidationError(
                f"{path}, line {number}: a JSON {type(row).__name__}, not an object. "
                'Each line needs an object such as {"text": "...", "label": "..."}.'
            )
        rows.append(row)
        numbers.append(number)
    return pd.DataFrame.from_records(rows, index=numbers) if rows else pd.DataFrame()


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # lists, arrays: present
        return False


def _rows(kind: str, numbers: Sequence[int]) -> str:
    noun = _ROW_NOUN[kind]
    shown = ", ".join(str(n) for n in numbers[:_SHOWN])
    more = f" and {len(numbers) - _SHOWN} more" if len(numbers) > _SHOWN else ""
    return f"{noun}{'s' if len(numbers) > 1 else ''} {shown}{more}"


def _sentences(path: Path, kind: str, column: pd.Series, name: str) -> list[str]:
    problems: dict[str, list[int]] = {"missing": [], "empty": [], "not a string": []}
    sentences = []
    for number, value in column.items():
        if _is_missing(value):
            problems["missing"].append(number)
        elif not isinstance(value, str):
            problems["not a string"].append(number)
        elif not value.strip():
            problems["empty"].append(number)
        else:
            sentences.append(value.strip())
    found = [f"{what} in {_rows(kind, rows)}" for what, rows in problems.items() if rows]
    if found:
        raise DataValidationError(
            f"{path}: the text (column {name!r}) is {'; '.join(found)}{_NUMBERING_NOTE.get(kind, '')}. "
            "Every row needs a non-empty text: fill in or delete those rows."
        )
    return sentences


def _labels(path: Path, kind: str, column: pd.Series, name: str) -> tuple[np.ndarray, list[str]]:
    """Class indices and names: see the module docstring for how labels become class names."""
    values = [value.strip() if isinstance(value, str) else value for value in column.tolist()]
    missing = [n for n, v in zip(column.index, values) if _is_missing(v) or v == ""]
    if missing:
        raise DataValidationError(
            f"{path}: the label (column {name!r}) is missing in {_rows(kind, missing)}{_NUMBERING_NOTE.get(kind, '')}. "
            "Every row needs a label: fill in or delete those rows."
        )
    fractional = [n for n, v in zip(column.index, values) if isinstance(v, (float, np.floating)) and not float(v).is_integer()]
    if fractional:
        raise DataValidationError(
            f"{path}: the label (column {name!r}) is a fractional number in {_rows(kind, fractional)}"
            f"{_NUMBERING_NOTE.get(kind, '')}. Labels are class names or integer class ids."
        )
    keys = _label_keys(values, textual=kind in ("csv", "tsv"))
    classes = sorted(set(keys))
    if len(classes) < 2:
        raise DataValidationError(
            f"{path}: every row has the label {str(classes[0])!r} (column {name!r}); a classifier needs at least two "
            f"classes. Is {name!r} the label column? Name another with label_column=<column>."
        )
    index = {key: i for i, key in enumerate(classes)}
    return np.array([index[key] for key in keys], dtype=np.int64), [str(key) for key in classes]


def _label_keys(values: list[Any], *, textual: bool) -> list[Any]:
    """Labels as sortable keys: all integers (ints, whole floats; in CSV/TSV, integers as written), else all strings."""

    def integer(value: Any) -> int | None:
        if isinstance(value, (bool, np.bool_)):
            return None
        if isinstance(value, (int, np.integer)):
            return int(value)
        if isinstance(value, (float, np.floating)):
            return int(value)  # whole: fractional labels were refused
        if textual and isinstance(value, str) and _INTEGER.fullmatch(value):
            return int(value)
        return None

    integers = [integer(value) for value in values]
    if all(i is not None for i in integers):
        return integers
    return [str(value) for value in values]
