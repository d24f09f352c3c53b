"""IdxDataset: loading is ingestion (present → mirror → download); the dataset is read-only."""

from __future__ import annotations

import gzip
import hashlib
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
from kedro.io import DataCatalog, DatasetError

from dlflow.io import IdxDataset
from dlflow.sources.download import Checksum, RemoteFile
from dlflow.sources.idx import write_idx
from dlflow.sources.image_sets import IMAGE_SOURCES, ImageSource
from tests.conftest import MIRROR

LABELS = np.array([3, 1, 4, 1, 5, 9, 2, 6], dtype=np.uint8)


@pytest.fixture(autouse=True)
def no_env_mirror(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DLFLOW_DATA_MIRROR", raising=False)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def tiny_mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A mirror folder holding a tiny labels file, registered as source "tiny"."""
    mirror = tmp_path / "mirror"
    (mirror / "tiny").mkdir(parents=True)
    path = write_idx(LABELS, mirror / "tiny" / "labels.gz", gzip=True)
    idx_sha256 = hashlib.sha256(gzip.decompress(path.read_bytes())).hexdigest()
    remote = RemoteFile(
        name="Tiny labels",
        filename="labels.gz",
        urls=(f"http://127.0.0.1:{closed_port()}/labels.gz",),  # refused at once
        checksums=(Checksum("sha256", idx_sha256, of="gunzipped"),),
        mirror_relpath="tiny/labels.gz",
    )
    source = ImageSource(name="Tiny", class_names=tuple("0123456789"), files={"test_labels": remote})
    monkeypatch.setitem(IMAGE_SOURCES, "tiny", source)
    return mirror


def tiny_dataset(filepath: Path, mirror: Path | None = None) -> IdxDataset:
    mirror_arg = str(mirror) if mirror else None
    return IdxDataset(filepath=str(filepath), source="tiny", file="test_labels", mirror=mirror_arg)


def test_load_copies_from_mirror_and_reads(tiny_mirror: Path, tmp_path: Path) -> None:
    raw = tmp_path / "raw" / "labels.gz"
    dataset = tiny_dataset(raw, mirror=tiny_mirror)
    assert not dataset.exists()
    np.testing.assert_array_equal(dataset.load(), LABELS)
    assert dataset.exists() and raw.is_file()
    assert dataset.digest == hashlib.sha256(gzip.decompress(raw.read_bytes())).hexdigest()


def test_mirror_from_environment_through_catalog(tiny_mirror: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DLFLOW_DATA_MIRROR", str(tiny_mirror))
    config = {
        "tiny_raw": {
            "type": "dlflow.io.IdxDataset",
            "filepath": str(tmp_path / "l.gz"),
            "source": "tiny",
            "file": "test_labels",
        }
    }
    np.testing.assert_array_equal(DataCatalog.from_config(config).load("tiny_raw"), LABELS)


def test_digest_before_load(tiny_mirror: Path, tmp_path: Path) -> None:
    dataset = tiny_dataset(tmp_path / "l.gz", mirror=tiny_mirror)
    with pytest.raises(DatasetError, match="load"):
        _ = dataset.digest
    shutil.copy(tiny_mirror / "tiny" / "labels.gz", tmp_path / "l.gz")
    assert dataset.digest == hashlib.sha256(gzip.decompress((tmp_path / "l.gz").read_bytes())).hexdigest()


def test_save_is_refused(tiny_mirror: Path, tmp_path: Path) -> None:
    dataset = tiny_dataset(tmp_path / "l.gz")
    with pytest.raises(DatasetError, match="read-only"):
        dataset.save(LABELS)


def test_describe_names_the_file(tmp_path: Path) -> None:
    dataset = IdxDataset(filepath="data/01_raw/x.gz", source="fashion_mnist", file="test_labels")
    assert "data/01_raw/x.gz" in repr(dataset) and "fashion_mnist" in repr(dataset)


def test_unknown_source_or_file_is_rejected() -> None:
    with pytest.raises(ValueError, match="known sources"):
        IdxDataset(filepath="x.gz", source="cifar", file="test_labels")
    with pytest.raises(ValueError, match="train_images"):
        IdxDataset(filepath="x.gz", source="mnist", file="validation_labels")


def test_unobtainable_file_says_how_to_fix(tiny_mirror: Path, tmp_path: Path) -> None:
    dataset = tiny_dataset(tmp_path / "l.gz", mirror=tmp_path / "none")
    with pytest.raises(DatasetError, match="DLFLOW_DATA_MIRROR"):
        dataset.load()
    assert not dataset.exists()


@pytest.mark.usefixtures("data_mirror")  # the offline mirror ($DLFLOW_DATA_MIRROR): absent, the test fails
def test_real_fashion_mnist_labels(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    (mirror / "fashion-mnist").mkdir(parents=True)
    shutil.copy(MIRROR / "fashion-mnist" / "t10k-labels-idx1-ubyte.gz", mirror / "fashion-mnist")
    raw = tmp_path / "raw" / "t10k.gz"
    dataset = IdxDataset(filepath=str(raw), source="fashion_mnist", file="test_labels", mirror=str(mirror))
    labels = dataset.load()
    assert labels.shape == (10_000,) and np.bincount(labels).tolist() == [1000] * 10
    assert dataset.digest == "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"
