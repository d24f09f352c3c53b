"""Feedback data: labelled batches that came back, kept once each, named by their content's digest.

A batch-inference input that carried a ``label`` column is copied here after
it was scored (``<folder>/<sha256 prefix>.<suffix>``, a folder of parquet parts
as a folder), so that retraining can add it to the training data and a batch
is never counted twice, however often it is scored. Copies are written to a
temporary sibling and renamed, so a failure leaves nothing half-copied.

Loading lists the kept files (``reader: null``), or reads them as tables
(``reader: tables``: ``{file: DataFrame}``, parquet as a file or a folder of
parts, CSV/TSV/JSON Lines with every cell as the file holds it), for training
to append them (``dlflow.sources.feedback``).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pandas as pd
from kedro.io import AbstractDataset

from dlflow.files import content_digest
from dlflow.sources.labelled_text import read_table

__all__ = ["FeedbackDataset", "content_digest"]


class FeedbackDataset(AbstractDataset[dict, Any]):
    """``save({"source": path})`` keeps that labelled input in ``folder`` (once per content); ``save({})``
    keeps nothing. ``load()`` lists the kept files and folders, oldest first; with ``reader: tables``, it reads
    each as a table: ``{path: DataFrame}`` in the same order."""

    READERS = (None, "tables")

    def __init__(self, *, folder: str, reader: str | None = None, metadata: dict[str, Any] | None = None) -> None:
        if reader not in self.READERS:
            raise ValueError(f"FeedbackDataset reader must be one of {self.READERS}, got {reader!r}")
        self._folder, self._reader, self.metadata = Path(folder), reader, metadata

    @property
    def folder(self) -> Path:
        return self._folder

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

    def files(self) -> list[Path]:
        """The kept files and folders, oldest first (partial copies, hidden, are not listed)."""
        if not self._folder.is_dir():
            return []
        kept = [p for p in self._folder.iterdir() if not p.name.startswith(".")]
        return sorted(kept, key=lambda p: (p.stat().st_mtime, p.name))

    def load(self) -> list[Path] | dict[str, pd.DataFrame]:
        if self._reader is None:
            return self.files()
        return {str(path): _read(path) for path in self.files()}

    def _describe(self) -> dict[str, Any]:
        return {"folder": str(self._folder), "reader": self._reader}


def _read(path: Path) -> pd.DataFrame:
    """A kept batch as a table: parquet (a file or a folder of parts), or CSV/TSV/JSON Lines cells as they are."""
    if path.is_dir() or path.suffix.lower() == ".parquet":
        return pd.read_parquet(path)
    return read_table(path)
