"""The Naive Bayes baseline's cross-validation: counted once, the same as a pipeline fit per fold, for any number of classes."""

import numpy as np
import pytest

from dlflow.models.naive_bayes import build_naive_bayes, cross_validate_naive_bayes, predict_held_out

WORDS = "good bad great awful fine dull witty flat warm cold sharp tired".split()


def sentences_with_fold_only_words(n: int = 240, folds: int = 4, seed: int = 0, classes: int = 2):
    """Noisy two-class sentences in which every fold also has n-grams no other fold has (so a vectorizer
    fit on all sentences would see features, and a smoothing vocabulary, that the held-out model must not)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    fold_of = np.arange(n) % folds
    sentences = []
    for label, fold in zip(labels, fold_of):
        words = list(rng.choice(WORDS[label::classes], 3)) + list(rng.choice(WORDS, 3))
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


def test_three_classes_predict_like_a_pipeline_fit_per_fold_with_a_probability_for_every_class():
    sentences, labels, folds = sentences_with_fold_only_words(n=300, folds=3, classes=3)
    found = predict_held_out(sentences, labels, folds, range(3), alpha=0.5)
    for fold, (rows, predictions, probabilities) in found.items():
        assert rows.tolist() == np.flatnonzero(folds == fold).tolist()
        model = build_naive_bayes(alpha=0.5).fit(sentences[folds != fold], labels[folds != fold])
        np.testing.assert_array_equal(predictions, model.predict(sentences[rows]))
        np.testing.assert_allclose(probabilities, model.predict_proba(sentences[rows]), rtol=1e-9, atol=1e-12)
    accuracy = np.mean([(p == labels[r]).mean() for r, p, _ in found.values()])
    assert 1 / 3 + 0.2 < accuracy < 1.0  # well above chance among three classes, and imperfect


def test_a_class_missing_from_the_training_folds_gets_probability_zero():
    sentences = np.array(["good fine", "bad awful", "good warm", "bad cold", "witty sharp", "good fine warm"], dtype=object)
    labels = np.array([0, 1, 0, 1, 2, 0])
    folds = np.array([0, 0, 1, 1, 1, 2])  # class 2's only sentence is in fold 1
    rows, predictions, probabilities = predict_held_out(sentences, labels, folds, [1], num_classes=3)[1]
    assert probabilities.shape == (3, 3) and not probabilities[:, 2].any()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    assert set(predictions.tolist()) <= {0, 1}  # never the class it was not trained on
