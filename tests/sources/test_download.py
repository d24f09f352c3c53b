"""The downloader against a real HTTP server on 127.0.0.1, a mirror folder and the shared data."""

from __future__ import annotations

import gzip
import hashlib
import socket
import time
from pathlib import Path

import pytest

from dlflow.sources.download import Checksum, RemoteFile, fetch, file_digest, verify
from dlflow.sources.errors import DataSourceError
from dlflow.sources.idx import read_idx
from dlflow.sources.image_sets import FILE_KEYS, IMAGE_SOURCES, get_image_source
from tests.conftest import MIRROR

PAYLOAD = bytes(range(256)) * 40
GZ = gzip.compress(PAYLOAD, compresslevel=9, mtime=0)
FAST = {"backoff": 0.01, "timeout": 5.0, "progress": False}


@pytest.fixture(autouse=True)
def no_env_mirror(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DLFLOW_DATA_MIRROR", raising=False)


from tests.sources.http_server import Server  # noqa: E402


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/x.gz"


def remote(*urls: str, checksums: tuple[Checksum, ...] | None = None) -> RemoteFile:
    return RemoteFile(
        name="Test data set",
        filename="x.gz",
        urls=urls,
        checksums=checksums or (Checksum("md5", hashlib.md5(GZ).hexdigest()),),
        mirror_relpath="test/x.gz",
    )


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# --- download route -----------------------------------------------------------------


def test_download_verifies_and_places_file(server: Server, tmp_path: Path) -> None:
    dest = tmp_path / "a" / "b" / "x.gz"
    assert fetch(remote(server.serve("/x.gz", (200, GZ))), dest, **FAST) == dest
    assert dest.read_bytes() == GZ
    assert leftovers(dest.parent) == ["x.gz"]


def test_checksum_mismatch_leaves_nothing(server: Server, tmp_path: Path) -> None:
    dest = tmp_path / "x.gz"
    with pytest.raises(DataSourceError, match="failed checksum verification"):
        fetch(remote(server.serve("/x.gz", (200, GZ[:-1] + b"!"))), dest, **FAST)
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("status", [500, 503, 429])
def test_transient_http_errors_are_retried(server: Server, tmp_path: Path, status: int) -> None:
    url = server.serve("/x.gz", (status, b"busy"), (status, b"busy"), (200, GZ))
    fetch(remote(url), tmp_path / "x.gz", retries=3, **FAST)
    assert server.hits["/x.gz"] == 3
    assert leftovers(tmp_path) == ["x.gz"]


def test_short_body_is_retried(server: Server, tmp_path: Path) -> None:
    url = server.serve("/x.gz", (200, GZ[:100], len(GZ)), (200, GZ))
    fetch(remote(url), tmp_path / "x.gz", **FAST)
    assert server.hits["/x.gz"] == 2


def test_retries_are_bounded(server: Server, tmp_path: Path) -> None:
    url = server.serve("/x.gz", (503, b"down"))
    with pytest.raises(DataSourceError, match="gave up after 3 attempts"):
        fetch(remote(url), tmp_path / "x.gz", retries=2, **FAST)
    assert server.hits["/x.gz"] == 3
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("status", [404, 403])
def test_client_errors_fall_through_to_next_url(server: Server, tmp_path: Path, status: int) -> None:
    first = server.serve("/gone.gz", (status, b"no"))
    second = server.serve("/x.gz", (200, GZ))
    fetch(remote(first, second), tmp_path / "x.gz", **FAST)
    assert server.hits == {"/gone.gz": 1, "/x.gz": 1}


def test_all_failing_names_data_set_urls_and_fix(server: Server, tmp_path: Path) -> None:
    first = server.serve("/gone.gz", (404, b"no"))
    second = server.serve("/down.gz", (503, b"down"))
    dest = tmp_path / "x.gz"
    with pytest.raises(DataSourceError) as info:
        fetch(remote(first, second), dest, retries=1, **FAST)
    message = str(info.value)
    for needle in ("Test data set", first, "HTTP 404", second, "HTTP 503", "DLFLOW_DATA_MIRROR", str(dest)):
        assert needle in message
    assert leftovers(tmp_path) == []


def test_offline_fails_fast_with_default_settings(tmp_path: Path) -> None:
    start = time.monotonic()
    with pytest.raises(DataSourceError, match="DLFLOW_DATA_MIRROR"):
        fetch(remote(closed_port_url(), closed_port_url()), tmp_path / "x.gz", progress=False)
    assert time.monotonic() - start < 5
    assert leftovers(tmp_path) == []


def test_timeout_is_applied(server: Server, tmp_path: Path) -> None:
    url = server.serve("/slow.gz", (0, b""))
    start = time.monotonic()
    with pytest.raises(DataSourceError, match="timed out"):
        fetch(remote(url), tmp_path / "x.gz", retries=1, backoff=0.01, timeout=0.2, progress=False)
    assert time.monotonic() - start < 3
    assert server.hits["/slow.gz"] == 2


def test_malformed_url_is_reported(tmp_path: Path) -> None:
    with pytest.raises(DataSourceError, match="not-a-url"):
        fetch(remote("not-a-url"), tmp_path / "x.gz", **FAST)


# --- mirror and existing file -------------------------------------------------------------


def make_mirror(root: Path, content: bytes = GZ) -> Path:
    (root / "test").mkdir(parents=True)
    (root / "test" / "x.gz").write_bytes(content)
    return root


def test_mirror_is_preferred_over_download(server: Server, tmp_path: Path) -> None:
    mirror = make_mirror(tmp_path / "mirror")
    dest = tmp_path / "raw" / "x.gz"
    fetch(remote(server.serve("/x.gz", (200, GZ))), dest, mirror=mirror, **FAST)
    assert dest.read_bytes() == GZ
    assert server.hits["/x.gz"] == 0
    assert leftovers(dest.parent) == ["x.gz"]


def test_mirror_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DLFLOW_DATA_MIRROR", str(make_mirror(tmp_path / "mirror")))
    dest = tmp_path / "x.gz"
    fetch(remote(closed_port_url()), dest, **FAST)
    assert dest.read_bytes() == GZ


def test_bad_mirror_file_is_an_error(server: Server, tmp_path: Path) -> None:
    mirror = make_mirror(tmp_path / "mirror", content=b"garbage")
    raw = tmp_path / "raw"
    with pytest.raises(DataSourceError, match=r"Mirror file .*x\.gz"):
        fetch(remote(server.serve("/x.gz", (200, GZ))), raw / "x.gz", mirror=mirror, **FAST)
    assert leftovers(raw) == []


def test_missing_mirror_file_falls_back_to_download(server: Server, tmp_path: Path) -> None:
    (tmp_path / "mirror").mkdir()
    dest = tmp_path / "x.gz"
    fetch(remote(server.serve("/x.gz", (200, GZ))), dest, mirror=tmp_path / "mirror", **FAST)
    assert server.hits["/x.gz"] == 1


def test_existing_good_file_is_used_without_network(tmp_path: Path) -> None:
    dest = tmp_path / "x.gz"
    dest.write_bytes(GZ)
    assert fetch(remote(closed_port_url()), dest, **FAST) == dest


def test_existing_corrupt_file_is_not_overwritten(server: Server, tmp_path: Path) -> None:
    dest = tmp_path / "x.gz"
    dest.write_bytes(b"user data")
    with pytest.raises(DataSourceError, match=rf"Delete {dest}"):
        fetch(remote(server.serve("/x.gz", (200, GZ))), dest, mirror=make_mirror(tmp_path / "m"), **FAST)
    assert dest.read_bytes() == b"user data"
    assert server.hits["/x.gz"] == 0


# --- checksums -------------------------------------------------------------------


def test_gunzipped_checksum_accepts_recompressed_file(tmp_path: Path) -> None:
    recompressed = tmp_path / "x.gz"
    recompressed.write_bytes(gzip.compress(PAYLOAD, compresslevel=1, mtime=0))
    assert recompressed.read_bytes() != GZ
    checksums = (
        Checksum("md5", hashlib.md5(GZ).hexdigest()),
        Checksum("sha256", hashlib.sha256(PAYLOAD).hexdigest(), of="gunzipped"),
    )
    assert verify(recompressed, remote(checksums=checksums)).startswith("sha256 of the gunzipped")
    assert verify(recompressed, remote(checksums=checksums[1:])).startswith("sha256 of the gunzipped")
    with pytest.raises(DataSourceError, match="expected any of"):
        verify(recompressed, remote(checksums=checksums[:1]))


def test_gunzipped_checksum_on_non_gzip_file_is_a_mismatch(tmp_path: Path) -> None:
    plain = tmp_path / "x.gz"
    plain.write_bytes(PAYLOAD)
    checksum = Checksum("sha256", hashlib.sha256(PAYLOAD).hexdigest(), of="gunzipped")
    with pytest.raises(DataSourceError, match="cannot read the gunzipped contents"):
        verify(plain, remote(checksums=(checksum,)))


def test_checksum_rejects_malformed_digest() -> None:
    with pytest.raises(ValueError, match="not a md5 hex digest"):
        Checksum("md5", "abc")
    assert Checksum("md5", "A" * 32).hexdigest == "a" * 32


def test_digests(tmp_path: Path) -> None:
    one, two = tmp_path / "1.gz", tmp_path / "2.gz"
    one.write_bytes(GZ)
    two.write_bytes(gzip.compress(PAYLOAD, compresslevel=1))
    assert file_digest(one) == file_digest(two) == hashlib.sha256(PAYLOAD).hexdigest()[:16]


# --- registry and the real offline mirror --------------------------------------------------


def test_image_source_registry() -> None:
    for key, source in IMAGE_SOURCES.items():
        assert get_image_source(key) is source
        assert len(source.class_names) == 10
        assert tuple(source.files) == FILE_KEYS
        for remote_file in source.files.values():
            assert remote_file.urls[0].endswith("/" + remote_file.filename)
            assert remote_file.mirror_relpath.endswith("/" + remote_file.filename)
    assert IMAGE_SOURCES["fashion_mnist"].files["train_images"].name == "Fashion-MNIST train images"
    with pytest.raises(ValueError, match="fashion_mnist, mnist"):
        get_image_source("cifar")


@pytest.mark.usefixtures("data_mirror")  # the offline mirror ($DLFLOW_DATA_MIRROR): absent, the test fails
@pytest.mark.parametrize("key", ["train_labels", "test_labels"])
def test_real_fashion_mnist_labels_from_shared_mirror(tmp_path: Path, key: str) -> None:
    remote_file = IMAGE_SOURCES["fashion_mnist"].files[key]
    dest = fetch(remote_file, tmp_path / remote_file.filename, mirror=MIRROR, progress=False)
    assert verify(dest, remote_file).startswith("sha256 of the gunzipped")
    labels = read_idx(dest)
    assert labels.shape == ((60_000,) if key == "train_labels" else (10_000,))
    assert set(labels.tolist()) == set(range(10))
