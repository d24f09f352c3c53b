"""``FetchedFileDataset``: a read-only Kedro dataset for a published file, declared in the catalog.

Loading makes the file present at ``filepath`` through the one downloader
(kept if present and verified → offline mirror → canonical URL) and returns
its local path, for readers that take a path (the word-similarity and analogy
benchmarks, for instance).

Example catalog entry::

    wordsim353_raw:
      type: dlflow.io.FetchedFileDataset
      filepath: data/01_raw/word-benchmarks/wordsim353.tsv
      name: WordSim-353
      urls: [https://example.org/wordsim353.tsv]
      sha256: f92a022f...
      mirror_relpath: word-benchmarks/wordsim353.tsv
"""

from __future__ import annotations

from typing import Any

from dlflow.io.raw_input import RawInputDataset
from dlflow.sources.download import Checksum, RemoteFile, fetch, file_digest


class FetchedFileDataset(RawInputDataset):
    """A published file fetched on load; ``load()`` returns its local path."""

    def __init__(
        self,
        *,
        filepath: str,
        name: str,
        urls: list[str],
        sha256: str,
        mirror_relpath: str,
        mirror: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(filepath=filepath, mirror=mirror, metadata=metadata)
        self._remote = RemoteFile(
            name=name,
            filename=self._filepath.name,
            urls=tuple(urls),
            checksums=(Checksum("sha256", sha256),),
            mirror_relpath=mirror_relpath,
        )

    def load(self) -> str:
        return str(fetch(self._remote, self._filepath, mirror=self._mirror))

    @property
    def digest(self) -> str:
        """Short content digest of the fetched file, for data lineage."""
        return file_digest(self._filepath)

    def _settings(self) -> dict[str, Any]:
        return {"name": self._remote.name, "urls": list(self._remote.urls)}
