"""RNN sentence-classifier nodes: encode the labelled sentences, cross-validate the RNN and the Naive Bayes
baseline, package. Any number of classes: the class names are the data's (``labelled_sentences``).

Evaluation follows Kim (2014): 10-fold cross-validation over the sentences
(``rnn.evaluation.mode: cv``), or a single seeded split (``split``: only fold
``test_fold`` is held out); ``null`` chooses by data size (``cv`` up to
``rnn.evaluation.cv_max_sentences``). Every held-out fold is predicted by a model
that never saw it; the out-of-fold predictions feed the shared evaluation
pipeline, and the model of fold ``test_fold`` is the one registered.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from dlflow.config import NaiveBayesParams, RnnEvaluationParams, RnnRecipe
from dlflow.sources.feedback import FEEDBACK_FOLD, feedback_sentences
from dlflow.sources.labelled_text import class_names_of
from dlflow.text import PAD_ID, Vocabulary
from dlflow.text.sequences import encode_sentences
from dlflow.tracking.context import RunContext  # at run time: Kedro reads the nodes' type hints
from dlflow.tracking.records import mlflow_metrics

logger = logging.getLogger(__name__)


def _folds_to_run(evaluation: RnnEvaluationParams, folds: np.ndarray) -> tuple[str, list[int]]:
    """The evaluation mode for these sentences (``rnn.evaluation.mode``, or by their number) and its folds
    (never ``FEEDBACK_FOLD``: feedback sentences are training-only)."""
    available = sorted(set(folds.tolist()) - {FEEDBACK_FOLD})
    if evaluation.test_fold not in available:
        raise ValueError(f"rnn.evaluation.test_fold {evaluation.test_fold} is not a fold: folds are {available}")
    mode = evaluation.resolved_mode(int((folds != FEEDBACK_FOLD).sum()))
    return mode, available if mode == "cv" else [evaluation.test_fold]


def _mode_report(evaluation: RnnEvaluationParams, mode: str, sentences: int) -> dict[str, Any]:
    if evaluation.mode is not None:
        return {"mode": mode, "mode_chosen_by": "rnn.evaluation.mode"}
    limit = evaluation.cv_max_sentences
    reason = f"{sentences} sentences {'<=' if mode == 'cv' else '>'} rnn.evaluation.cv_max_sentences ({limit})"
    return {"mode": mode, "mode_chosen_by": reason}


def list_text_class_names(labelled_sentences: pd.DataFrame) -> list[str]:
    """The class names of the labelled sentences, in label order (MR: ``negative``, ``positive``)."""
    return class_names_of(labelled_sentences)


def encode_labelled_sentences(labelled_sentences: pd.DataFrame, text_vocabulary: dict, max_length: int) -> dict[str, np.ndarray]:
    """Token ids ``(N, max_length)``, lengths, labels and folds of the labelled sentences (``params:rnn.max_length``)."""
    vocabulary = Vocabulary.from_dict(text_vocabulary)
    ids, lengths = encode_sentences(labelled_sentences["sentence"].tolist(), vocabulary, max_length)
    return {
        "ids": ids,
        "lengths": lengths,
        "labels": labelled_sentences["label"].to_numpy().astype(np.int64),
        "folds": labelled_sentences["fold"].to_numpy().astype(np.int64),
    }


def add_feedback_sentences(
    encoded: dict[str, np.ndarray],
    feedback: dict[str, pd.DataFrame],
    class_names: list[str],
    text_vocabulary: dict,
    max_length: int,
    text_column: str,
    use_feedback: bool,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The encoded sentences with the feedback tables' labelled sentences appended as training-only rows
    (``rnn_feedback``; fold ``FEEDBACK_FOLD``, never held out, validated or profiled: the evaluation, the
    gate and the reference profile see the same sentences as before), and MLflow metrics ``feedback_files`` /
    ``feedback_records``. The text is in ``text_column`` (``params:inference.rnn.text_column``, as scored);
    ``params:rnn.feedback`` false: the sentences alone. A label that is not a class is refused, naming the file.
    """
    tables = feedback if use_feedback else {}
    extra = feedback_sentences(tables, class_names, text_column)
    metrics = mlflow_metrics({"feedback_files": len(tables), "feedback_records": len(extra)})
    if feedback and not use_feedback:
        logger.info("Feedback: %d file(s) kept, not used (rnn.feedback: false)", len(feedback))
    if not len(extra):
        return encoded, metrics
    ids, lengths = encode_sentences(extra["sentence"].tolist(), Vocabulary.from_dict(text_vocabulary), max_length)
    logger.info(
        "Training on %d sentences plus %d feedback sentences from %d file(s)", len(encoded["labels"]), len(extra), len(tables)
    )
    added = {"ids": ids, "lengths": lengths, "labels": extra["label"].to_numpy(), "folds": extra["fold"].to_numpy()}
    return {key: np.concatenate([encoded[key], added[key].astype(encoded[key].dtype)]) for key in encoded}, metrics


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
    class_names: list[str],
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
    predictions, MLflow metrics (``cv_accuracy_mean``/``_std`` and per fold) and a JSON report
    (with the evaluation mode and what chose it).
    """
    from dlflow.training import TrainConfig
    from dlflow.training.rnn import cross_validate

    rnn = RnnRecipe.model_validate({"model": model, "adversarial": adversarial, "evaluation": evaluation, "training": training})
    config = TrainConfig(**rnn.training.model_dump() | {"checkpoint_dir": run_context.checkpoint_dir(checkpoints)})
    mode, to_run = _folds_to_run(rnn.evaluation, encoded["folds"])
    chosen_mode = _mode_report(rnn.evaluation, mode, int((encoded["folds"] != FEEDBACK_FOLD).sum()))
    logger.info("RNN evaluation: %s (%s)", mode, chosen_mode["mode_chosen_by"])
    outcomes = cross_validate(
        encoded, embeddings, rnn, to_run, config, len(class_names), run_context.run_id, run_context.tracking_uri
    )
    accuracies = {outcome.fold: outcome.accuracy for outcome in outcomes}
    chosen = next(outcome for outcome in outcomes if outcome.fold == rnn.evaluation.test_fold)
    report = chosen_mode | _fold_summary(accuracies)
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
    labelled_sentences: pd.DataFrame, class_names: list[str], baseline: dict[str, Any], evaluation: dict[str, Any]
) -> tuple[dict, dict, pd.DataFrame]:
    """The bag-of-words Naive Bayes baseline on exactly the RNN's folds (``params:rnn.baseline``, ``params:rnn.evaluation``).

    Returns MLflow metrics (accuracy mean/std over the folds, macro-F1 of the out-of-fold predictions), a
    JSON report (per fold, and per class as the shared evaluation reports the RNN) and the out-of-fold
    predictions in the RNN's table layout (``row``, ``fold``, ``label``, ``prediction``, ``probabilities``),
    for side-by-side comparisons on the same sentences.
    """
    from dlflow.evaluation.metrics import classification_metrics
    from dlflow.models import naive_bayes

    baseline, evaluation = NaiveBayesParams.model_validate(baseline), RnnEvaluationParams.model_validate(evaluation)
    folds, labels = labelled_sentences["fold"].to_numpy(), labelled_sentences["label"].to_numpy()
    mode, to_run = _folds_to_run(evaluation, folds)
    found = naive_bayes.predict_held_out(
        labelled_sentences["sentence"].to_numpy(),
        labels,
        folds,
        to_run,
        num_classes=len(class_names),
        alpha=baseline.alpha,
        ngram_max=baseline.ngram_max,
    )
    predictions = prediction_table(
        {fold: (rows, labels[rows], predicted, probabilities) for fold, (rows, predicted, probabilities) in found.items()}
    )
    accuracies = {int(fold): float((part["prediction"] == part["label"]).mean()) for fold, part in predictions.groupby("fold")}
    scores = classification_metrics(predictions["label"], predictions["prediction"], class_names)
    report = (
        {"model": f"MultinomialNB(alpha={baseline.alpha}) on 1..{baseline.ngram_max}-grams"}
        | _mode_report(evaluation, mode, len(folds))
        | _fold_summary(accuracies)
        | {"out_of_fold": scores}
    )
    logger.info(
        "Naive Bayes baseline: accuracy %.4f ± %.4f, macro-F1 %.4f",
        report["accuracy_mean"],
        report["accuracy_std"],
        scores["macro_f1"],
    )
    metrics = {
        "baseline_nb_cv_accuracy_mean": report["accuracy_mean"],
        "baseline_nb_cv_accuracy_std": report["accuracy_std"],
        "baseline_nb_macro_f1": scores["macro_f1"],
    }
    return mlflow_metrics(metrics), report, predictions


def prediction_table(folds: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]) -> pd.DataFrame:
    """``{fold: (rows, labels, predictions, probabilities)}`` as one table in row order, laid out as
    ``dlflow.training.rnn.predict_fold``'s: ``row``, ``fold``, ``label``, ``prediction``, ``probabilities``."""
    from dlflow.training.rnn import class_index_dtype

    parts = []
    for fold, (rows, labels, predictions, probabilities) in folds.items():
        dtype = class_index_dtype(probabilities.shape[1])
        parts.append(
            pd.DataFrame(
                {
                    "row": rows,
                    "fold": fold,
                    "label": labels.astype(dtype),
                    "prediction": predictions.astype(dtype),
                    "probabilities": list(probabilities.astype(np.float32)),
                }
            )
        )
    return pd.concat(parts).sort_values("row").reset_index(drop=True)


def package_rnn(
    model: Any,
    text_vocabulary: dict,
    labelled_sentences: pd.DataFrame,
    predictions: pd.DataFrame,
    class_names: list[str],
    max_length: int,
) -> dict[str, Any]:
    """The servable model (raw sentences in, the class name and every class's probability out), an example
    and the test digest."""
    from dlflow.serving.packaging import sentence_classifier_package

    return sentence_classifier_package(model, text_vocabulary, labelled_sentences, predictions, class_names, max_length)
