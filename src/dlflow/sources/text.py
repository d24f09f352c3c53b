"""Readers for raw text: the MR sentence-polarity files, corpora for Word2Vec, and whole text files.

Decoding is strict everywhere: bytes that the declared encoding cannot decode
raise :class:`DataValidationError` naming the file (and zip member), the byte
offset and line, and the encoding that would work. Lines end at ``\\n`` only
(``\\r\\n`` works too): the MR files hold byte 0x85, which Latin-1 decodes to
U+0085 (NEL), a character :meth:`str.splitlines` would wrongly treat as a line
break.

``read_corpus`` reads a plain file (optionally ``.gz``), a folder (recursively)
or a zip. In a folder or zip, the corpus files are those whose suffix is one
of :data:`TEXT_SUFFIXES` (no suffix counts: Brown's ``ca01``, ``text8``; a
number counts: the subjectivity corpus' ``quote.tok.gt9.5000``) and
whose name is not documentation (:data:`METADATA_STEMS`: README, CONTENTS,
LICENSE, ``cats.txt``, ...); hidden files and ``__MACOSX`` are skipped; they are
read in sorted path order. Members that are empty or binary (a NUL byte in
their first megabyte) are skipped with a log line; if nothing is left, that is
an error. Each file's layout is detected (``format="auto"``) or forced:

* ``lines``: one sentence a line; blank lines are dropped;
* ``tagged``: lines of ``word/TAG`` tokens (the NLTK Brown corpus); tags are
  stripped. Auto-detected when at least 90% of the first 200 tokens look tagged;
* ``text8``: one huge line of space-separated tokens (Mikolov's ``text8``);
  yielded in chunks of :data:`TEXT8_CHUNK_TOKENS` tokens. Auto-detected when the
  first megabyte holds no newline.
"""

from __future__ import annotations

import codecs
import gzip
import logging
import lzma
import re
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from itertools import chain
from pathlib import Path, PurePosixPath
from typing import IO, Literal

import numpy as np
import pandas as pd

from dlflow.sources.errors import DataSourceError, DataValidationError, UndecodableTextError
from dlflow.sources.text_sets import POLARITY_ENCODING

logger = logging.getLogger("dlflow.sources")

CorpusFormat = Literal["auto", "lines", "tagged", "text8"]
CORPUS_FORMATS: tuple[str, ...] = ("auto", "lines", "tagged", "text8")
TEXT8_CHUNK_TOKENS = 1000
TEXT_SUFFIXES = frozenset({"", ".txt", ".text", ".tok", ".tokens", ".raw", ".sent", ".sents", ".pos", ".neg"})
METADATA_STEMS = frozenset({"readme", "contents", "license", "licence", "copying", "authors", "cats", "categories"})

_BLOCK = 1 << 20
_TAGGED_TOKEN = re.compile(r"\S+/[A-Za-z$*+\-.,:()'`]+")
_TAG = re.compile(r"(?<=\S)/[A-Za-z$*+\-.,:()'`]+(?=\s|$)")  # the /TAG after a word
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
# What a corrupt zip/gzip/xz stream can raise while being opened or read.
_READ_ERRORS = (
    OSError,
    EOFError,
    zlib.error,
    lzma.LZMAError,
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    RuntimeError,
    NotImplementedError,
)


# --- MR sentence polarity -----------------------------------------------------------------

POLARITY_CLASS_NAMES: tuple[str, ...] = ("negative", "positive")  # by label: 0 negative, 1 positive


def read_polarity(pos_path: Path | str, neg_path: Path | str, encoding: str = POLARITY_ENCODING) -> pd.DataFrame:
    """The MR sentences as a table: ``sentence`` (str, stripped, blank lines
    dropped) and ``label`` (int8: 1 positive, 0 negative), positives first.

    Raises DataSourceError when a file is missing, DataValidationError when one
    is empty, binary or not decodable as ``encoding``.
    """
    _check_encoding(encoding)
    frames = []
    for path, label in ((Path(pos_path), 1), (Path(neg_path), 0)):
        if not path.is_file():
            raise DataSourceError(
                f"{path} (MR sentence polarity, {'positive' if label else 'negative'} sentences) does not exist. "
                "Fetch it with dlflow.sources.text_sets.fetch_polarity, or load the PolarityDataset."
            )
        sentences = list(_units(_file_source(path), encoding, "lines"))
        if not sentences:
            raise DataValidationError(
                f"{path} is empty: MR polarity files hold one sentence a line. Delete it and run again to obtain a fresh copy."
            )
        frames.append(pd.DataFrame({"sentence": sentences, "label": np.full(len(sentences), label, dtype=np.int8)}))
    return pd.concat(frames, ignore_index=True)


