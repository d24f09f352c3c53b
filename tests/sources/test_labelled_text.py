"""Labelled text tables in the formats people export, written here by pandas/pyarrow/json in several
encodings: the one labelled-sentence schema out, and every refusal naming the file and the rows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dlflow.sources.errors import DataSourceError, DataValidationError, UndecodableTextError
from dlflow.sources.labelled_text import (
    class_counts,
    class_names_of,
    read_labelled_text,
    read_table,
    with_class_names,
)

TEXTS = ["Le café est fermé.", "Naïve but charming", "A “quoted” remark, with a comma", "Straße im Regen"]
LABELS = ["news", "fiction", "news", "romance"]


def write_table(path: Path, frame: pd.DataFrame, encoding: str = "utf-8") -> Path:
    """``frame`` as the file its suffix names, written by the libraries people export with."""
    suffix = path.suffix
    if suffix == ".parquet":
        frame.to_parquet(path)
    elif suffix in (".csv", ".tsv"):
        frame.to_csv(path, sep="\t" if suffix == ".tsv" else ",", index=False, encoding=encoding)
    elif suffix in (".jsonl", ".ndjson"):
        lines = [json.dumps(record, ensure_ascii=False) for record in frame.to_dict(orient="records")]
        path.write_bytes(("\n".join(lines) + "\n").encode(encoding))
    else:
        raise AssertionError(suffix)
    return path


def table(texts=TEXTS, labels=LABELS, text="text", label="label") -> pd.DataFrame:
    return pd.DataFrame({"id": range(len(texts)), text: texts, label: labels})


@pytest.mark.parametrize(
    ("suffix", "encoding"),
    [
        (".csv", "utf-8"),
        (".csv", "utf-8-sig"),  # Excel's "CSV UTF-8": a byte-order mark before the header
        (".csv", "cp1252"),
        (".tsv", "utf-16"),
        (".tsv", "latin-1"),
        (".jsonl", "utf-8"),
        (".ndjson", "cp1252"),
        (".parquet", "utf-8"),
    ],
)
def test_every_format_and_encoding_gives_the_same_labelled_sentences(tmp_path: Path, suffix: str, encoding: str) -> None:
    texts = TEXTS if encoding not in ("latin-1",) else [t.replace("“", '"').replace("”", '"') for t in TEXTS]
    path = write_table(tmp_path / f"genres{suffix}", table(texts), encoding)
    read_as = "utf-8" if encoding == "utf-8-sig" else encoding  # the BOM is dropped by itself
    frame = read_labelled_text(path, encoding=read_as)
    assert list(frame.columns) == ["sentence", "label", "class_name"]
    assert frame["sentence"].tolist() == texts
    assert class_names_of(frame) == ["fiction", "news", "romance"]  # sorted distinct labels
    assert frame["label"].tolist() == [1, 0, 1, 2] and frame["label"].dtype == np.int8
    assert frame["class_name"].tolist() == LABELS


def test_columns_are_parameters_and_strings_are_stripped(tmp_path: Path) -> None:
    path = write_table(
        tmp_path / "t.csv", table(["  padded text  ", "b", "c", "d"], [" pos", "neg ", "pos", "neg"], "body", "queue")
    )
    frame = read_labelled_text(path, text_column="body", label_column="queue")
    assert frame["sentence"].tolist() == ["padded text", "b", "c", "d"]
    assert class_names_of(frame) == ["neg", "pos"]


def test_integer_labels_sort_by_value_and_name_classes_as_strings(tmp_path: Path) -> None:
    labels = [10, 2, 1, 2, 10, 1]
    texts = [f"sentence {i}" for i in range(6)]
    for suffix in (".csv", ".parquet", ".jsonl"):
        frame = read_labelled_text(write_table(tmp_path / f"ints{suffix}", table(texts, labels)))
        assert class_names_of(frame) == ["1", "2", "10"], suffix
        assert frame["label"].tolist() == [2, 1, 0, 1, 2, 0], suffix
    # a CSV cell is an integer only as an integer is written: "07" is a name, so all are names (sorted as text)
    path = tmp_path / "padded.csv"
    path.write_text("text,label\na,07\nb,7\nc,10\n")
    assert class_names_of(read_labelled_text(path)) == ["07", "10", "7"]


def test_many_classes_get_a_wider_label_type(tmp_path: Path) -> None:
    labels = [f"class{i:03d}" for i in range(200)]
    frame = read_labelled_text(write_table(tmp_path / "wide.parquet", table([f"t {i}" for i in range(200)], labels)))
    assert frame["label"].dtype == np.int16 and frame["label"].max() == 199
    assert class_names_of(frame) == sorted(labels)


def test_mr_style_tables_take_their_class_names() -> None:
    frame = with_class_names(pd.DataFrame({"sentence": ["good", "bad"], "label": np.int8([1, 0])}), ["negative", "positive"])
    assert frame["class_name"].tolist() == ["positive", "negative"]
    assert class_counts(frame) == {"negative": 1, "positive": 1}


# --- refusals ------------------------------------------------------------------------


def test_empty_missing_and_non_string_texts_are_refused_with_their_rows(tmp_path: Path) -> None:
    path = tmp_path / "gaps.csv"
    path.write_text('text,label\nfine,a\n"   ",b\n,a\nalso fine,b\n')
    with pytest.raises(
        DataValidationError, match=r"gaps\.csv: the text \(column 'text'\) is empty in rows 3, 4 \(row 1 is the header\)"
    ):
        read_labelled_text(path)

    records = [
        {"text": "ok", "label": 1},
        {"label": 2},
        {"text": None, "label": 1},
        {"text": 42, "label": 2},
        {"text": "", "label": 1},
    ]
    path = tmp_path / "gaps.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records[:2]) + "\n\n" + "\n".join(json.dumps(r) for r in records[2:]))
    with pytest.raises(DataValidationError) as error:
        read_labelled_text(path)
    message = str(error.value)
    assert "gaps.jsonl" in message and "missing in lines 2, 4" in message  # the blank line 3 is not a row
    assert "empty in line 6" in message and "not a string in line 5" in message

    write_table(tmp_path / "gaps.parquet", table(["a", None, "c", "d"]))
    with pytest.raises(DataValidationError, match=r"gaps\.parquet: the text .* missing in row 1 \(counting from 0\)"):
        read_labelled_text(tmp_path / "gaps.parquet")


def test_missing_labels_are_refused_with_their_rows(tmp_path: Path) -> None:
    path = write_table(tmp_path / "nolabel.tsv", table(labels=["news", "", "news", "fiction"]))
    with pytest.raises(DataValidationError, match=r"nolabel\.tsv: the label \(column 'label'\) is missing in row 3 "):
        read_labelled_text(path)
    many = write_table(tmp_path / "many.parquet", table([f"t{i}" for i in range(30)], [None] * 25 + ["a", "b"] * 2 + ["a"]))
    with pytest.raises(DataValidationError, match=r"missing in rows 0, 1, 2, 3, 4, 5, 6, 7, 8, 9 and 15 more"):
        read_labelled_text(many)


def test_unknown_columns_list_the_columns_the_file_has(tmp_path: Path) -> None:
    path = write_table(tmp_path / "cols.csv", table(text="body"))
    with pytest.raises(
        DataValidationError, match=r"cols\.csv has no column 'text' for the text \(its columns: 'id', 'body', 'label'\)"
    ) as error:
        read_labelled_text(path, settings={"text_column": "--params text_column"})
    assert "--params text_column=<column>" in str(error.value)
    with pytest.raises(DataValidationError, match=r"has no column 'category' for the label"):
        read_labelled_text(path, text_column="body", label_column="category")


def test_undecodable_bytes_name_the_file_the_line_and_the_setting(tmp_path: Path) -> None:
    path = write_table(tmp_path / "latin.csv", table(), encoding="cp1252")
    with pytest.raises(UndecodableTextError, match=r"latin\.csv is not valid utf-8.*line 2.*--params enc=latin-1"):
        read_labelled_text(path, settings={"encoding": "--params enc"})
    with pytest.raises(ValueError, match="Unknown text encoding 'klingon'"):
        read_labelled_text(path, encoding="klingon")


def test_unreadable_files_are_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(DataSourceError, match=r"nope\.csv does not exist"):
        read_table(tmp_path / "nope.csv")
    (tmp_path / "data.xlsx").write_bytes(b"PK\x03\x04")
    with pytest.raises(DataValidationError, match=r"data\.xlsx: cannot tell the format.*CSV, TSV, parquet or JSON Lines"):
        read_table(tmp_path / "data.xlsx")
    (tmp_path / "fake.parquet").write_text("text,label\na,b\n")
    with pytest.raises(DataValidationError, match=r"fake\.parquet is not a readable parquet file"):
        read_table(tmp_path / "fake.parquet")
    write_table(tmp_path / "real.parquet", table())
    (tmp_path / "binary.csv").write_bytes((tmp_path / "real.parquet").read_bytes())
    with pytest.raises(DataValidationError, match=r"binary\.csv is binary, not text"):
        read_table(tmp_path / "binary.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataValidationError, match=r"empty\.csv is empty"):
        read_table(tmp_path / "empty.csv")
    (tmp_path / "header.csv").write_text("text,label\n")
    with pytest.raises(DataValidationError, match=r"header\.csv holds no rows"):
        read_table(tmp_path / "header.csv")
    (tmp_path / "ragged.csv").write_text("text,label\na,b\nc,d,e\n")
    with pytest.raises(DataValidationError, match=r"ragged\.csv is not valid CSV: .*line 3"):
        read_table(tmp_path / "ragged.csv")
    (tmp_path / "bad.jsonl").write_text('{"text": "a", "label": 1}\n{"text": "b", label: 2}\n')
    with pytest.raises(DataValidationError, match=r"bad\.jsonl, line 2: not valid JSON"):
        read_table(tmp_path / "bad.jsonl")
    (tmp_path / "list.jsonl").write_text('{"text": "a", "label": 1}\n["b", 2]\n')
    with pytest.raises(DataValidationError, match=r"list\.jsonl, line 2: a JSON list, not an object"):
        read_table(tmp_path / "list.jsonl")


def test_one_class_and_fractional_labels_are_refused(tmp_path: Path) -> None:
    path = write_table(tmp_path / "one.csv", table(labels=["spam"] * 4))
    with pytest.raises(DataValidationError, match=r"one\.csv: every row has the label 'spam'.*at least two classes"):
        read_labelled_text(path)
    path = write_table(tmp_path / "scores.jsonl", table(labels=[1, 0.5, 2, 1]))
    with pytest.raises(DataValidationError, match=r"scores\.jsonl: the label .* is a fractional number in line 2"):
        read_labelled_text(path)
