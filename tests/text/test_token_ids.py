"""The token-id corpus: one streaming pass (tokenise, count, write), the folder's format, atomic saving, bad input."""

from __future__ import annotations

import json
import tracemalloc
from itertools import islice, repeat
from pathlib import Path

import numpy as np
import pytest
from kedro.io import DatasetError

from dlflow.io import TextCorpusDataset, TokenIdsDataset
from dlflow.text import CorpusFormatError, TokenIds, TokenStream, Vocabulary, tokenize, write_token_ids

SENTENCES = ["The cat sat on the mat .", "", "The dog didn't sit !", "...", "A cat and a dog"]


def token_lists(corpus: TokenIds) -> list[list[str]]:
    return [[corpus.words[i] for i in sentence] for sentence in corpus.sentences()]


def test_one_pass_writes_what_the_tokeniser_gives_and_counts_it(tmp_path: Path) -> None:
    stream = TokenStream(iter(SENTENCES), batch_chars=20)  # several batches
    write_token_ids(tmp_path / "corpus", stream)
    corpus = TokenIds(tmp_path / "corpus")
    expected = [t for t in (tokenize(s) for s in SENTENCES) if t]  # sentences without a token are dropped
    assert token_lists(corpus) == expected
    assert (corpus.n_tokens, corpus.n_sentences) == (sum(map(len, expected)), 3)
    assert corpus.words[:3] == ["the", "cat", "sat"]  # ids in order of first appearance
    assert dict(zip(corpus.words, corpus.counts.tolist())) == {w: sum(s.count(w) for s in expected) for w in corpus.words}
    assert Vocabulary.from_counts(*corpus.type_counts(), min_count=1) == Vocabulary.build(expected)

    # plain numpy reads it too
    ids = np.load(tmp_path / "corpus" / "ids.npy", mmap_mode="r")
    offsets = np.load(tmp_path / "corpus" / "offsets.npy")
    assert ids.dtype == np.int32 and offsets.dtype == np.int64 and offsets[-1] == len(ids) == corpus.n_tokens
    assert [corpus.words[i] for i in ids[offsets[1] : offsets[2]]] == tokenize(SENTENCES[2])
    assert np.array_equal(corpus.read_ids(2, 7), ids[2:7]) and np.array_equal(corpus.read_offsets(1, 4), offsets[1:])
    with pytest.raises(IndexError, match="outside"):
        corpus.read_ids(0, corpus.n_tokens + 1)


def test_worker_processes_write_the_same_corpus(tmp_path: Path) -> None:
    """Batches tokenised by two worker processes come back in order: the same ids and files as one process."""
    sentences = [f"{SENTENCES[i % len(SENTENCES)]} number {i} ." for i in range(3_000)]
    for workers in (1, 2):
        write_token_ids(tmp_path / str(workers), TokenStream(iter(sentences), workers=workers, batch_chars=4_000))
    for name in ("ids.npy", "offsets.npy", "counts.npy", "words.json", "meta.json"):
        assert (tmp_path / "1" / name).read_bytes() == (tmp_path / "2" / name).read_bytes(), name
    assert token_lists(TokenIds(tmp_path / "2")) == [tokenize(s) for s in sentences]


def test_a_stream_is_read_once() -> None:
    stream = TokenStream(iter(SENTENCES))
    words, counts = stream.type_counts()  # runs the pass
    assert words[:2] == ["the", "cat"] and counts[0] == 3
    with pytest.raises(RuntimeError, match="read once"):
        next(stream.blocks())


def test_the_counting_pass_holds_counts_not_tokens() -> None:
    """The pass's memory does not grow with the corpus: ten times the sentences, about the same peak."""

    def peak(sentences: int) -> int:
        text = islice(repeat("the quick brown fox jumps over the lazy dog , again and again !"), sentences)
        stream = TokenStream(text, batch_chars=20_000, workers=1)  # what this process holds
        tracemalloc.start()
        try:
            words, counts = stream.type_counts()
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
            assert int(counts.sum()) == 14 * sentences and len(words) == 12

    small, large = peak(2_000), peak(20_000)  # 28,000 and 280,000 tokens
    assert large < 1.5 * small, (small, large)
    assert large < 14 * 20_000 * 8 / 4, large  # well under even one int64 per token