def assign_folds(frame: pd.DataFrame, n_folds: int = 10, seed: int = 42) -> pd.DataFrame:
    """A copy of ``frame`` with an int8 ``fold`` column in ``[0, n_folds)``.

    Stratified by ``label`` and seeded: each label's rows are shuffled and dealt
    round-robin, continuing from where the previous label stopped, so every
    fold holds within one row of ``len(frame) / n_folds`` rows and within one
    row of its share of each label. Rows keep their order.
    """
    if isinstance(n_folds, bool) or not isinstance(n_folds, (int, np.integer)) or not 2 <= n_folds <= 127:
        raise ValueError(f"n_folds must be an integer in [2, 127], not {n_folds!r}")
    if "label" not in frame.columns:
        raise ValueError(f"assign_folds needs a 'label' column; the frame has {list(frame.columns)}")
    if len(frame) < n_folds:
        raise ValueError(f"Cannot split {len(frame)} rows into {n_folds} folds")
    rng = np.random.default_rng(seed)
    labels = frame["label"].to_numpy()
    order = np.concatenate([rng.permutation(np.flatnonzero(labels == value)) for value in np.unique(labels)])
    folds = np.empty(len(frame), dtype=np.int8)
    folds[order] = np.arange(len(frame)) % n_folds
    return frame.assign(fold=folds)


# --- whole files -----------------------------------------------------------------------


def read_text(path: Path | str, encoding: str = "utf-8") -> str:
    """The text of one file, decoded strictly, with a leading byte-order mark removed.

    Raises DataSourceError for a missing file, ValueError for an unknown encoding, and
    DataValidationError for a binary file (a NUL byte at the start, for 8-bit encodings) or
    undecodable bytes (:class:`UndecodableTextError`: offset, line and an encoding that works).
    """
    _check_encoding(encoding)
    path = Path(path)
    if not path.is_file():
        raise DataSourceError(f"{path} does not exist (or is not a file).")
    text = "".join(_decoded_blocks(_Source(str(path), partial(path.open, "rb")), encoding))
    return text[1:] if text.startswith("\ufeff") else text


# --- corpora -------------------------------------------------------------------------


def read_corpus(path: Path | str, *, encoding: str = "utf-8", format: CorpusFormat = "auto") -> Iterator[str]:
    """Sentences (lines, or token chunks for text8) of raw text from a file, a
    ``.gz`` file, a folder or a zip; see the module docstring for what is read.

    The path, encoding, format and (for a zip) its member list are checked at
    once; the text is read lazily as the iterator is consumed. Yields stripped,
    non-empty strings; raises DataSourceError for a missing path and
    DataValidationError for a corpus with no text or undecodable bytes.
    """
    _check_encoding(encoding)
    if format not in CORPUS_FORMATS:
        raise ValueError(f"Unknown corpus format {format!r}; choose one of: {', '.join(CORPUS_FORMATS)}")
    path = Path(path)
    if not path.exists():
        raise DataSourceError(
            f"Corpus {path} does not exist. Point `filepath` at a text file, a folder of text files or a "
            "zip, or give a registered `source` (movie_reviews, brown) to have it fetched."
        )
    if path.is_dir():
        relative = {p: PurePosixPath(p.relative_to(path).as_posix()) for p in path.rglob("*") if p.is_file()}
        files = sorted((p for p, rel in relative.items() if _is_corpus_name(rel)), key=lambda p: relative[p])
        if not files:
            raise DataValidationError(f"{path} holds no text files. {_NAMING_RULE}")
        return _read_many(str(path), [_file_source(p) for p in files], encoding, format)
    if _is_zip(path):
        return _read_zip(path, _zip_members(path), encoding, format)
    return _read_single(_file_source(path), encoding, format)


# --- internals -----------------------------------------------------------------------

_NAMING_RULE = (
    f"Corpus files are those with no suffix, a number or one of {', '.join(sorted(s for s in TEXT_SUFFIXES if s))}, "
    f"except documentation ({', '.join(sorted(METADATA_STEMS))}) and hidden files."
)


