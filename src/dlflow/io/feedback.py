"""Feedback data: labelled batches that came back, kept once each, named by their content's digest.

A batch-inference input that carried a ``label`` column is copied here after
it was scored (``<folder>/<sha256 prefix>.<suffix>``, a folder of parquet parts
as a folder), so that retraining can add it to the training data and a batch
is never counted twice, however often it is scored. Copies are written to a
temporary sibling and renamed, so a failure leaves nothing half-copied.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset


def content_digest(path: Path) -> str:
    """sha256 of a file, or of a folder's files (relative names and contents, in name order)."""
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode() + b"\0")
        with open(file, "rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


class FeedbackDataset(AbstractDataset[dict, list]):
    """``save({"source": path})`` keeps that labelled input in ``folder`` (once per content); ``save({})``
    keeps nothing. ``load()`` lists the kept files and folders, oldest first."""

    def __init__(self, *, folder: str, metadata: dict[str, Any] | None = None) -> None:
        self._folder, self.metadata = Path(folder), metadata

    def save(self, data: dict[str, Any]) -> None:
        if not data:
            return
        source = Path(data["source"])
        suffix = "".join(source.suffixes[-2:]) if source.is_file() else ""
        target = self._folder / f"{content_digest(source)[:16]}{suffix}"
        if target.exists():
            return
        self._folder.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.partial")
        if source.is_dir():
            shutil.rmtree(temporary, ignore_errors=True)
            shutil.copytree(source, temporary)
        else:
            shutil.copyfile(source, temporary)
        temporary.replace(target)  # a folder too: the target does not exist

    def load(self) -> list[Path]:
        if not self._folder.is_dir():
            return []
        kept = [p for p in self._folder.iterdir() if not p.name.startswith(".")]
        return sorted(kept, key=lambda p: (p.stat().st_mtime, p.name))

    def _describe(self) -> dict[str, Any]:
        return {"folder": str(self._folder)}
