"""Shared text preprocessing for Word2Vec and the RNN: labelled sentences with folds, the corpus, one vocabulary.

Tables:

``labelled_sentences``  ``sentence`` (str), ``label`` (int8 class index), ``class_name`` (str),
                        ``fold`` (int8, stratified): MR's or a user's table, the same schema
``text_corpus``         the tokenised Word2Vec corpus as token ids on disk (``dlflow.text.token_ids``):
                        written in one streaming pass that also counts the tokens, so a corpus
                        of any size goes through in constant memory
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import Any

import pandas as pd

from dlflow.config import TextParams, parse
from dlflow.sources.errors import DataValidationError
from dlflow.sources.labelled_text import class_counts
from dlflow.sources.text import assign_folds
from dlflow.text import TokenIds, TokenStream, Vocabulary

logger = logging.getLogger(__name__)

#: Examples a class needs besides one per fold: with its own fold held out, training keeps at least two of
#: them, since the RNN's validation slice of the training folds is stratified (dlflow.training.rnn).
MIN_CLASS_EXAMPLES = 4


def prepare_labelled_sentences(labelled_text: pd.DataFrame, folds: int, fold_seed: int) -> pd.DataFrame:
    """The labelled sentences with a seeded, label-stratified cross-validation fold each
    (``params:text.folds``, ``params:text.fold_seed``).

    Refuses a class with fewer examples than the folds need: one in every fold, and at least
    ``MIN_CLASS_EXAMPLES`` (the message names the class, its count and the fixes).
    """
    text: TextParams = parse("text", {"folds": folds, "fold_seed": fold_seed})
    counts = class_counts(labelled_text)
    needed = max(text.folds, MIN_CLASS_EXAMPLES)
    short = {name: count for name, count in counts.items() if count < needed}
    if short:
        several = len(short) > 1
        listed = ", ".join(f"{name!r} has {count}" for name, count in sorted(short.items(), key=lambda item: item[1]))
        fewer = min(short.values())
        folds_fix = f", or use fewer folds (--params text.folds={fewer})" if fewer >= MIN_CLASS_EXAMPLES else ""
        raise DataValidationError(
            f"{labelled_text.attrs.get('source', 'The labelled text')}: too few examples of {len(short)} "
            f"class{'es' if several else ''} for {text.folds} stratified folds: {listed}; each class needs at "
            f"least {needed} (one in every fold, and at least {MIN_CLASS_EXAMPLES} in all). Add examples of "
            f"{'them' if several else 'it'}, drop {'those classes' if several else 'that class'} from the file{folds_fix}."
        )
    logger.info("Labelled sentences: %d in %d classes %s; %d folds", len(labelled_text), len(counts), counts, text.folds)
    prepared = assign_folds(labelled_text, n_folds=text.folds, seed=text.fold_seed).reset_index(drop=True)
    prepared.attrs = {}  # where the rows came from is the raw data set's business, not the table's
    return prepared


def build_text_corpus(
    labelled_sentences: pd.DataFrame,
    subjectivity: Callable[[], Iterable[str]],
    movie_reviews: Callable[[], Iterable[str]],
    brown: Callable[[], Iterable[str]],
    user: Callable[[], Iterable[str]],
    corpora: list[str],
    corpus_repeats: dict[str, int],
    max_corpus_sentences: int | None,
) -> TokenStream:
    """The Word2Vec corpus: the sources named in ``text.corpora`` (each repeated
    ``text.corpus_repeats`` times, at most ``text.max_corpus_sentences`` sentences),
    tokenised with the one tokeniser. ``labelled`` is the labelled sentences,
    whatever their source (MR's, or the user's table).

    Returns a ``TokenStream``: nothing is read here. Saving ``text_corpus`` runs the one
    pass (read, tokenise, count, write token ids), a sentence at a time, so the corpus
    may be larger than memory; a repeated source is read again, not held.
    """
    text: TextParams = parse(
        "text", {"corpora": corpora, "corpus_repeats": corpus_repeats, "max_corpus_sentences": max_corpus_sentences}
    )
    sources = {
        "labelled": lambda: iter(labelled_sentences["sentence"].tolist()),
        "subjectivity": subjectivity,
        "movie_reviews": movie_reviews,
        "brown": brown,
        "user": user,
    }

    def sentences() -> Iterator[str]:
        for name in text.corpora:
            for _ in range(text.corpus_repeats.get(name, 1)):
                yield from sources[name]()

    stream = sentences() if text.max_corpus_sentences is None else islice(sentences(), text.max_corpus_sentences)
    return TokenStream(stream, description=f"Word2Vec corpus from {', '.join(text.corpora)}")


def build_vocabulary(text_corpus: TokenIds | TokenStream, vocabulary: dict[str, Any]) -> dict[str, Any]:
    """The shared vocabulary (``<pad>``=0, ``<unk>``=1, then by descending count), as JSON (``params:text.vocabulary``).

    Chosen from the counts of the corpus' pass: this node reads the counts, never the tokens.
    """
    vocabulary = parse("text", {"vocabulary": vocabulary}).vocabulary
    words, counts = text_corpus.type_counts()
    built = Vocabulary.from_counts(words, counts, min_count=vocabulary.min_count, max_size=vocabulary.max_size)
    logger.info(
        "Vocabulary: %d entries (min_count=%d) of the corpus' %d distinct tokens", len(built), vocabulary.min_count, len(words)
    )
    return built.to_dict()