class _BinaryFile(DataValidationError):
    """A file that holds a NUL byte: skipped inside folders and zips."""


@dataclass(frozen=True)
class _Source:
    label: str  # for messages: a path, or "member M of zip Z"
    open: Callable[[], IO[bytes]]


def _file_source(path: Path) -> _Source:
    if path.suffix.lower() == ".gz":
        return _Source(str(path), partial(gzip.open, path, "rb"))
    return _Source(str(path), partial(path.open, "rb"))


def _check_encoding(encoding: str) -> None:
    try:
        "".encode(encoding)
        codecs.getincrementaldecoder(encoding)
    except (LookupError, TypeError):
        raise ValueError(f"Unknown text encoding {encoding!r} (try 'utf-8' or 'latin-1')") from None


def _is_corpus_name(relpath: PurePosixPath) -> bool:
    if any(part.startswith(".") or part == "__MACOSX" for part in relpath.parts):
        return False
    name = PurePosixPath(relpath.name.lower())
    text_suffix = name.suffix in TEXT_SUFFIXES or name.suffix[1:].isdigit()
    return text_suffix and name.stem not in METADATA_STEMS


def _is_zip(path: Path) -> bool:
    if path.suffix.lower() == ".zip":
        return True
    try:
        with path.open("rb") as f:
            return f.read(4) in _ZIP_MAGIC
    except OSError:
        return False


def _zip_members(path: Path) -> list[str]:
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (*_READ_ERRORS, ValueError) as exc:
        raise DataValidationError(
            f"{path} is not a readable zip archive ({type(exc).__name__}: {exc}). "
            "Replace it with a good copy (delete it to have a registered corpus fetched again)."
        ) from exc
    names = sorted(i.filename for i in infos if not i.is_dir() and _is_corpus_name(PurePosixPath(i.filename)))
    if not names:
        listed = ", ".join(i.filename for i in infos[:10]) or "nothing"
        raise DataValidationError(f"Zip {path} holds no text files (it holds: {listed}). {_NAMING_RULE}")
    return names


def _read_zip(path: Path, names: list[str], encoding: str, format: str) -> Iterator[str]:
    try:
        zf = zipfile.ZipFile(path)
    except (*_READ_ERRORS, ValueError) as exc:
        raise DataValidationError(f"{path} is not a readable zip archive ({type(exc).__name__}: {exc})") from exc
    with zf:
        members = [_Source(f"member {name} of {path}", partial(zf.open, name)) for name in names]
        yield from _read_many(str(path), members, encoding, format)


def _read_single(source: _Source, encoding: str, format: str) -> Iterator[str]:
    count = 0
    for unit in _units(source, encoding, format):
        count += 1
        yield unit
    if count == 0:
        raise DataValidationError(f"{source.label} is empty: a corpus needs at least one line of text.")


def _read_many(container: str, sources: list[_Source], encoding: str, format: str) -> Iterator[str]:
    total = 0
    skipped: list[str] = []
    for source in sources:
        count = 0
        try:
            for unit in _units(source, encoding, format):
                count += 1
                yield unit
        except _BinaryFile as exc:
            logger.warning("Skipping a binary file: %s", exc)
            skipped.append(f"{source.label} (binary)")
            continue
        if count == 0:
            logger.info("Skipping %s: it holds no text", source.label)
            skipped.append(f"{source.label} (empty)")
        total += count
    if total == 0:
        shown = "; ".join(skipped[:5]) + ("; ..." if len(skipped) > 5 else "")
        raise DataValidationError(f"{container} holds no text: every corpus file is empty or binary ({shown}).")


def _units(source: _Source, encoding: str, format: str) -> Iterator[str]:
    """Stripped, non-empty sentences of one file in the given (or detected) format."""
    blocks = _decoded_blocks(source, encoding)
    first = ""
    for first in blocks:  # the first non-empty decoded block decides the format
        if first:
            break
    if not first:
        return
    blocks = chain([first], blocks)
    layout = format
    if format == "auto":
        layout = "lines" if "\n" in first else "text8"
    tagged = format == "tagged" or (format == "auto" and _looks_tagged(first))
    units = _token_chunks(blocks) if layout == "text8" else _lines(blocks)
    for unit in units:
        if tagged:
            unit = _TAG.sub("", unit)
        unit = unit.strip()
        if unit:
            yield unit


