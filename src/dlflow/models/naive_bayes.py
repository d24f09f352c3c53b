"""The bag-of-words baseline: unigram+bigram counts and Multinomial Naive Bayes (scikit-learn), any number of classes."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from scipy.special import logsumexp
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.naive_bayes import MultinomialNB
from sklearn.pipeline import Pipeline

from dlflow.text import tokenize


def _bag_of_words(ngram_max: int) -> CountVectorizer:
    return CountVectorizer(tokenizer=tokenize, lowercase=False, token_pattern=None, ngram_range=(1, ngram_max))


def build_naive_bayes(*, alpha: float = 1.0, ngram_max: int = 2) -> Pipeline:
    """A fresh, unfitted ``CountVectorizer → MultinomialNB`` pipeline using the project's tokeniser."""
    return Pipeline([("bag_of_words", _bag_of_words(ngram_max)), ("naive_bayes", MultinomialNB(alpha=alpha))])


def predict_held_out(
    sentences: np.ndarray,
    labels: np.ndarray,
    folds: np.ndarray,
    held_out: Iterable[int],
    *,
    num_classes: int | None = None,
    alpha: float = 1.0,
    ngram_max: int = 2,
) -> dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """For each fold in ``held_out``, ``build_naive_bayes`` trained without it, applied to it:
    ``{fold: (rows, predictions, probabilities)}``, rows in order, ``probabilities`` of shape
    ``(rows, num_classes)`` (default: ``labels.max() + 1``; a class a fold's training rows lack gets 0).

    The same predictions as fitting that pipeline once per fold, at a fraction of the time: the sentences
    are counted once, and each fold's model sees only the n-grams of its own training sentences
    (the columns a vectorizer fit on them would have, in the same order), so nothing of the held-out
    fold leaks into its features or its smoothing.
    """
    labels = np.asarray(labels)
    num_classes = int(labels.max()) + 1 if num_classes is None else num_classes
    counts = _bag_of_words(ngram_max).fit_transform(sentences)  # CSR: rows slice cheaply
    results = {}
    for fold in held_out:
        train = folds != fold
        training_counts = counts[train]
        seen = np.flatnonzero(training_counts.getnnz(axis=0))
        model = MultinomialNB(alpha=alpha).fit(training_counts[:, seen], labels[train])
        rows = np.flatnonzero(~train)
        joint = model.predict_joint_log_proba(counts[rows][:, seen])  # what model.predict takes the argmax of
        predictions = model.classes_[joint.argmax(axis=1)]
        probabilities = np.zeros((len(rows), num_classes))
        probabilities[:, model.classes_] = np.exp(joint - logsumexp(joint, axis=1, keepdims=True))
        results[fold] = (rows, predictions, probabilities)
    return results


def cross_validate_naive_bayes(
    sentences: np.ndarray,
    labels: np.ndarray,
    folds: np.ndarray,
    held_out: Iterable[int],
    *,
    alpha: float = 1.0,
    ngram_max: int = 2,
) -> dict[int, float]:
    """Test accuracy of ``build_naive_bayes`` trained without each fold in ``held_out``, tested on it
    (``predict_held_out``'s predictions)."""
    labels = np.asarray(labels)
    found = predict_held_out(sentences, labels, folds, held_out, alpha=alpha, ngram_max=ngram_max)
    return {fold: float((predictions == labels[rows]).mean()) for fold, (rows, predictions, _) in found.items()}
