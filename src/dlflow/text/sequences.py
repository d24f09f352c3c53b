"""Sentences → right-padded token-id matrices for the sequence models."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dlflow.text.tokenize import tokenize
from dlflow.text.vocabulary import PAD_ID, UNK_ID, Vocabulary


def encode_sentences(sentences: Sequence[str], vocabulary: Vocabulary, max_length: int) -> tuple[np.ndarray, np.ndarray]:
    """Tokenise, look up and pad: ``ids`` int64 ``(N, max_length)`` and ``lengths`` int64 ``(N,)``.

    Unknown words map to ``<unk>``; sentences longer than ``max_length`` are
    cut; an empty sentence becomes a single ``<unk>`` so every length is ≥ 1.
    """
    ids = np.full((len(sentences), max_length), PAD_ID, dtype=np.int64)
    lengths = np.ones(len(sentences), dtype=np.int64)
    for row, sentence in enumerate(sentences):
        encoded = vocabulary.encode(tokenize(sentence))[:max_length]
        if len(encoded) == 0:
            encoded = np.array([UNK_ID])
        ids[row, : len(encoded)] = encoded
        lengths[row] = len(encoded)
    return ids, lengths
