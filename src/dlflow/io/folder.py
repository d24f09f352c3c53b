"""``FolderDataset``: a working folder named in the catalog (checkpoints, the node cache), not a data file.

Loading it gives the folder's path; the node or runner that reads it owns what
goes inside. It is not fingerprinted by the node cache: what a checkpoint folder
holds does not change a node's result, only how much of it is recomputed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset, DatasetError


class FolderDataset(AbstractDataset[None, str]):
    """A folder's path, e.g. ``data/06_models/checkpoints/cnn``; created on first use, never saved to."""

    fingerprinted = False  # dlflow.caching: the folder's contents do not change a node's result

    def __init__(self, path: str, metadata: dict[str, Any] | None = None) -> None:
        self._path = Path(path)
        self.metadata = metadata

    @property
    def path(self) -> Path:
        return self._path

    def load(self) -> str:
        return str(self._path)

    def save(self, data: None) -> None:
        raise DatasetError(f"{self._path} is a working folder named in the catalog: a node reads its path, nothing saves to it")

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path)}

    def _exists(self) -> bool:
        return True
