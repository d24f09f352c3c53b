"""LabelledTextDataset, PolarityDataset and TextCorpusDataset: loading is ingestion (present → mirror →
download, or a user's file read strictly); all are read-only and resolvable from catalog configuration."""

from __future__ import annotations

import dataclasses
import hashlib
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from kedro.io import DataCatalog, DatasetError

from dlflow.io import LabelledTextDataset, PolarityDataset, TextCorpusDataset
from dlflow.sources.download import Checksum
from dlflow.sources.errors import DataSourceError, DataValidationError
from dlflow.sources.text_sets import CORPUS_SOURCES, POLARITY_FILES
from tests.conftest import MIRROR

POS = b"caf\xe9 society is great\n"
NEG = b"dull\n\nna\xefve\n"


@pytest.fixture(autouse=True)
def no_env_mirror(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DLFLOW_DATA_MIRROR", raising=False)


def sha(data: bytes) -> tuple[Checksum, ...]:
    return (Checksum("sha256", hashlib.sha256(data).hexdigest()),)


@pytest.fixture
def tiny_mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A mirror with tiny MR files and a tiny "brown" zip, registered with their own checksums
    and unreachable URLs (so only the mirror can serve them)."""
    mirror = tmp_path / "mirror"
    (mirror / "rt-polarity").mkdir(parents=True)
    (mirror / "rt-polarity" / "rt-polarity.pos").write_bytes(POS)
    (mirror / "rt-polarity" / "rt-polarity.neg").write_bytes(NEG)
    (mirror / "corpora").mkdir()
    with zipfile.ZipFile(mirror / "corpora" / "brown.zip", "w") as zf:
        zf.writestr("brown/README", "docs\n")
        zf.writestr("brown/ca01", "\n\tThe/at jury/nn said/vbd ./.\n\n\tIt/pps ended/vbd ./.\n")
    files = {
        label: dataclasses.replace(remote, urls=("http://127.0.0.1:9/x.tar.gz",), checksums=sha(data))
        for (label, remote), data in zip(POLARITY_FILES.items(), (POS, NEG))
    }
    monkeypatch.setattr("dlflow.sources.text_sets.POLARITY_FILES", files)
    monkeypatch.setitem(
        CORPUS_SOURCES,
        "brown",
        dataclasses.replace(
            CORPUS_SOURCES["brown"],
            urls=("http://127.0.0.1:9/brown.zip",),
            checksums=sha((mirror / "corpora" / "brown.zip").read_bytes()),
        ),
    )
    return mirror


def test_polarity_dataset_fetches_and_reads(tiny_mirror: Path, tmp_path: Path) -> None:
    folder = tmp_path / "raw" / "rt-polarity"
    dataset = PolarityDataset(filepath=str(folder), mirror=str(tiny_mirror))
    assert not dataset.exists()
    frame = dataset.load()
    assert frame["sentence"].tolist() == ["café society is great", "dull", "naïve"]
    assert frame["label"].tolist() == [1, 0, 0] and frame["label"].dtype == np.int8
    assert dataset.exists()
    assert sorted(p.name for p in folder.iterdir()) == ["rt-polarity.neg", "rt-polarity.pos"]
    with pytest.raises(DatasetError, match="read-only"):
        dataset.save(["anything"])  # type: ignore[arg-type]
    assert "rt-polarity" in str(dataset)


def test_polarity_dataset_wrong_encoding_names_file(tiny_mirror: Path, tmp_path: Path) -> None:
    dataset = PolarityDataset(filepath=str(tmp_path / "raw"), mirror=str(tiny_mirror), encoding="utf-8")
    with pytest.raises(DatasetError, match=r"rt-polarity\.pos is not valid utf-8.*latin-1"):
        dataset.load()


def test_polarity_dataset_offline_without_mirror(tiny_mirror: Path, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="DLFLOW_DATA_MIRROR"):
        PolarityDataset(filepath=str(tmp_path / "raw")).load()


def test_corpus_dataset_registered_source(tiny_mirror: Path, tmp_path: Path) -> None:
    path = tmp_path / "raw" / "corpora" / "brown.zip"
    dataset = TextCorpusDataset(filepath=str(path), source="brown", mirror=str(tiny_mirror))
    assert dataset.load() == ["The jury said .", "It ended ."]
    assert path.is_file() and dataset.exists()
    with pytest.raises(DatasetError, match="read-only"):
        dataset.save(["anything"])  # type: ignore[arg-type]


def test_corpus_dataset_user_supplied(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "a.txt").write_text("first line\nsecond line\n")
    assert TextCorpusDataset(filepath=str(tmp_path / "mine")).load() == ["first line", "second line"]
    (tmp_path / "t8").write_text(" ".join(["w"] * 1500))
    chunks = TextCorpusDataset(filepath=str(tmp_path / "t8"), format="text8").load()
    assert [len(c.split()) for c in chunks] == [1000, 500]
    with pytest.raises(DatasetError, match="does not exist"):
        TextCorpusDataset(filepath=str(tmp_path / "nope")).load()


def test_corpus_dataset_validates_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="known corpora"):
        TextCorpusDataset(filepath="x.zip", source="text9")
    with pytest.raises(ValueError, match="format"):
        TextCorpusDataset(filepath="x", format="csv")  # type: ignore[arg-type]


def test_from_catalog_config(tiny_mirror: Path, tmp_path: Path) -> None:
    catalog = DataCatalog.from_config(
        {
            "mr_polarity_raw": {
                "type": "dlflow.io.PolarityDataset",
                "filepath": str(tmp_path / "rt"),
                "mirror": str(tiny_mirror),
            },
            "brown_raw": {
                "type": "dlflow.io.TextCorpusDataset",
                "filepath": str(tmp_path / "brown.zip"),
                "source": "brown",
                "mirror": str(tiny_mirror),
            },
        }
    )
    assert len(catalog.load("mr_polarity_raw")) == 3
    assert len(catalog.load("brown_raw")) == 2


def test_real_data_through_datasets(tmp_path: Path) -> None:
    needed = ["rt-polarity/rt-polarity.pos", "rt-polarity/rt-polarity.neg", "corpora/brown.zip"]
    if not all((MIRROR / p).is_file() for p in needed):
        pytest.fail(
            f"offline mirror at {MIRROR} lacks the text data: set DLFLOW_DATA_MIRROR to a folder laid out like shared/data"
        )
    frame = PolarityDataset(filepath=str(tmp_path / "rt-polarity"), mirror=str(MIRROR)).load()
    assert frame["label"].value_counts().to_dict() == {1: 5331, 0: 5331}
    brown = TextCorpusDataset(filepath=str(tmp_path / "brown.zip"), source="brown", mirror=str(MIRROR)).load()
    assert len(brown) == 57_340


def test_errors_are_the_projects_own(tmp_path: Path) -> None:
    (tmp_path / "bad.txt").write_bytes(b"\xff\xfe\xfa")
    with pytest.raises(DatasetError) as info:
        TextCorpusDataset(filepath=str(tmp_path / "bad.txt")).load()
    assert isinstance(info.value.__cause__, DataValidationError)
    assert "bad.txt is not valid utf-8" in str(info.value)
    with pytest.raises(DatasetError) as info:
        PolarityDataset(filepath=str(tmp_path / "nothing"), mirror=str(tmp_path)).load()
    assert isinstance(info.value.__cause__, DataSourceError)


def test_undecodable_user_corpus_names_the_parameter_to_set(tmp_path: Path) -> None:
    """The catalog's user corpus is decoded as ``user_corpus_encoding``: that is what the error tells the user to set."""
    archive = tmp_path / "reviews.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("part1.txt", "fine\n".encode())
        bundle.writestr("part2.txt", "un film tr\xe8s bien\n".encode("latin-1"))
    dataset = TextCorpusDataset(filepath=str(archive), encoding_parameter="user_corpus_encoding")
    with pytest.raises(DatasetError) as error:
        dataset.load()
    message = str(error.value)
    for needle in ("reviews.zip", "part2.txt", "line 1", "0xe8", "use --params user_corpus_encoding=latin-1"):
        assert needle in message, message
    assert "use encoding=" not in message
    plain = TextCorpusDataset(filepath=str(archive))  # no parameter named: the dataset's own argument
    with pytest.raises(DatasetError, match=r"use encoding=latin-1"):
        plain.load()


# --- LabelledTextDataset: MR or a table, one schema ---------------------------------------

#: The catalog's labelled_text_raw tells the user the runtime parameters to set.
PARAMETERS = {
    "filepath": "labelled_text",
    "text_column": "text_column",
    "label_column": "label_column",
    "encoding": "labelled_text_encoding",
}


def test_labelled_text_from_mr_has_the_polarity_class_names(tiny_mirror: Path, tmp_path: Path) -> None:
    dataset = LabelledTextDataset(filepath=str(tmp_path / "rt-polarity"), source="mr", mirror=str(tiny_mirror))
    assert not dataset.exists()
    frame = dataset.load()
    assert frame["sentence"].tolist() == ["café society is great", "dull", "naïve"]  # decoded as MR's latin-1
    assert frame["label"].tolist() == [1, 0, 0] and frame["label"].dtype == np.int8
    assert frame["class_name"].tolist() == ["positive", "negative", "negative"]
    assert dataset.exists() and "MR sentence polarity" in frame.attrs["source"]
    with pytest.raises(DatasetError, match="read-only"):
        dataset.save(frame)  # type: ignore[arg-type]


def test_labelled_text_from_a_table_through_the_catalog(tmp_path: Path) -> None:
    path = tmp_path / "tickets.tsv"
    pd.DataFrame({"body": ["printer on fire", "cannot log in", "refund please"], "queue": ["it", "access", "billing"]}).to_csv(
        path, sep="\t", index=False, encoding="cp1252"
    )
    config = {"type": "dlflow.io.LabelledTextDataset", "source": "table", "filepath": str(path), "text_column": "body",
              "label_column": "queue", "encoding": "cp1252", "parameters": PARAMETERS}  # fmt: skip
    catalog = DataCatalog.from_config({"labelled_text_raw": config})
    frame = catalog.load("labelled_text_raw")
    assert frame["class_name"].tolist() == ["it", "access", "billing"] and frame["label"].tolist() == [2, 0, 1]
    assert frame.attrs["source"] == str(path)

    # undecodable as the default utf-8, a column that is not there: the parameter to set is named
    catalog = DataCatalog.from_config({"labelled_text_raw": config | {"encoding": None}})
    pd.DataFrame({"body": ["café au lait", "b"], "queue": ["x", "y"]}).to_csv(path, sep="\t", index=False, encoding="cp1252")
    with pytest.raises(DatasetError, match=r"tickets\.tsv is not valid utf-8.*--params labelled_text_encoding=latin-1"):
        catalog.load("labelled_text_raw")
    catalog = DataCatalog.from_config({"labelled_text_raw": config | {"text_column": "text"}})
    with pytest.raises(DatasetError, match=r"no column 'text' .*'body', 'queue'.*--params text_column=<column>"):
        catalog.load("labelled_text_raw")


def test_labelled_text_refuses_a_missing_file_or_an_unknown_format_by_name(tmp_path: Path) -> None:
    missing = LabelledTextDataset(filepath=str(tmp_path / "gone.csv"), source="table", parameters=PARAMETERS)
    assert not missing.exists()
    with pytest.raises(DatasetError, match=r"No labelled text at .*gone\.csv: .*--params labelled_text=/path/to/file"):
        missing.load()
    with pytest.raises(DataValidationError, match=r"notes\.docx: cannot tell the format"):
        LabelledTextDataset(filepath=str(tmp_path / "notes.docx"), source="table")
    with pytest.raises(ValueError, match="Unknown text source 'imdb'"):
        LabelledTextDataset(filepath="x", source="imdb")


def test_labelled_text_settings_fingerprint_how_it_is_read(tmp_path: Path) -> None:
    """The node cache reads ``_describe`` minus the path: another column or encoding is another input."""
    one = LabelledTextDataset(filepath=str(tmp_path / "a.csv"), source="table")
    other = LabelledTextDataset(filepath=str(tmp_path / "a.csv"), source="table", label_column="topic")
    assert one._describe() != other._describe()
    assert LabelledTextDataset(filepath=str(tmp_path), source="mr")._describe()["encoding"] == "latin-1"