def test_the_dataset_saves_atomically_and_refuses_a_bad_corpus_file_by_name(tmp_path: Path) -> None:
    folder = tmp_path / "my corpus"
    folder.mkdir()
    (folder / "a.txt").write_text("Good text here .\nAnd more of it .\n", encoding="utf-8")
    dataset = TokenIdsDataset(filepath=str(tmp_path / "out" / "corpus"))
    dataset.save(TokenStream(TextCorpusDataset(filepath=str(folder), lazy=True).load()()))
    before = {p.name: p.read_bytes() for p in (tmp_path / "out" / "corpus").iterdir()}
    assert dataset.exists() and dataset.load().n_sentences == 2

    (folder / "b.txt").write_bytes(b"fine line\n" * 1000 + b"caf\xe9 au lait\n")  # latin-1 in a utf-8 corpus
    reader = TextCorpusDataset(filepath=str(folder), lazy=True, encoding_parameter="user_corpus_encoding").load()
    with pytest.raises(DatasetError) as error:
        dataset.save(TokenStream(reader(), batch_chars=500))  # several batches are written before the bad line
    message = str(error.value)
    assert "b.txt" in message and "line 1001" in message and "user_corpus_encoding=latin-1" in message, message
    # the earlier corpus is untouched, and nothing half-written is left beside it
    assert {p.name: p.read_bytes() for p in (tmp_path / "out" / "corpus").iterdir()} == before
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["corpus"]

    fresh = TokenIdsDataset(filepath=str(tmp_path / "fresh" / "corpus"))
    with pytest.raises(DatasetError, match="b.txt"):
        fresh.save(TokenStream(TextCorpusDataset(filepath=str(folder), lazy=True).load()()))
    assert not fresh.exists() and list((tmp_path / "fresh").iterdir()) == []


def test_an_empty_corpus_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    dataset = TokenIdsDataset(filepath=str(tmp_path / "corpus"))
    with pytest.raises(DatasetError, match="holds no token"):
        dataset.save(TokenStream(iter(["...", "--"])))
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(DatasetError, match="TokenStream"):
        dataset.save([["a", "list"]])  # type: ignore[arg-type]


def test_a_damaged_folder_is_refused_on_load_with_the_fix(tmp_path: Path) -> None:
    folder = tmp_path / "corpus"
    write_token_ids(folder, TokenStream(iter(SENTENCES)))
    dataset = TokenIdsDataset(filepath=str(folder))
    copy = TokenIdsDataset(filepath=str(tmp_path / "copy"))
    copy.save(dataset.load())  # a TokenIds copies block by block
    assert token_lists(copy.load()) == token_lists(dataset.load())

    ids = folder / "ids.npy"
    ids.write_bytes(ids.read_bytes()[:-4])  # a truncated file
    with pytest.raises(DatasetError, match=r"ids\.npy is truncated.*delete the folder"):
        dataset.load()
    (folder / "words.json").unlink()
    with pytest.raises(DatasetError, match=r"words\.json missing"):
        dataset.load()
    meta = json.loads((tmp_path / "copy" / "meta.json").read_text())
    (tmp_path / "copy" / "meta.json").write_text(json.dumps(meta | {"tokens": meta["tokens"] + 1}))
    with pytest.raises(CorpusFormatError, match="not int32 of shape"):
        TokenIds(tmp_path / "copy")


def test_type_map_sends_the_corpus_types_to_vocabulary_ids() -> None:
    vocabulary = Vocabulary.build([["a", "a", "b", "c"]], min_count=2)
    remap = vocabulary.type_map(["c", "a", "<unk>", "b", "zz"])
    assert remap.dtype == np.int32 and remap.tolist() == [-1, vocabulary.index("a"), -1, -1, -1]
