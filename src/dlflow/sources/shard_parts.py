"""``ShardPart``: one part of a sharded table, named by a key, made only when its inputs changed.

A writer of parquet shards (``dlflow.io.ParquetShardsDataset``) given an iterable of parts
reuses the existing part file whose manifest entry has the same ``key`` and ``fingerprint``,
and calls ``rows()`` only for the others. The producer of a source knows what its part is made
of (a group of files and their sizes and times, an IDX file's checksum, the decoding options) and
says so in ``fingerprint``; the writer knows nothing of sources. Example::

    ShardPart(key="train/cat/07", fingerprint=json_digest([files, options]), rows=lambda: decode(files))

Knows nothing of Kedro.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import pandas as pd

#: What ``ShardPart.rows`` returns: the part's rows at once, or in chunks written one after the other.
PartRows = pd.DataFrame | Iterable[pd.DataFrame]


@dataclass(frozen=True)
class ShardPart:
    """A part of a table: ``rows()`` makes its rows; ``key`` + ``fingerprint`` equal to a stored part's mean the
    stored part file holds exactly these rows (the producer's promise), so ``rows`` need not run."""

    key: str
    fingerprint: str
    rows: Callable[[], PartRows]
