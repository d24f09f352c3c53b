"""A tokenised corpus of any size: one streaming pass writes it to disk as token ids; readers map a range at a time.

``TokenStream`` is the pass: sentences go in one at a time, are tokenised with the one
tokeniser, and each distinct token gets the next id the first time it is seen (its *type id*)
and is counted. Out come blocks of ids (int32) and sentence lengths, never the token list,
so memory holds one block plus the distinct tokens and their counts, whatever the corpus' size.
The vocabulary (``Vocabulary.from_counts``) is chosen from those counts afterwards.

On disk (``write_token_ids``, ``TokenIds``), a folder::

    ids.npy       int32 (n_tokens,)        every token's type id, sentence after sentence
    offsets.npy   int64 (n_sentences + 1,) sentence i is ids[offsets[i]:offsets[i + 1]]
    counts.npy    int64 (n_types,)         how often each type occurs
    words.json    the types, in id order (type id i is words[i])
    meta.json     format, sizes

``np.load(folder / "ids.npy", mmap_mode="r")`` reads it with numpy alone. ``TokenIds`` checks the
folder when it is opened and reads ranges through memory maps of those ranges only
(``read_ids``, ``read_offsets``), so the pages a reader touched leave memory with the range it
read, and training on a corpus larger than memory keeps a constant footprint.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import sys
import time
from collections import deque
from collections.abc import Iterable, Iterator
from functools import cached_property
from itertools import chain
from pathlib import Path

import numpy as np

from dlflow.text.tokenize import tokenize

logger = logging.getLogger(__name__)

FORMAT = "dlflow.token_ids/1"
FILES = ("ids.npy", "offsets.npy", "counts.npy", "words.json", "meta.json")
BATCH_CHARS = 1 << 20  # characters of text per batch of a TokenStream (about 200,000 tokens)
_HEADER = 128  # bytes of an .npy header written before the length is known (rewritten at the end)
_PROGRESS_SECONDS = 15.0

Block = tuple[np.ndarray, np.ndarray]  # (ids int32, sentence lengths int64)


class CorpusFormatError(ValueError):
    """A token-id folder that is incomplete, corrupt or not one: the message names the folder and the fix."""


# --------------------------------------------------------------------------- the pass


def encode_batch(sentences: list[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Tokenise a batch of sentences: its distinct tokens (in order of appearance), every token as an
    index into them (int32, flat), and the length of each sentence that has a token (int64).

    What a worker process does for ``TokenStream``; ``TokenTypes.merge`` turns it into corpus ids.
    """
    token_lists = [tokens for tokens in map(tokenize, sentences) if tokens]
    flat = list(chain.from_iterable(token_lists))
    words = list(dict.fromkeys(flat))
    index = dict(zip(words, range(len(words))))
    codes = np.fromiter(map(index.__getitem__, flat), dtype=np.int32, count=len(flat))
    return words, codes, np.fromiter(map(len, token_lists), dtype=np.int64, count=len(token_lists))


class TokenTypes:
    """The distinct tokens seen so far: each gets the next id when first seen, and is counted.

    Ids follow first appearance, so the same corpus always gives the same ids.
    """

    def __init__(self) -> None:
        self._index: dict[str, int] = {}
        self._counts = np.zeros(1024, dtype=np.int64)

    def __len__(self) -> int:
        return len(self._index)

    def merge(self, words: list[str], codes: np.ndarray) -> np.ndarray:
        """Corpus ids (int32) of a batch given as ``encode_batch``'s ``words`` and ``codes``; counts them."""
        index = self._index
        for word in words:
            if word not in index:
                index[word] = len(index)
        ids = np.fromiter(map(index.__getitem__, words), dtype=np.int32, count=len(words))[codes]
        if len(index) > len(self._counts):
            self._counts = np.concatenate([self._counts, np.zeros(max(len(index), 2 * len(self._counts)), np.int64)])
        self._counts[: len(index)] += np.bincount(ids, minlength=len(index))
        return ids

    @property
    def words(self) -> list[str]:
        return list(self._index)

    @property
    def counts(self) -> np.ndarray:
        return self._counts[: len(self._index)].copy()


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


