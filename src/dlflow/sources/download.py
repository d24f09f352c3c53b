"""The one downloader of the project: obtain a published file, verified.

``fetch`` resolves a :class:`RemoteFile` to a local path in this order:

1. the destination already holds a copy that verifies: use it;
2. an offline mirror folder (argument, else ``$DLFLOW_DATA_MIRROR``) holds it:
   copy it beside the destination, verify, rename into place;
3. download each URL in turn (retrying transient failures with exponential
   backoff), verify, rename into place.

A file published only inside an archive (``RemoteFile.archive_member``) takes
the same routes: the mirror holds the extracted member, and a download fetches
the archive to a temporary file, extracts the member beside the destination,
verifies it and renames it into place; the checksums are the member's.

Every route verifies a checksum, writes through a temporary file and renames
atomically, so a failure never leaves a half-written file behind, and a file
the user placed is never overwritten.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import logging
import os
import secrets
import shutil
import socket
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

from tqdm.auto import tqdm

from dlflow.files import atomic_path
from dlflow.sources.errors import DataSourceError

T = TypeVar("T")

logger = logging.getLogger("dlflow.sources")

MIRROR_ENV = "DLFLOW_DATA_MIRROR"
_CHUNK = 1 << 20
_HEX_LENGTH = {"md5": 32, "sha256": 64}


@dataclass(frozen=True)
class Checksum:
    """A published digest. ``of="gunzipped"`` hashes the bytes after gzip
    decompression, so a recompressed copy of the same data still verifies."""

    algorithm: Literal["md5", "sha256"]
    hexdigest: str
    of: Literal["file", "gunzipped"] = "file"

    def __post_init__(self) -> None:
        if self.algorithm not in _HEX_LENGTH:
            raise ValueError(f"checksum algorithm must be md5 or sha256, not {self.algorithm!r}")
        if self.of not in ("file", "gunzipped"):
            raise ValueError(f"checksum 'of' must be 'file' or 'gunzipped', not {self.of!r}")
        digest = self.hexdigest.lower()
        if len(digest) != _HEX_LENGTH[self.algorithm] or not all(c in "0123456789abcdef" for c in digest):
            raise ValueError(f"{self.hexdigest!r} is not a {self.algorithm} hex digest")
        object.__setattr__(self, "hexdigest", digest)

    def describe(self, hexdigest: str | None = None) -> str:
        what = "file" if self.of == "file" else "gunzipped contents"
        return f"{self.algorithm} of the {what} = {hexdigest or self.hexdigest}"


@dataclass(frozen=True)
class RemoteFile:
    """A published file: where it lives and how to recognise a good copy."""

    name: str  # human name, e.g. "Fashion-MNIST train images"
    filename: str  # e.g. "train-images-idx3-ubyte.gz"
    urls: tuple[str, ...]  # canonical first, then mirrors
    checksums: tuple[Checksum, ...]  # a copy is good if ANY matches
    mirror_relpath: str  # path inside a mirror folder laid out like shared/data
    # When set, each URL serves an archive (tar, tar.gz/bz2/xz or zip) and the file
    # is this member of it; ``checksums`` and ``mirror_relpath`` are the member's.
    archive_member: str | None = None

    def __post_init__(self) -> None:
        if not self.checksums:
            raise ValueError(f"{self.name}: at least one checksum is needed to verify {self.filename}")


def registered(entries: Mapping[str, T], name: str, kind: str, plural: str) -> T:
    """``entries[name]``; else a ValueError naming ``kind`` and listing the known names (``plural``)."""
    try:
        return entries[name]
    except KeyError:
        raise ValueError(f"Unknown {kind} {name!r}; known {plural}: {', '.join(sorted(entries))}") from None


def file_digest(path: Path, length: int = 16) -> str:
    """Short content digest for data lineage: the sha256 hex of the file's
    content (decompressed first when it is gzip, so the upstream file and a
    recompressed mirror copy agree), cut to ``length`` characters."""
    path = Path(path)
    with path.open("rb") as f:
        is_gzip = f.read(2) == b"\x1f\x8b"
    return _digests(path, {"sha256"}, gunzip=is_gzip)["sha256"][:length]


def verify(path: Path, remote: RemoteFile) -> str:
    """Return the description of the checksum ``path`` matches, or raise
    :class:`DataSourceError` listing expected and actual digests."""
    path = Path(path)
    matched, detail = _match(path, remote)
    if matched is None:
        raise DataSourceError(
            f"{path} ({remote.name}) failed checksum verification:\n{detail}\n"
            f"It is corrupt, truncated or a different file. Delete {path} and run "
            "again to obtain a fresh copy."
        )
    return matched


def fetch(
    remote: RemoteFile,
    dest: Path,
    *,
    mirror: Path | str | None = None,
    retries: int = 3,
    timeout: float = 30.0,
    backoff: float = 1.0,
    progress: bool = True,
) -> Path:
    """Make ``dest`` a verified copy of ``remote`` and return it.

    ``retries`` is the number of extra attempts per URL after a transient
    failure (timeout, reset connection, HTTP 5xx or 429), waiting
    ``backoff * 2**attempt`` seconds before each. Other failures (404, 403,
    unknown host, refused connection, checksum mismatch) move on to the next
    URL at once, so an offline machine fails in well under a second.
    """
    dest = Path(dest)
    if dest.exists():
        matched = verify(dest, remote)
        logger.info("Using existing %s (%s; %s)", dest, remote.name, matched)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)

    tried: list[str] = []
    mirror_dir = mirror if mirror is not None else os.environ.get(MIRROR_ENV) or None
    if mirror_dir is None:
        tried.append(f"mirror: none set ({MIRROR_ENV} is unset)")
    else:
        source = Path(mirror_dir) / remote.mirror_relpath
        if source.is_file():
            _copy_from_mirror(source, remote, dest)
            return dest
        tried.append(f"mirror: {source} does not exist")

    for url in remote.urls:
        try:
            _download(url, remote, dest, retries=retries, timeout=timeout, backoff=backoff, progress=progress)
            return dest
        except _UrlFailed as failure:
            logger.warning("%s: %s failed: %s", remote.name, url, failure)
            tried.append(f"{url}: {failure}")

    raise DataSourceError(
        f"Could not obtain {remote.name} ({remote.filename}). Tried:\n  - "
        + "\n  - ".join(tried)
        + f"\nTo fix: set {MIRROR_ENV} to a folder laid out like shared/data, "
        f"or place the file at {dest}"
    )


class _UrlFailed(Exception):
    """One URL gave up (after its retries); the message says why."""


class _Transient(Exception):
    """A failure worth retrying the same URL for."""


def _temp_beside(dest: Path) -> Path:
    return dest.with_name(f"{dest.name}.part-{secrets.token_hex(4)}")


def _copy_from_mirror(source: Path, remote: RemoteFile, dest: Path) -> None:
    with atomic_path(dest) as part:
        shutil.copyfile(source, part)
        matched, detail = _match(part, remote)
        if matched is None:
            raise DataSourceError(
                f"Mirror file {source} ({remote.name}) failed checksum verification:\n"
                f"{detail}\nReplace it with a good copy, or stop using this mirror (unset "
                f"{MIRROR_ENV} or the `mirror` argument) to download from the canonical URL."
            )
    logger.info("Copied %s from mirror %s to %s (%s)", remote.name, source, dest, matched)


def _download(url: str, remote: RemoteFile, dest: Path, *, retries: int, timeout: float, backoff: float, progress: bool) -> None:
    """Download ``url`` to ``dest`` through a temporary file, or raise _UrlFailed."""
    for attempt in range(retries + 1):
        archive = _temp_beside(dest.with_name(dest.name + ".archive")) if remote.archive_member else None
        try:
            with atomic_path(dest) as part:  # renamed to dest only once verified
                if archive is None:
                    _stream(url, part, timeout=timeout, progress=progress, desc=remote.filename)
                else:
                    _stream(url, archive, timeout=timeout, progress=progress, desc=url.rsplit("/", 1)[-1])
                    _extract_member(archive, remote.archive_member, part)
                matched, detail = _match(part, remote)
                if matched is None:
                    raise _UrlFailed(f"downloaded file failed checksum verification:\n{detail}")
            logger.info("Downloaded %s from %s to %s (%s)", remote.name, url, dest, matched)
            return
        except _Transient as exc:
            if attempt == retries:
                raise _UrlFailed(f"{exc} (gave up after {attempt + 1} attempts)") from exc
            delay = backoff * 2**attempt
            logger.info("%s: %s (attempt %d); retrying in %.1f s", url, exc, attempt + 1, delay)
            time.sleep(delay)
        finally:
            if archive is not None:
                archive.unlink(missing_ok=True)


def _extract_member(archive: Path, member: str, part: Path) -> None:
    """Copy ``member`` of the tar or zip file ``archive`` to ``part``, or raise _UrlFailed."""
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                try:
                    source = zf.open(member)
                except KeyError:
                    raise _UrlFailed(_no_member(member, zf.namelist())) from None
                with source, part.open("wb") as out:
                    shutil.copyfileobj(source, out, _CHUNK)
            return
        with tarfile.open(archive, "r:*") as tf:
            try:
                source = tf.extractfile(member)
            except KeyError:
                raise _UrlFailed(_no_member(member, tf.getnames())) from None
            if source is None:
                raise _UrlFailed(f"archive member {member} is not a regular file")
            with source, part.open("wb") as out:
                shutil.copyfileobj(source, out, _CHUNK)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, OSError, NotImplementedError, RuntimeError) as exc:
        raise _UrlFailed(f"cannot extract {member} from the downloaded archive: {type(exc).__name__}: {exc}") from exc


def _no_member(member: str, names: list[str]) -> str:
    shown = ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")
    return f"the downloaded archive has no member {member} (it holds: {shown or 'nothing'})"


def _stream(url: str, part: Path, *, timeout: float, progress: bool, desc: str) -> None:
    """Write the body of ``url`` to ``part``, classifying every failure."""
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "dlflow"})
        with urllib.request.urlopen(request, timeout=timeout) as response, part.open("wb") as out:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            received = 0
            with tqdm(
                total=total,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=desc,
                disable=None if progress else True,  # None: no bar where stderr is no terminal (cron, CI logs)
            ) as bar:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
            if total is not None and received != total:
                raise _Transient(f"connection closed after {received} of {total} bytes")
    except urllib.error.HTTPError as exc:
        if exc.code == 429 or exc.code >= 500:
            raise _Transient(f"HTTP {exc.code} {exc.reason}") from exc
        raise _UrlFailed(f"HTTP {exc.code} {exc.reason}") from exc
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, (socket.gaierror, ConnectionRefusedError)):
            raise _UrlFailed(f"unreachable ({exc.reason})") from exc
        if isinstance(exc.reason, (TimeoutError, ConnectionError)):
            raise _Transient(str(exc.reason)) from exc
        raise _UrlFailed(str(exc.reason)) from exc
    except (TimeoutError, ConnectionError, http.client.HTTPException) as exc:
        raise _Transient(f"{type(exc).__name__}: {exc}") from exc
    except (OSError, ValueError) as exc:  # disk errors, malformed URLs
        raise _UrlFailed(f"{type(exc).__name__}: {exc}") from exc


def _digests(path: Path, algorithms: set[str], *, gunzip: bool) -> dict[str, str]:
    hashers = {name: hashlib.new(name, usedforsecurity=False) for name in algorithms}
    with gzip.open(path, "rb") if gunzip else path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            for hasher in hashers.values():
                hasher.update(chunk)
    return {name: hasher.hexdigest() for name, hasher in hashers.items()}


def _match(path: Path, remote: RemoteFile) -> tuple[str | None, str]:
    """(description of the matching checksum, "") or (None, expected vs actual)."""
    actual: list[str] = []
    for of in ("file", "gunzipped"):
        wanted = [c for c in remote.checksums if c.of == of]
        if not wanted:
            continue
        try:
            digests = _digests(path, {c.algorithm for c in wanted}, gunzip=of == "gunzipped")
        except (OSError, EOFError, zlib.error) as exc:
            what = "file" if of == "file" else "gunzipped contents"
            actual.append(f"cannot read the {what}: {exc}")
            continue
        for checksum in wanted:
            if digests[checksum.algorithm] == checksum.hexdigest:
                return checksum.describe(), ""
        actual += sorted({c.describe(digests[c.algorithm]) for c in wanted})
    expected = "\n".join(f"    {c.describe()}" for c in remote.checksums)
    return None, f"  expected any of:\n{expected}\n  actual:\n" + "\n".join(f"    {a}" for a in actual)
