"""Word vectors in word2vec's text format, and ``Word2VecTextDataset``, its Kedro dataset.

The format (word2vec.c ``-binary 0``; gensim's ``save_word2vec_format(binary=False)``)::

    <vocabulary size> <dim>
    <word> <v1> <v2> ... <vdim>
    ...

one word per line, in vocabulary order (most frequent first). Files are written
to a temporary name in the same folder and renamed into place, so a reader
never sees half a file.

Example catalog entry::

    word2vec_vectors:
      type: dlflow.io.Word2VecTextDataset
      filepath: data/06_models/word2vec/vectors.txt
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from kedro.io import AbstractDataset, DatasetError

from dlflow.files import atomic_write


def save_word2vec_format(path: str | Path, words: Sequence[str], vectors: np.ndarray) -> None:
    """Write ``words`` and their ``vectors`` (V, dim) as a word2vec text file, atomically."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[0] != len(words):
        raise ValueError(f"vectors must have shape (len(words)={len(words)}, dim), got {vectors.shape}")
    for word in words:
        if not word or any(ch.isspace() for ch in word):
            raise ValueError(f"word {word!r} is empty or contains white space: the text format cannot hold it")
    with atomic_write(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(f"{vectors.shape[0]} {vectors.shape[1]}\n")
        row_format = "%s " + " ".join(["%.9g"] * vectors.shape[1]) + "\n"  # %.9g: float32 round-trips
        for word, row in zip(words, vectors.tolist()):
            f.write(row_format % (word, *row))


def load_word2vec_format(path: str | Path) -> tuple[list[str], np.ndarray]:
    """Read a word2vec text file: the words in file order and a float32 (V, dim) array."""
    path = Path(path)
    with open(path, encoding="utf-8") as f:
        header = f.readline().split()
        if len(header) != 2:
            raise ValueError(f"{path}: the first line must be '<vocabulary size> <dim>', got {' '.join(header)!r}")
        size, dim = int(header[0]), int(header[1])
        words: list[str] = []
        vectors = np.empty((size, dim), dtype=np.float32)
        for line_no, line in enumerate(f, start=2):
            if not line.strip():
                continue
            parts = line.rstrip("\n").rstrip(" ").split(" ")
            if len(parts) != dim + 1:
                raise ValueError(f"{path}:{line_no}: expected a word and {dim} numbers, got {len(parts) - 1} fields")
            if len(words) == size:
                raise ValueError(f"{path}:{line_no}: more than the {size} words the header announces")
            vectors[len(words)] = np.asarray(parts[1:], dtype=np.float32)
            words.append(parts[0])
    if len(words) != size:
        raise ValueError(f"{path}: the header announces {size} words, the file holds {len(words)}")
    return words, vectors


class Word2VecTextDataset(AbstractDataset[dict, dict]):
    """Word vectors as a word2vec text file; loads and saves ``{"words": list[str], "vectors": ndarray}``."""

    def __init__(self, *, filepath: str, metadata: dict[str, Any] | None = None) -> None:
        """
        Args:
            filepath: the text file, e.g. ``data/06_models/word2vec/vectors.txt``.
            metadata: free-form information for plugins such as kedro-viz.
        """
        self._filepath = Path(filepath)
        self.metadata = metadata

    def load(self) -> dict:
        if not self._filepath.exists():
            raise DatasetError(f"{self._filepath} does not exist: run the word2vec pipeline to write it.")
        words, vectors = load_word2vec_format(self._filepath)
        return {"words": words, "vectors": vectors}

    def save(self, data: dict) -> None:
        if not isinstance(data, dict) or not {"words", "vectors"} <= set(data):
            raise DatasetError("Word2VecTextDataset saves a dict with keys 'words' (list[str]) and 'vectors' (ndarray).")
        save_word2vec_format(self._filepath, list(data["words"]), np.asarray(data["vectors"]))

    def _exists(self) -> bool:
        return self._filepath.exists()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}
