"""Shared text preprocessing for Word2Vec and the RNN: MR folds, the corpus, one vocabulary.

Tables:

``mr_sentences``   ``sentence`` (str), ``label`` (int8, 1 = positive), ``fold`` (int8, stratified)
``text_corpus``    ``tokens`` (list<str>), one row per sentence of the Word2Vec corpus
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pandas as pd

from dlflow.config import TextParams, parse
from dlflow.sources.text import assign_folds
from dlflow.text import Vocabulary, tokenize

logger = logging.getLogger(__name__)


def prepare_polarity(polarity: pd.DataFrame, folds: int, fold_seed: int) -> pd.DataFrame:
    """MR sentences with a seeded, label-stratified cross-validation fold per sentence
    (``params:text.folds``, ``params:text.fold_seed``)."""
    text: TextParams = parse("text", {"folds": folds, "fold_seed": fold_seed})
    return assign_folds(polarity, n_folds=text.folds, seed=text.fold_seed).reset_index(drop=True)


def build_text_corpus(
    mr_sentences: pd.DataFrame,
    subjectivity: Callable[[], list[str]],
    movie_reviews: Callable[[], list[str]],
    brown: Callable[[], list[str]],
    user: Callable[[], list[str]],
    corpora: list[str],
    corpus_repeats: dict[str, int],
    max_corpus_sentences: int | None,
) -> pd.DataFrame:
    """The Word2Vec corpus: the sources named in ``text.corpora`` (each repeated
    ``text.corpus_repeats`` times, at most ``text.max_corpus_sentences`` sentences),
    read and tokenised with the one tokeniser."""
    text: TextParams = parse(
        "text", {"corpora": corpora, "corpus_repeats": corpus_repeats, "max_corpus_sentences": max_corpus_sentences}
    )
    sources = {
        "mr": lambda: mr_sentences["sentence"].tolist(),
        "subjectivity": subjectivity,
        "movie_reviews": movie_reviews,
        "brown": brown,
        "user": user,
    }
    sentences = [sentence for name in text.corpora for sentence in sources[name]() * text.corpus_repeats.get(name, 1)]
    if text.max_corpus_sentences is not None:
        sentences = sentences[: text.max_corpus_sentences]
    tokens = [t for t in (tokenize(s) for s in sentences) if t]
    logger.info("Word2Vec corpus: %d sentences, %d tokens from %s", len(tokens), sum(map(len, tokens)), text.corpora)
    return pd.DataFrame({"tokens": tokens})


def build_vocabulary(text_corpus: pd.DataFrame, vocabulary: dict[str, Any]) -> dict[str, Any]:
    """The shared vocabulary (``<pad>``=0, ``<unk>``=1, then by descending count), as JSON (``params:text.vocabulary``)."""
    vocabulary = parse("text", {"vocabulary": vocabulary}).vocabulary
    built = Vocabulary.build(text_corpus["tokens"], min_count=vocabulary.min_count, max_size=vocabulary.max_size)
    logger.info("Vocabulary: %d entries (min_count=%d)", len(built), vocabulary.min_count)
    return built.to_dict()
