"""Vocabulary: deterministic ids, counts, encode/decode, JSON round trip, the Word2Vec corpus form."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dlflow.text import PAD, PAD_ID, UNK, UNK_ID, Vocabulary

CORPUS = [
    ["the", "cat", "sat", "on", "the", "mat"],
    ["the", "dog", "sat"],
    ["a", "cat", "and", "a", "dog"],
    ["zebra"],
]


def test_build_orders_by_count_then_alphabet() -> None:
    vocab = Vocabulary.build(CORPUS)
    assert vocab.words == (PAD, UNK, "the", "a", "cat", "dog", "sat", "and", "mat", "on", "zebra")
    assert vocab.counts.dtype == np.int64
    assert vocab.counts.tolist() == [0, 0, 3, 2, 2, 2, 2, 1, 1, 1, 1]
    assert (PAD_ID, UNK_ID) == (0, 1)
    assert vocab.index(PAD) == 0 and vocab.index(UNK) == 1 and vocab.index("the") == 2


def test_build_is_deterministic_whatever_the_order() -> None:
    shuffled = [list(s) for s in CORPUS]
    random.Random(0).shuffle(shuffled)
    for sentence in shuffled:
        random.Random(1).shuffle(sentence)
    assert Vocabulary.build(iter(shuffled)) == Vocabulary.build(CORPUS)


def test_min_count_and_max_size() -> None:
    assert Vocabulary.build(CORPUS, min_count=2).words == (PAD, UNK, "the", "a", "cat", "dog", "sat")
    assert Vocabulary.build(CORPUS, max_size=4).words == (PAD, UNK, "the", "a")
    assert len(Vocabulary.build(CORPUS, min_count=2, max_size=100)) == 7
    assert Vocabulary.build(CORPUS, min_count=4).words == (PAD, UNK)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"min_count": 0},
        {"min_count": -1},
        {"min_count": 1.5},
        {"min_count": True},
        {"max_size": 2},
        {"max_size": 0},
        {"max_size": 3.0},
    ],
)
def test_bad_parameters(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        Vocabulary.build(CORPUS, **kwargs)  # type: ignore[arg-type]


def test_strings_are_not_token_lists() -> None:
    with pytest.raises(TypeError):
        Vocabulary.build(["the cat sat"])
    with pytest.raises(TypeError):
        Vocabulary.build(CORPUS).encode("the cat")  # type: ignore[arg-type]


def test_literal_specials_are_not_words() -> None:
    vocab = Vocabulary.build([["<unk>", "<pad>", "x", "<unk>"]])
    assert vocab.words == (PAD, UNK, "x")
    assert vocab.counts.tolist() == [0, 0, 1]


def test_encode_decode_contains_index() -> None:
    vocab = Vocabulary.build(CORPUS)
    ids = vocab.encode(["the", "unseen", "cat", PAD])
    assert ids.dtype == np.int32
    assert ids.tolist() == [2, UNK_ID, 4, PAD_ID]
    assert vocab.decode(ids) == ["the", UNK, "cat", PAD]
    assert vocab.encode([]).shape == (0,)
    assert "cat" in vocab and "unseen" not in vocab and PAD in vocab
    assert len(vocab) == 11 and list(vocab)[:3] == [PAD, UNK, "the"]
    with pytest.raises(KeyError, match="unseen"):
        vocab.index("unseen")
    with pytest.raises(IndexError, match="id 11"):
        vocab.decode([2, 11])
    with pytest.raises(IndexError, match="id -1"):
        vocab.decode(np.array([-1]))
    assert not vocab.counts.flags.writeable


def test_json_round_trip() -> None:
    vocab = Vocabulary.build(CORPUS, min_count=1, max_size=9)
    data = json.loads(json.dumps(vocab.to_dict()))
    again = Vocabulary.from_dict(data)
    assert again == vocab
    assert again.min_count == 1 and again.max_size == 9
    assert again.encode(["dog"]).tolist() == vocab.encode(["dog"]).tolist()


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(format="other"), "format"),
        (lambda d: d.update(specials=["<s>"]), "specials"),
        (lambda d: d.pop("counts"), "lacks counts"),
        (lambda d: d.update(counts=[1]), "one count per word"),
        (lambda d: d.update(words=["a"] * len(d["words"])), "unique"),
        (lambda d: d.update(words=[PAD] + d["words"][1:]), "special tokens"),
        (lambda d: d.update(counts=[-1] * len(d["counts"])), "non-negative"),
    ],
)
def test_from_dict_rejects_bad_data(mutate: object, message: str) -> None:
    data = Vocabulary.build(CORPUS).to_dict()
    mutate(data)  # type: ignore[operator]
    with pytest.raises(ValueError, match=message):
        Vocabulary.from_dict(data)


def test_encode_corpus_drops_unknown_tokens() -> None:
    vocab = Vocabulary.build(CORPUS, min_count=2)  # the a cat dog sat
    ids, offsets = vocab.encode_corpus([["the", "mat", "cat"], ["zebra", "on"], [], ["a", "<unk>", "dog"]])
    assert ids.dtype == np.int32 and offsets.dtype == np.int64
    assert offsets.tolist() == [0, 2, 2, 2, 4]
    assert vocab.decode(ids) == ["the", "cat", "a", "dog"]
    empty_ids, empty_offsets = vocab.encode_corpus([])
    assert empty_ids.shape == (0,) and empty_offsets.tolist() == [0]


WORDS = st.sampled_from(["a", "b", "c", "d", "e", "f", "<unk>", "<pad>"])


@given(corpus=st.lists(st.lists(WORDS, max_size=8), max_size=20), min_count=st.integers(1, 4))
def test_encode_corpus_matches_per_sentence_filtering(corpus: list[list[str]], min_count: int) -> None:
    vocab = Vocabulary.build(corpus, min_count=min_count)
    ids, offsets = vocab.encode_corpus(corpus)
    assert len(offsets) == len(corpus) + 1 and offsets[0] == 0 and offsets[-1] == len(ids)
    for i, sentence in enumerate(corpus):
        expected = [vocab.index(t) for t in sentence if t in vocab and t not in (PAD, UNK)]
        assert ids[offsets[i] : offsets[i + 1]].tolist() == expected
    # counts agree with the corpus
    flat = [t for s in corpus for t in s]
    for word, count in zip(vocab.words[2:], vocab.counts[2:]):
        assert flat.count(word) == count >= min_count