class TokenStream:
    """One pass over ``sentences``: tokenised, interned and counted block by block (``blocks``).

    The sentences are read here, in order, and tokenised in batches of about ``batch_chars``
    characters by ``workers`` processes (default: one per core; forked on Linux, so they start
    at once), a few batches ahead of the writing; the results come back in corpus order, so ids
    and files are the same whatever the number of workers. A corpus of one batch is tokenised in
    this process. Sentences with no token are dropped.

    The stream is single-use: ``blocks`` runs the pass once (a second call raises); ``type_counts``
    runs it if nobody has, discarding the ids. A line is logged every 15 s of a long pass, and
    one at its end.
    """

    def __init__(
        self,
        sentences: Iterable[str],
        *,
        workers: int | None = None,
        batch_chars: int = BATCH_CHARS,
        description: str = "corpus",
    ) -> None:
        self._sentences = sentences
        self._workers = workers or _cores()
        self._batch_chars = batch_chars
        self.description = description
        self._types = TokenTypes()
        self._state = "new"  # new -> streaming -> done
        self.n_tokens = 0
        self.n_sentences = 0

    def _batches(self) -> Iterator[list[str]]:
        batch: list[str] = []
        size = 0
        for sentence in self._sentences:
            batch.append(sentence)
            size += len(sentence)
            if size >= self._batch_chars:
                yield batch
                batch, size = [], 0
        if batch:
            yield batch

    def _encoded(self) -> Iterator[tuple[list[str], np.ndarray, np.ndarray]]:
        """``encode_batch`` of every batch, in order: here for a one-batch corpus or one worker, else in a pool."""
        batches = self._batches()
        first = next(batches, None)
        if first is None:
            return
        second = next(batches, None)
        if second is None or self._workers == 1:
            yield encode_batch(first)
            if second is not None:
                yield encode_batch(second)
                yield from map(encode_batch, batches)
            return
        from concurrent.futures import ProcessPoolExecutor

        context = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else None)
        pending: deque = deque()
        with ProcessPoolExecutor(self._workers, mp_context=context) as pool:
            try:
                for batch in chain([first, second], batches):
                    pending.append(pool.submit(encode_batch, batch))
                    if len(pending) > 2 * self._workers:  # a bounded number of batches in flight
                        yield pending.popleft().result()
                while pending:
                    yield pending.popleft().result()
            finally:
                for future in pending:
                    future.cancel()

    def blocks(self) -> Iterator[Block]:
        """``(ids, lengths)`` per batch, in corpus order."""
        if self._state != "new":
            raise RuntimeError(f"The {self.description} stream has already been read: a TokenStream is read once")
        self._state = "streaming"
        started = last = time.perf_counter()
        for words, codes, lengths in self._encoded():
            if len(codes) == 0:
                continue
            ids = self._types.merge(words, codes)
            self.n_tokens += len(ids)
            self.n_sentences += len(lengths)
            yield ids, lengths
            if time.perf_counter() - last >= _PROGRESS_SECONDS:
                last = time.perf_counter()
                self._log("so far", last - started)
        self._state = "done"
        self._log("", time.perf_counter() - started)

    def _log(self, when: str, seconds: float) -> None:
        logger.info(
            "%s%s: %s sentences, %s tokens, %s distinct (%.2f M tokens/s)",
            self.description[:1].upper() + self.description[1:], f" {when}" if when else "",
            f"{self.n_sentences:,}", f"{self.n_tokens:,}", f"{len(self._types):,}", self.n_tokens / max(seconds, 1e-9) / 1e6,
        )  # fmt: skip

    def type_counts(self) -> tuple[list[str], np.ndarray]:
        """The distinct tokens (in id order) and their counts; runs the pass first if it has not run."""
        if self._state == "new":
            for _ in self.blocks():
                pass
        if self._state != "done":
            raise RuntimeError(f"The {self.description} stream was not read to its end: its counts are incomplete")
        return self._types.words, self._types.counts


# --------------------------------------------------------------------------- on disk


def _npy_header(dtype: np.dtype, length: int) -> bytes:
    """An .npy (version 1.0) header of exactly ``_HEADER`` bytes for a 1-D array of ``length`` items."""
    text = repr({"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": (length,)})
    body = text.encode("latin1")
    padding = _HEADER - len(np.lib.format.MAGIC_PREFIX) - 2 - 2 - len(body) - 1
    return np.lib.format.MAGIC_PREFIX + bytes([1, 0]) + (_HEADER - 10).to_bytes(2, "little") + body + b" " * padding + b"\n"


