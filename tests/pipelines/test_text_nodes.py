"""Text pipeline nodes on small real-format inputs."""

from __future__ import annotations

import zipfile

import pandas as pd
import pytest

from dlflow.io import TextCorpusDataset
from dlflow.pipelines.text.nodes import build_text_corpus, build_vocabulary
from dlflow.text import Vocabulary

VOCABULARY = {"min_count": 1}


def corpus_of(mr, subjectivity, movie_reviews, brown, user, corpora, corpus_repeats=None):
    """``build_text_corpus`` with what ``params:text.corpora`` / ``corpus_repeats`` / ``max_corpus_sentences`` give it."""
    return build_text_corpus(mr, subjectivity, movie_reviews, brown, user, corpora, corpus_repeats or {}, None)


def never_read():
    raise AssertionError("a corpus that text.corpora does not name was read")


def test_user_corpus_is_read_lazily_and_only_when_chosen(tmp_path):
    archive = tmp_path / "mine.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("a.txt", "The cat sat .\nThe dog ran !\n")
        zf.writestr("b.txt", "A cat and a dog .\n")
    user = TextCorpusDataset(filepath=str(archive), lazy=True).load()
    assert callable(user)
    mr = pd.DataFrame({"sentence": ["never used"], "label": [1], "fold": [0]})

    corpus = corpus_of(mr, never_read, never_read, never_read, user, ["user"])
    assert corpus["tokens"].tolist() == [["the", "cat", "sat"], ["the", "dog", "ran", "!"], ["a", "cat", "and", "a", "dog"]]

    vocabulary = Vocabulary.from_dict(build_vocabulary(corpus, VOCABULARY))
    assert vocabulary.words[:4] == ("<pad>", "<unk>", "a", "cat")  # by count, ties alphabetical


def test_unknown_corpus_name_is_rejected_before_reading():
    with pytest.raises(ValueError, match=r"text\.corpora"):
        corpus_of(pd.DataFrame(), never_read, never_read, never_read, never_read, ["wikipedia"])


def test_corpus_repeats_weigh_in_domain_text_and_reject_zero():
    mr = pd.DataFrame({"sentence": ["A fine film ."], "label": [1], "fold": [0]})
    subjectivity = lambda: ["The plot thickens ."]  # noqa: E731
    corpus = corpus_of(mr, subjectivity, never_read, never_read, never_read, ["mr", "subjectivity"], {"mr": 3})
    assert corpus["tokens"].map(" ".join).tolist().count("a fine film") == 3
    assert corpus["tokens"].map(" ".join).tolist().count("the plot thickens") == 1

    with pytest.raises(ValueError, match="corpus_repeats"):
        corpus_of(mr, subjectivity, never_read, never_read, never_read, ["mr", "subjectivity"], {"mr": 0})
