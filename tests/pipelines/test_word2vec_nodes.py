"""The Word2Vec training node on the corpus the text pipeline writes: token ids on disk, read a window at a time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dlflow.io import TokenIdsDataset
from dlflow.pipelines.text.nodes import build_text_corpus, build_vocabulary
from dlflow.pipelines.word2vec.nodes import train_word_vectors
from dlflow.text import Vocabulary

SENTENCES = [f"the {a} cat sat on the {b} mat ." for a in ("black", "white", "grey") for b in ("red", "blue")] * 50
TRAINING = {"mode": "cbow", "dim": 8, "epochs": 2, "threads": 1, "deterministic": True, "seed": 3, "device": "cpu"}


def corpus_stream(sentences: list[str]):
    labelled = pd.DataFrame({"sentence": sentences, "label": 0, "fold": 0})
    return build_text_corpus(labelled, None, None, None, None, ["labelled"], {}, None)


def test_the_node_trains_on_the_token_ids_the_text_pipeline_wrote(tmp_path: Path) -> None:
    dataset = TokenIdsDataset(filepath=str(tmp_path / "corpus"))
    dataset.save(corpus_stream(SENTENCES + ["a hapax sentence"]))  # words seen once fall below min_count 2
    vocabulary = build_vocabulary(dataset.load(), {"min_count": 2})
    vectors, report = train_word_vectors(dataset.load(), vocabulary, TRAINING)

    words = Vocabulary.from_dict(vocabulary).words[2:]
    assert vectors["words"] == list(words) and "hapax" not in words
    assert vectors["vectors"].shape == (len(words), 8) and np.isfinite(vectors["vectors"]).all()
    assert report["corpus_tokens"] == 8 * len(SENTENCES) + 3  # every token read (the period is not one), the dropped ones too
    assert report["vocabulary_size"] == len(words) and report["bit_reproducible"] is True
    assert 0 <= report["compile_seconds"] <= report["startup_seconds"]
    again, _ = train_word_vectors(dataset.load(), vocabulary, TRAINING)
    np.testing.assert_array_equal(again["vectors"], vectors["vectors"])


def test_a_corpus_the_catalog_did_not_store_is_refused_with_the_fix() -> None:
    stream = corpus_stream(SENTENCES)
    vocabulary = build_vocabulary(stream, {"min_count": 1})  # counted on the way: the stream is now used up
    with pytest.raises(TypeError, match=r"TokenIdsDataset \(conf/base/catalog\.yml\)"):
        train_word_vectors(stream, vocabulary, TRAINING)
