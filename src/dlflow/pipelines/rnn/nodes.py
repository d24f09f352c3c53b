"""RNN sentence-classifier nodes: encode MR, cross-validate the RNN and the Naive Bayes baseline, package.

Evaluation follows Kim (2014): 10-fold cross-validation over the MR
sentences (``rnn.evaluation.mode: cv``), or a single seeded split for quick
runs (``split``: only fold ``test_fold`` is held out). Every held-out fold is
predicted by a model that never saw it; the out-of-fold predictions feed the
shared evaluation pipeline, and the model of fold ``test_fold`` is the one
registered.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from dlflow.config import NaiveBayesParams, RnnEvaluationParams, RnnRecipe
from dlflow.text import PAD_ID, Vocabulary
from dlflow.text.sequences import encode_sentences
from dlflow.tracking.records import mlflow_metrics

if TYPE_CHECKING:
    from dlflow.tracking.context import RunContext

logger = logging.getLogger(__name__)

CLASS_NAMES = ["negative", "positive"]


def _folds_to_run(evaluation: RnnEvaluationParams, folds: np.ndarray) -> list[int]:
    available = sorted(set(folds.tolist()))
    if evaluation.test_fold not in available:
        raise ValueError(f"rnn.evaluation.test_fold {evaluation.test_fold} is not a fold: folds are {available}")
    return available if evaluation.mode == "cv" else [evaluation.test_fold]


def list_text_class_names() -> list[str]:
    """The MR labels in index order."""
    return list(CLASS_NAMES)


def encode_polarity(mr_sentences: pd.DataFrame, text_vocabulary: dict, max_length: int) -> dict[str, np.ndarray]:
    """Token ids ``(N, max_length)``, lengths, labels and folds of the MR sentences (``params:rnn.max_length``)."""
    ids, lengths = encode_sentences(mr_sentences["sentence"].tolist(), Vocabulary.from_dict(text_vocabulary), max_length)
    return {
        "ids": ids,
        "lengths": lengths,
        "labels": mr_sentences["label"].to_numpy().astype(np.int64),
        "folds": mr_sentences["fold"].to_numpy().astype(np.int64),
    }


def build_embedding_matrix(word_vectors: dict[str, Any], text_vocabulary: dict, seed: int) -> np.ndarray:
    """Vocabulary-aligned initial embeddings: Word2Vec rows where the word has a vector.

    Words without a vector get uniform(-0.25, 0.25) rows as in Kim (2014);
    ``<pad>`` is zero.
    """
    vocabulary = Vocabulary.from_dict(text_vocabulary)
    vectors = np.asarray(word_vectors["vectors"], dtype=np.float32)
    index = {word: row for row, word in enumerate(word_vectors["words"])}
    rng = np.random.default_rng(seed)  # params:rnn.training.seed
    matrix = rng.uniform(-0.25, 0.25, size=(len(vocabulary), vectors.shape[1])).astype(np.float32)
    found = 0
    for word_id, word in enumerate(vocabulary.words):
        if word in index:
            matrix[word_id] = vectors[index[word]]
            found += 1
    matrix[PAD_ID] = 0.0
    logger.info("Embeddings: %d of %d vocabulary words have a Word2Vec vector", found, len(vocabulary))
    return matrix


def cross_validate_rnn(
    encoded: dict[str, np.ndarray],
    embeddings: np.ndarray,
    model: dict[str, Any],
    adversarial: dict[str, Any],
    evaluation: dict[str, Any],
    training: dict[str, Any],
    checkpoints: str,
    run_context: RunContext,
) -> tuple[Any, list[dict], pd.DataFrame, dict, dict]:
    """Train one RNN per held-out fold with the shared training loop (``dlflow.training.rnn.cross_validate``),
    the folds side by side in worker processes, each logging its epochs to this run live.

    Returns the model of ``test_fold``, its per-epoch history, the out-of-fold
    predictions, MLflow metrics (``cv_accuracy_mean``/``_std`` and per fold) and a JSON report.
    """
    from dlflow.training import TrainConfig
    from dlflow.training.rnn import cross_validate

    rnn = RnnRecipe.model_validate({"model": model, "adversarial": adversarial, "evaluation": evaluation, "training": training})
    config = TrainConfig(**rnn.training.model_dump() | {"checkpoint_dir": run_context.checkpoint_dir(checkpoints)})
    to_run = _folds_to_run(rnn.evaluation, encoded["folds"])
    outcomes = cross_validate(
        encoded, embeddings, rnn, to_run, config, len(CLASS_NAMES), run_context.run_id, run_context.tracking_uri
    )
    accuracies = {outcome.fold: outcome.accuracy for outcome in outcomes}
    chosen = next(outcome for outcome in outcomes if outcome.fold == rnn.evaluation.test_fold)
    report = {"mode": rnn.evaluation.mode} | _fold_summary(accuracies)
    metrics = {"cv_accuracy_mean": report["accuracy_mean"], "cv_accuracy_std": report["accuracy_std"]}
    metrics |= {f"cv_fold{k}_accuracy": v for k, v in accuracies.items()}
    oof = pd.concat([outcome.predictions for outcome in outcomes]).sort_values("row").reset_index(drop=True)
    return chosen.model.cpu().eval(), chosen.history, oof, mlflow_metrics(metrics), report


def _fold_summary(accuracies: dict[int, float]) -> dict[str, Any]:
    values = np.array(list(accuracies.values()))
    return {
        "fold_accuracy": {str(k): v for k, v in accuracies.items()},
        "accuracy_mean": float(values.mean()),
        "accuracy_std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
    }


def cross_validate_naive_bayes(
    mr_sentences: pd.DataFrame, baseline: dict[str, Any], evaluation: dict[str, Any]
) -> tuple[dict, dict]:
    """The bag-of-words Naive Bayes baseline on exactly the RNN's folds (``params:rnn.baseline``, ``params:rnn.evaluation``)."""
    from dlflow.models import naive_bayes

    baseline, evaluation = NaiveBayesParams.model_validate(baseline), RnnEvaluationParams.model_validate(evaluation)
    folds = mr_sentences["fold"].to_numpy()
    accuracies = naive_bayes.cross_validate_naive_bayes(
        mr_sentences["sentence"].to_numpy(),
        mr_sentences["label"].to_numpy(),
        folds,
        _folds_to_run(evaluation, folds),
        alpha=baseline.alpha,
        ngram_max=baseline.ngram_max,
    )
    report = {"model": f"MultinomialNB(alpha={baseline.alpha}) on 1..{baseline.ngram_max}-grams"} | _fold_summary(accuracies)
    logger.info("Naive Bayes baseline: accuracy %.4f ± %.4f", report["accuracy_mean"], report["accuracy_std"])
    metrics = {"baseline_nb_cv_accuracy_mean": report["accuracy_mean"], "baseline_nb_cv_accuracy_std": report["accuracy_std"]}
    return mlflow_metrics(metrics), report


def package_rnn(
    model: Any, text_vocabulary: dict, mr_sentences: pd.DataFrame, predictions: pd.DataFrame, max_length: int
) -> dict[str, Any]:
    """The servable model (raw sentences in, label and probability out), an example and the test digest."""
    from dlflow.serving.packaging import sentence_classifier_package

    return sentence_classifier_package(model, text_vocabulary, mr_sentences, predictions, CLASS_NAMES, max_length)