class _ArrayFile:
    """A 1-D .npy file written in pieces: a placeholder header, the items, then the true header."""

    def __init__(self, path: Path, dtype: type) -> None:
        self.path, self.dtype, self.length = path, np.dtype(dtype), 0
        self._file = open(path, "wb")  # noqa: SIM115 (closed in finish)
        self._file.write(_npy_header(self.dtype, 0))

    def append(self, values: np.ndarray) -> None:
        self._file.write(np.ascontiguousarray(values, dtype=self.dtype).tobytes())
        self.length += len(values)

    def finish(self) -> None:
        self._file.seek(0)
        self._file.write(_npy_header(self.dtype, self.length))
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()

    def abandon(self) -> None:
        self._file.close()


def write_token_ids(folder: str | Path, stream: TokenStream | TokenIds) -> None:
    """Write ``stream`` (a ``TokenStream``, or a ``TokenIds`` to copy) as a token-id folder at ``folder``.

    Writes the files in place, block by block (memory holds one block); call it on a fresh
    folder that is renamed into place afterwards (``dlflow.io.TokenIdsDataset`` does) so a
    failure never leaves a readable half corpus. Raises ValueError when the stream's ids do not
    fit its types, or when it holds no token.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ids_file, offsets_file = _ArrayFile(folder / "ids.npy", np.int32), _ArrayFile(folder / "offsets.npy", np.int64)
    counts = np.zeros(0, dtype=np.int64)
    try:
        offsets_file.append(np.zeros(1, dtype=np.int64))
        for ids, lengths in stream.blocks():
            if len(ids) != int(np.sum(lengths)):
                raise ValueError(f"A block of {len(ids)} ids with sentence lengths summing to {int(np.sum(lengths))}")
            if len(ids) and (ids.min() < 0):
                raise ValueError("Token ids must not be negative")
            block_counts = np.bincount(ids, minlength=len(counts)) if len(ids) else np.zeros(len(counts), np.int64)
            if len(block_counts) > len(counts):
                counts = np.concatenate([counts, np.zeros(len(block_counts) - len(counts), np.int64)])
            counts += block_counts
            start = ids_file.length
            ids_file.append(ids)
            offsets_file.append(start + np.cumsum(lengths))
        words, stream_counts = stream.type_counts()
    except BaseException:
        ids_file.abandon()
        offsets_file.abandon()
        raise
    ids_file.finish()
    offsets_file.finish()
    if len(counts) > len(words):
        raise ValueError(f"The corpus uses type id {len(counts) - 1} but names only {len(words)} types")
    counts = np.concatenate([counts, np.zeros(len(words) - len(counts), np.int64)])
    if not np.array_equal(counts, np.asarray(stream_counts, dtype=np.int64)):
        raise ValueError("The corpus' type counts do not match its ids")
    if ids_file.length == 0:
        raise ValueError("The corpus holds no token: every sentence was empty after tokenisation")
    np.save(folder / "counts.npy", counts)
    (folder / "words.json").write_text(json.dumps(list(words), ensure_ascii=False), encoding="utf-8")
    meta = {"format": FORMAT, "tokens": ids_file.length, "sentences": offsets_file.length - 1, "types": len(words)}
    (folder / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    for name in ("counts.npy", "words.json", "meta.json"):
        _fsync(folder / name)


def _fsync(path: Path) -> None:
    handle = os.open(path, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


class TokenIds:
    """A token-id folder, opened for reading; checked when opened (``CorpusFormatError`` names what is wrong).

    ``read_ids(start, stop)`` and ``read_offsets(start, stop)`` return the range through a memory
    map of that range alone: nothing is read until used, and the pages leave memory with the
    returned array. ``words`` and ``counts`` are read on first use.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        fix = "delete the folder and run the pipeline again to rebuild it (kedro run --pipeline word2vec)"
        missing = [name for name in FILES if not (self.folder / name).is_file()]
        if missing:
            raise CorpusFormatError(f"{self.folder} is not a complete token-id corpus: {', '.join(missing)} missing; {fix}")
        try:
            meta = json.loads((self.folder / "meta.json").read_text(encoding="utf-8"))
        except ValueError as error:
            raise CorpusFormatError(f"{self.folder / 'meta.json'} is not valid JSON ({error}); {fix}") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise CorpusFormatError(f"{self.folder / 'meta.json'}: format is not {FORMAT!r}; {fix}")
        self.n_tokens, self.n_sentences, self.n_types = int(meta["tokens"]), int(meta["sentences"]), int(meta["types"])
        self._ids_offset = self._check("ids.npy", np.int32, self.n_tokens, fix)
        self._offsets_offset = self._check("offsets.npy", np.int64, self.n_sentences + 1, fix)
        if len(self.counts) != self.n_types:
            raise CorpusFormatError(
                f"{self.folder / 'counts.npy'} holds {len(self.counts)} counts for {self.n_types} types; {fix}"
            )

    def _check(self, name: str, dtype: type, length: int, fix: str) -> int:
        """The data offset of the .npy file ``name`` after checking its header and size against the meta."""
        path = self.folder / name
        with open(path, "rb") as stream:
            try:
                version = np.lib.format.read_magic(stream)
                read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                shape, fortran, found = read_header(stream)
            except ValueError as error:
                raise CorpusFormatError(f"{path} is not an .npy file ({error}); {fix}") from None
            offset = stream.tell()
        if shape != (length,) or found != np.dtype(dtype) or fortran:
            raise CorpusFormatError(f"{path} holds {found} of shape {shape}, not {np.dtype(dtype)} of shape ({length},); {fix}")
        if path.stat().st_size != offset + length * np.dtype(dtype).itemsize:
            raise CorpusFormatError(f"{path} is truncated or has extra bytes ({path.stat().st_size} bytes); {fix}")
        return offset

    def __len__(self) -> int:
        return self.n_tokens

    def __repr__(self) -> str:
        return f"TokenIds({str(self.folder)!r}: {self.n_tokens:,} tokens, {self.n_sentences:,} sentences, {self.n_types:,} types)"

    @cached_property
    def words(self) -> list[str]:
        words = json.loads((self.folder / "words.json").read_text(encoding="utf-8"))
        if not isinstance(words, list) or len(words) != self.n_types:
            raise CorpusFormatError(f"{self.folder / 'words.json'} does not list the corpus' {self.n_types} types")
        return words

    @cached_property
    def counts(self) -> np.ndarray:
        counts = np.load(self.folder / "counts.npy")
        counts.setflags(write=False)
        return counts

    def type_counts(self) -> tuple[list[str], np.ndarray]:
        """The distinct tokens (in id order) and their counts."""
        return self.words, self.counts

    def read_ids(self, start: int, stop: int) -> np.ndarray:
        """``ids[start:stop]`` (int32), through a memory map of that range only."""
        return self._map("ids.npy", self._ids_offset, np.int32, start, stop, self.n_tokens)

    def read_offsets(self, start: int, stop: int) -> np.ndarray:
        """``offsets[start:stop]`` (int64; ``n_sentences + 1`` entries in all), through a map of that range only."""
        return self._map("offsets.npy", self._offsets_offset, np.int64, start, stop, self.n_sentences + 1)

    def _map(self, name: str, offset: int, dtype: type, start: int, stop: int, length: int) -> np.ndarray:
        if not 0 <= start <= stop <= length:
            raise IndexError(f"range [{start}, {stop}) outside the {length} entries of {self.folder / name}")
        if start == stop:
            return np.empty(0, dtype=dtype)
        size = np.dtype(dtype).itemsize
        return np.memmap(self.folder / name, dtype=dtype, mode="r", offset=offset + start * size, shape=(stop - start,))

    def blocks(self, block_tokens: int = 1 << 20) -> Iterator[Block]:
        """``(ids, lengths)`` in blocks of whole sentences of about ``block_tokens`` tokens (copies, each block read once)."""
        step = max(1, block_tokens // max(1, self.n_tokens // max(1, self.n_sentences)))
        for first in range(0, self.n_sentences, step):
            offsets = np.array(self.read_offsets(first, min(first + step, self.n_sentences) + 1))
            yield np.array(self.read_ids(int(offsets[0]), int(offsets[-1]))), np.diff(offsets)

    def sentences(self) -> Iterator[np.ndarray]:
        """Each sentence's type ids, in order."""
        for ids, lengths in self.blocks():
            yield from np.split(ids, np.cumsum(lengths)[:-1])
