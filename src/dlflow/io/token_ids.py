"""``TokenIdsDataset``: a tokenised corpus of any size, as token ids in a folder (``dlflow.text.token_ids``).

Saving takes a ``dlflow.text.TokenStream`` (what ``build_text_corpus`` returns: nothing read
yet) and runs its one pass, writing the ids block by block, so the corpus never needs to fit
in memory. The folder is written beside its place and renamed into it only when complete
(``dlflow.files.atomic_path``): a failure part-way (an undecodable corpus file, a full disk,
``kill -9``) leaves the previous corpus or none, never a half-written one. Loading opens it as a
``dlflow.text.TokenIds``, checked against its ``meta.json`` and read through memory maps of
the ranges used.

Example catalog entry::

    text_corpus:
      type: dlflow.io.TokenIdsDataset
      filepath: data/03_primary/text/mr/corpus      # a folder
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset, DatasetError

from dlflow.files import atomic_path
from dlflow.text.token_ids import CorpusFormatError, TokenIds, TokenStream, write_token_ids


class TokenIdsDataset(AbstractDataset[TokenStream | TokenIds, TokenIds]):
    """A token-id corpus folder at ``filepath``: saved from a stream in one pass, loaded memory-mapped."""

    def __init__(self, *, filepath: str, metadata: dict[str, Any] | None = None) -> None:
        self._filepath = Path(filepath)
        self.metadata = metadata

    def load(self) -> TokenIds:
        try:
            return TokenIds(self._filepath)
        except CorpusFormatError as error:
            raise DatasetError(str(error)) from error

    def save(self, data: TokenStream | TokenIds) -> None:
        if not (isinstance(data, TokenStream | TokenIds)):
            raise DatasetError(
                f"{self._filepath}: TokenIdsDataset saves a dlflow.text.TokenStream or TokenIds, not {type(data).__name__}"
            )
        with atomic_path(self._filepath) as staging:
            write_token_ids(staging, data)

    def relocated(self, folder: Path) -> TokenIdsDataset:
        """The same corpus kept at ``folder`` instead (a ``torchrun`` rank other than 0 writes there)."""
        return TokenIdsDataset(filepath=str(folder), metadata=self.metadata)

    def _exists(self) -> bool:
        return (self._filepath / "meta.json").is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}
