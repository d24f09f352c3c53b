"""Writing and fingerprinting files and values: one atomic write, one sha256 of JSON, one file digest.

``atomic_write`` is how every derived file of the project is written
(checkpoints, vectors, cache records): to a hidden temporary sibling, flushed
to disk, then renamed over the target. A crash or ``kill -9`` mid-write leaves
the previous file, or none, never a torn one; a reader sees the old file or
the new one. The Kedro data sets of ``dlflow.io.atomic`` do the same through
kedro-datasets' own writers.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A hidden temporary sibling of ``path`` to write; on success it is synced and renamed to ``path``.

    The caller writes a file (or a folder) at the yielded path. On any exception
    it is removed and ``path`` is left as it was. A folder replaces a folder
    ``path`` as a whole (``_replace_folder``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        yield temporary
        if temporary.is_file():
            handle = os.open(temporary, os.O_RDONLY)
            try:
                os.fsync(handle)
            finally:
                os.close(handle)
        if temporary.is_dir():
            _replace_folder(temporary, path)
        else:
            os.replace(temporary, path)
    finally:
        if temporary.is_dir():
            shutil.rmtree(temporary, ignore_errors=True)
        else:
            temporary.unlink(missing_ok=True)


def _replace_folder(new: Path, path: Path, attempts: int = 20) -> None:
    """Put the folder ``new`` at ``path``: the old folder is renamed aside, then ``new`` renamed in, then the
    old one deleted. A reader finds ``path`` missing only between the two renames (microseconds, not the
    time a delete takes), and a run writing the same folder at the same time wins or loses whole."""
    for _ in range(attempts):
        aside = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.old")
        try:
            os.replace(path, aside)
        except FileNotFoundError:
            aside = None
        try:
            os.replace(new, path)
        except OSError:  # another writer put its folder there in between: move that one aside too
            if aside is not None:
                shutil.rmtree(aside, ignore_errors=True)
            continue
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)
        return
    raise OSError(f"could not replace the folder {path}: other processes kept writing it")


@contextmanager
def atomic_write(path: str | Path, mode: str = "wb", **open_args: Any) -> Iterator[IO]:
    """``atomic_path`` for a file written through one stream: ``with atomic_write(p, "w") as f: f.write(...)``.

    ``mode`` is ``"wb"`` or ``"w"``; ``open_args`` go to ``open`` (``encoding``, ``newline``).
    """
    with atomic_path(path) as temporary, open(temporary, mode, **open_args) as stream:
        yield stream


def json_digest(value: Any, length: int = 64) -> str:
    """sha256 (hex, first ``length`` digits) of ``value`` as canonical JSON (sorted keys; ``str`` for the rest)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:length]


def content_digest(path: str | Path) -> str:
    """sha256 (hex) of a file, or of a folder's files (relative names and contents, in name order)."""
    path = Path(path)
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode() + b"\0")
        with open(file, "rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
