"""``Vocabulary``: words ↔ integer ids, shared by Word2Vec and the RNN.

Ids 0 and 1 are the special tokens ``<pad>`` and ``<unk>``; the words follow in
descending order of count, ties broken alphabetically, so the same corpus and
parameters always give the same ids. ``to_dict``/``from_dict`` give a JSON-ready
form (store it with kedro-datasets' ``json.JSONDataset``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

PAD = "<pad>"
UNK = "<unk>"
PAD_ID = 0
UNK_ID = 1
SPECIALS = (PAD, UNK)
_FORMAT = "dlflow.vocabulary/1"


def _check_limits(min_count: object, max_size: object) -> None:
    if isinstance(min_count, bool) or not isinstance(min_count, (int, np.integer)) or min_count < 1:
        raise ValueError(f"min_count must be an integer >= 1, not {min_count!r}")
    if max_size is not None and (
        isinstance(max_size, bool) or not isinstance(max_size, (int, np.integer)) or max_size < len(SPECIALS) + 1
    ):
        raise ValueError(
            f"max_size must be None or an integer >= {len(SPECIALS) + 1} (it counts the special tokens "
            f"{', '.join(SPECIALS)}), not {max_size!r}"
        )


class Vocabulary:
    """An immutable, ordered word list with counts; id ``i`` is ``words[i]``."""

    def __init__(
        self, words: Sequence[str], counts: Sequence[int] | np.ndarray, *, min_count: int = 1, max_size: int | None = None
    ) -> None:
        """Build from the regular words (no specials) and their counts, in id order
        (ids start at 2). Usually called through :meth:`build` or :meth:`from_dict`."""
        words = list(words)
        counts = np.asarray(counts, dtype=np.int64)
        if counts.shape != (len(words),):
            raise ValueError(f"Vocabulary needs one count per word: {len(words)} words, counts of shape {counts.shape}")
        if counts.size and counts.min() < 0:
            raise ValueError("Vocabulary counts must be non-negative")
        if not all(isinstance(w, str) and w for w in words):
            raise ValueError("Vocabulary words must be non-empty strings")
        clash = [w for w in words if w in SPECIALS]
        if clash:
            raise ValueError(f"Vocabulary words must not include the special tokens {SPECIALS}: found {clash}")
        self._words: tuple[str, ...] = SPECIALS + tuple(words)
        self._index: dict[str, int] = {w: i for i, w in enumerate(self._words)}
        if len(self._index) != len(self._words):
            duplicates = sorted(w for w, n in Counter(words).items() if n > 1)
            raise ValueError(f"Vocabulary words must be unique; duplicated: {duplicates[:10]}")
        self._counts = np.concatenate([np.zeros(len(SPECIALS), dtype=np.int64), counts])
        self._counts.setflags(write=False)
        self.min_count = min_count
        self.max_size = max_size

    @classmethod
    def build(cls, token_lists: Iterable[Sequence[str]], *, min_count: int = 1, max_size: int | None = None) -> Vocabulary:
        """Count the tokens and keep those seen at least ``min_count`` times (see :meth:`from_counts`).

        Literal ``<pad>``/``<unk>`` tokens in the input are not counted.
        """
        _check_limits(min_count, max_size)
        if isinstance(token_lists, str):
            raise TypeError("Vocabulary.build takes an iterable of token lists, not a string")
        counter: Counter[str] = Counter()
        for tokens in token_lists:
            if isinstance(tokens, str):
                raise TypeError(f"Vocabulary.build takes token lists, got the string {tokens[:40]!r}")
            counter.update(tokens)
        return cls.from_counts(list(counter), list(counter.values()), min_count=min_count, max_size=max_size)

    @classmethod
    def from_counts(
        cls, words: Sequence[str], counts: Sequence[int] | np.ndarray, *, min_count: int = 1, max_size: int | None = None
    ) -> Vocabulary:
        """The vocabulary of a corpus already counted: ``counts[i]`` occurrences of the distinct token ``words[i]``.

        Keeps the words seen at least ``min_count`` times, most frequent first, ties broken
        alphabetically (so ids depend on the counts only, not on the order given). ``max_size``
        caps ``len(vocabulary)``, the two special tokens included (so at most ``max_size - 2``
        words: the most frequent ones). Literal ``<pad>``/``<unk>`` entries are left out.
        """
        _check_limits(min_count, max_size)
        counts = np.asarray(counts, dtype=np.int64)
        if counts.shape != (len(words),):
            raise ValueError(f"from_counts needs one count per word: {len(words)} words, counts of shape {counts.shape}")
        kept = sorted(
            ((w, int(c)) for w, c in zip(words, counts.tolist()) if c >= min_count and w not in SPECIALS),
            key=lambda wc: (-wc[1], wc[0]),
        )
        if max_size is not None:
            kept = kept[: max_size - len(SPECIALS)]
        return cls(
            [w for w, _ in kept],
            [c for _, c in kept],
            min_count=int(min_count),
            max_size=None if max_size is None else int(max_size),
        )

    # --- lookups -----------------------------------------------------------------------

    @property
    def words(self) -> tuple[str, ...]:
        """All entries in id order, specials first."""
        return self._words

    @property
    def counts(self) -> np.ndarray:
        """Corpus count of each id (int64, read-only); the specials count 0."""
        return self._counts

    def __len__(self) -> int:
        return len(self._words)

    def __contains__(self, word: object) -> bool:
        return word in self._index

    def __iter__(self) -> Iterator[str]:
        return iter(self._words)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Vocabulary):
            return NotImplemented
        return self._words == other._words and np.array_equal(self._counts, other._counts)

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} entries, min_count={self.min_count}, max_size={self.max_size})"

    def index(self, word: str) -> int:
        """The id of ``word``; KeyError when it is not in the vocabulary."""
        try:
            return self._index[word]
        except KeyError:
            raise KeyError(f"{word!r} is not in the vocabulary ({len(self)} entries)") from None

    def encode(self, tokens: Sequence[str]) -> np.ndarray:
        """Ids of ``tokens`` (int32); unknown tokens become ``<unk>`` (1)."""
        if isinstance(tokens, str):
            raise TypeError("encode takes a list of tokens, not a string: tokenize it first")
        get = self._index.get
        return np.fromiter((get(t, UNK_ID) for t in tokens), dtype=np.int32, count=len(tokens))

    def type_map(self, types: Sequence[str]) -> np.ndarray:
        """For a corpus stored as type ids (``dlflow.text.token_ids``, type ``i`` is ``types[i]``): the
        vocabulary id of each type (int32), or ``-1`` where the type is not one of the vocabulary's words
        (too rare, or a literal special token), which Word2Vec then drops as ``encode_corpus`` does."""
        if isinstance(types, str):
            raise TypeError("type_map takes the list of a corpus' types, not a string")
        get = self._index.get
        ids = np.fromiter((get(t, -1) for t in types), dtype=np.int32, count=len(types))
        ids[ids < len(SPECIALS)] = -1
        return ids

    def decode(self, ids: Iterable[int] | np.ndarray) -> list[str]:
        """Words of ``ids``; IndexError names an id outside ``[0, len)``."""
        ids = np.asarray(ids, dtype=np.int64).ravel()
        if ids.size and (ids.min() < 0 or ids.max() >= len(self)):
            bad = ids[(ids < 0) | (ids >= len(self))][0]
            raise IndexError(f"id {bad} is outside the vocabulary (ids 0..{len(self) - 1})")
        words = self._words
        return [words[i] for i in ids.tolist()]

    def encode_corpus(self, token_lists: Iterable[Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
        """The corpus as one flat id array plus sentence boundaries, for Word2Vec.

        Returns ``(ids, offsets)``: ``ids`` (int32) holds the ids of every known
        token, sentence after sentence; tokens not in the vocabulary (and
        literal specials) are DROPPED, not mapped to ``<unk>``. ``offsets``
        (int64, length ``n_sentences + 1``) gives sentence ``i`` as
        ``ids[offsets[i]:offsets[i + 1]]``; a sentence may end up empty.
        """
        get = self._index.get
        lengths: list[int] = []

        def lookups() -> Iterator[int]:
            for tokens in token_lists:
                if isinstance(tokens, str):
                    raise TypeError(f"encode_corpus takes token lists, got the string {tokens[:40]!r}")
                lengths.append(len(tokens))
                for token in tokens:
                    yield get(token, -1)

        flat = np.fromiter(lookups(), dtype=np.int64)
        keep = flat >= len(SPECIALS)
        bounds = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=bounds[1:])
        kept_before = np.zeros(flat.size + 1, dtype=np.int64)
        np.cumsum(keep, out=kept_before[1:])
        return flat[keep].astype(np.int32), kept_before[bounds]

    # --- serialisation ----------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable form; :meth:`from_dict` inverts it."""
        return {
            "format": _FORMAT,
            "specials": list(SPECIALS),
            "words": list(self._words[len(SPECIALS) :]),
            "counts": self._counts[len(SPECIALS) :].tolist(),
            "min_count": self.min_count,
            "max_size": self.max_size,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Vocabulary:
        """Rebuild a vocabulary from :meth:`to_dict`'s output; ValueError says what is wrong."""
        if not isinstance(data, Mapping):
            raise ValueError(f"A vocabulary dict is expected, not {type(data).__name__}")
        if data.get("format") != _FORMAT:
            raise ValueError(f"Not a vocabulary dict: format is {data.get('format')!r}, expected {_FORMAT!r}")
        if list(data.get("specials", [])) != list(SPECIALS):
            raise ValueError(f"Vocabulary dict has specials {data.get('specials')!r}, expected {list(SPECIALS)}")
        missing = [k for k in ("words", "counts", "min_count", "max_size") if k not in data]
        if missing:
            raise ValueError(f"Vocabulary dict lacks {', '.join(missing)}")
        return cls(data["words"], data["counts"], min_count=data["min_count"], max_size=data["max_size"])
