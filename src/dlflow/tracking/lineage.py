"""Where a result came from: content digests of tables and the state of the source tree."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd


def table_digest(table: pd.DataFrame) -> str:
    """A sha256 of a table's content (column names, dtypes and values), 16 hex digits.

    Columns holding bytes (the image tables' pixels) or arrays are hashed by
    their raw bytes; ordinary columns through pandas' stable row hashing.
    """
    digest = hashlib.sha256()
    for name in table.columns:
        column = table[name]
        digest.update(f"{name}:{column.dtype}".encode())
        if len(column) and isinstance(column.iloc[0], (bytes, bytearray)):  # image tables: one buffer
            digest.update(column.map(len).to_numpy(np.int64).tobytes())
            digest.update(b"".join(column.to_list()))
        elif len(column) and isinstance(column.iloc[0], (np.ndarray, list)):
            for value in column:
                digest.update(np.asarray(value).tobytes())
        else:
            digest.update(pd.util.hash_pandas_object(column, index=False).to_numpy().tobytes())
    return digest.hexdigest()[:16]


def git_state(path: str | Path) -> dict[str, str]:
    """``git_commit`` and ``git_dirty`` of the repository at ``path`` (empty outside git)."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=path, capture_output=True, text=True, check=True, timeout=10).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return {}
    return {"git_commit": commit, "git_dirty": str(dirty).lower()}