def _looks_tagged(text: str) -> bool:
    tokens = text[:20_000].split()[:200]
    return bool(tokens) and sum(1 for t in tokens if _TAGGED_TOKEN.fullmatch(t)) >= 0.9 * len(tokens)


def _lines(blocks: Iterable[str]) -> Iterator[str]:
    pending: list[str] = []
    for block in blocks:
        if "\n" not in block:
            pending.append(block)
            continue
        pending.append(block)
        lines = "".join(pending).split("\n")
        pending = [lines.pop()]
        yield from lines
    yield "".join(pending)


def _token_chunks(blocks: Iterable[str], size: int = TEXT8_CHUNK_TOKENS) -> Iterator[str]:
    buffer: list[str] = []
    rest = ""
    for block in blocks:
        if not block:
            continue
        tokens = (rest + block).split()
        rest = tokens.pop() if tokens and not block[-1].isspace() else ""
        buffer.extend(tokens)
        full = len(buffer) - len(buffer) % size
        for start in range(0, full, size):
            yield " ".join(buffer[start : start + size])
        buffer = buffer[full:]
    if rest:
        buffer.append(rest)
    for start in range(0, len(buffer), size):
        yield " ".join(buffer[start : start + size])


def _sniffs_binary(encoding: str) -> bool:
    return not codecs.lookup(encoding).name.startswith(("utf-16", "utf-32"))


def _decoded_blocks(source: _Source, encoding: str) -> Iterator[str]:
    """The text of ``source`` in blocks, decoded strictly; raises the project's errors."""
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    sniff = _sniffs_binary(encoding)
    consumed = 0
    try:
        stream = source.open()
    except (*_READ_ERRORS, ValueError) as exc:
        raise DataValidationError(f"Cannot open {source.label}: {type(exc).__name__}: {exc}") from exc
    with stream:
        while True:
            try:
                block = stream.read(_BLOCK)
            except (*_READ_ERRORS, ValueError) as exc:
                raise DataValidationError(
                    f"Cannot read {source.label} after {consumed} bytes: {type(exc).__name__}: {exc}. "
                    "The file is corrupt or truncated: replace it with a good copy."
                ) from exc
            final = not block
            if consumed == 0 and sniff and b"\x00" in block:
                nul = block.index(b"\x00")
                raise _BinaryFile(f"{source.label} is binary, not text: NUL byte at offset {nul}.")
            state = decoder.getstate()
            pending = len(state[0]) if isinstance(state[0], bytes) else 0
            try:
                text = decoder.decode(block, final=final)
            except UnicodeDecodeError as exc:
                raise _decode_error(source, encoding, consumed - pending + exc.start, exc) from None
            except UnicodeError as exc:  # e.g. "UTF-16 stream does not start with BOM"
                raise UndecodableTextError(f"{source.label} is not valid {encoding}: {exc}.") from None
            consumed += len(block)
            yield text
            if final:
                return


def _decode_error(source: _Source, encoding: str, offset: int, exc: UnicodeDecodeError) -> UndecodableTextError:
    """The error for undecodable bytes: where they are and which encoding would work."""
    where = f"offset {offset}"
    suggestion, reason = None, ""
    try:
        with source.open() as f:
            raw = f.read()
    except (*_READ_ERRORS, ValueError):
        raw = None
    if raw is not None and 0 <= offset < len(raw):
        line = raw.count(b"\n", 0, offset) + 1
        where = f"offset {offset} (line {line}), byte 0x{raw[offset]:02x}"
        name = codecs.lookup(encoding).name
        if name != "utf-8" and _decodes(raw, "utf-8"):
            suggestion, reason = "utf-8", "It decodes as UTF-8"
        elif name != "cp1252" and _decodes(raw, "cp1252"):
            suggestion = "latin-1"
            reason = "It looks like a single-byte Western encoding (latin-1, or cp1252, which also maps curly quotes and dashes)"
    return UndecodableTextError(
        f"{source.label} is not valid {encoding}: the bytes at {where} cannot be decoded ({exc.reason}).", suggestion, reason
    )


def _decodes(raw: bytes, encoding: str) -> bool:
    try:
        raw.decode(encoding)
    except UnicodeDecodeError:
        return False
    return True
