"""The Naive Bayes baseline's cross-validation: counted once, the same as a pipeline fit per fold."""

import numpy as np
import pytest

from dlflow.models.naive_bayes import build_naive_bayes, cross_validate_naive_bayes

WORDS = "good bad great awful fine dull witty flat warm cold sharp tired".split()


def sentences_with_fold_only_words(n: int = 240, folds: int = 4, seed: int = 0):
    """Noisy two-class sentences in which every fold also has n-grams no other fold has (so a vectorizer
    fit on all sentences would see features, and a smoothing vocabulary, that the held-out model must not)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    fold_of = np.arange(n) % folds
    sentences = []
    for label, fold in zip(labels, fold_of):
        words = list(rng.choice(WORDS[label::2], 3)) + list(rng.choice(WORDS, 3))
        words.append(f"only{fold}x{rng.integers(0, 5)}")
        rng.shuffle(words)
        sentences.append(" ".join(words))
    return np.array(sentences, dtype=object), labels, fold_of


@pytest.mark.parametrize("ngram_max", [1, 2])
def test_cross_validation_matches_a_pipeline_fit_per_fold(ngram_max):
    sentences, labels, folds = sentences_with_fold_only_words()
    got = cross_validate_naive_bayes(sentences, labels, folds, range(4), alpha=0.5, ngram_max=ngram_max)
    for fold in range(4):
        train, test = folds != fold, folds == fold
        model = build_naive_bayes(alpha=0.5, ngram_max=ngram_max).fit(sentences[train], labels[train])
        assert got[fold] == float((model.predict(sentences[test]) == labels[test]).mean())
    assert 0.5 < np.mean(list(got.values())) < 1.0  # a real, imperfect classifier on these sentences


def test_cross_validation_runs_only_the_folds_asked_for():
    sentences, labels, folds = sentences_with_fold_only_words()
    assert set(cross_validate_naive_bayes(sentences, labels, folds, [2])) == {2}
