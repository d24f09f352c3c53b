"""The bag-of-words baseline: unigram+bigram counts and Multinomial Naive Bayes (scikit-learn)."""

from __future__ import annotations

from sklearn.feature_extraction.text import CountVectorizer
from sklearn.naive_bayes import MultinomialNB
from sklearn.pipeline import Pipeline

from dlflow.text import tokenize


def build_naive_bayes(*, alpha: float = 1.0, ngram_max: int = 2) -> Pipeline:
    """A fresh, unfitted ``CountVectorizer → MultinomialNB`` pipeline using the project's tokeniser."""
    return Pipeline(
        [
            (
                "bag_of_words",
                CountVectorizer(tokenizer=tokenize, lowercase=False, token_pattern=None, ngram_range=(1, ngram_max)),
            ),
            ("naive_bayes", MultinomialNB(alpha=alpha)),
        ]
    )
