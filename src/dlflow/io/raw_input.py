"""``RawInputDataset``: what the read-only data sets of raw inputs share.

Loading such a data set is the ingestion step (the file is made present, kept
if it verifies, else copied from the offline mirror, else downloaded, then read);
saving is refused, since derived data belongs in a data set of its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset, DatasetError


class RawInputDataset(AbstractDataset[None, Any]):
    """A raw input at ``filepath`` (a file or folder), fetched through ``mirror`` when it is missing."""

    def __init__(self, *, filepath: str, mirror: str | None = None, metadata: dict[str, Any] | None = None) -> None:
        self._filepath = Path(filepath)
        self._mirror = Path(mirror) if mirror else None
        self.metadata = metadata

    def save(self, data: None) -> None:
        raise DatasetError(
            f"{self._filepath} is raw input: {type(self).__name__} is read-only. Save derived data to another dataset."
        )

    def _exists(self) -> bool:
        return self._filepath.exists()

    def _settings(self) -> dict[str, Any]:
        """How the input is read, for ``_describe`` (and so for the node cache's fingerprint)."""
        return {}

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), **self._settings(), "mirror": str(self._mirror) if self._mirror else None}
