"""RNN sentence-classifier nodes: encode MR, cross-validate the RNN and the Naive Bayes baseline, package.

Evaluation follows Kim (2014): 10-fold cross-validation over the MR
sentences (``rnn.evaluation.mode: cv``), or a single seeded split for quick
runs (``split``: only fold ``test_fold`` is held out). Every held-out fold is
predicted by a model that never saw it; the out-of-fold predictions feed the
shared evaluation pipeline, and the model of fold ``test_fold`` is the one
registered.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from dlflow.config import RnnParams, parse
from dlflow.text import PAD_ID, Vocabulary
from dlflow.text.sequences import encode_sentences
from dlflow.tracking.lineage import table_digest
from dlflow.tracking.records import mlflow_metrics

if TYPE_CHECKING:
    from dlflow.models.rnn import SentenceRNN
    from dlflow.training import TensorDataset

logger = logging.getLogger(__name__)

CLASS_NAMES = ["negative", "positive"]


def _folds_to_run(rnn: RnnParams, folds: np.ndarray) -> list[int]:
    available = sorted(set(folds.tolist()))
    if rnn.evaluation.test_fold not in available:
        raise ValueError(f"rnn.evaluation.test_fold {rnn.evaluation.test_fold} is not a fold: folds are {available}")
    return available if rnn.evaluation.mode == "cv" else [rnn.evaluation.test_fold]


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


def _split(encoded: dict[str, np.ndarray], rows: np.ndarray, lookup: Any = None) -> TensorDataset:
    """The sentences ``rows`` as a dataset; ``lookup`` maps their token ids into a compact vocabulary."""
    import torch

    from dlflow.training import TensorDataset

    ids = torch.from_numpy(encoded["ids"][rows])
    return TensorDataset(
        features=(ids if lookup is None else lookup[ids], torch.from_numpy(encoded["lengths"][rows])),
        targets=torch.from_numpy(encoded["labels"][rows]),
    )


def _build_rnn(rnn: RnnParams, embeddings: np.ndarray) -> SentenceRNN:
    import torch

    from dlflow.models.rnn import SentenceRNN

    return SentenceRNN(
        embeddings.shape[0],
        embeddings.shape[1],
        num_classes=len(CLASS_NAMES),
        pretrained=torch.from_numpy(embeddings),
        **rnn.model.model_dump(),
    )


def cross_validate_rnn(
    encoded: dict[str, np.ndarray], embeddings: np.ndarray, params: dict[str, Any]
) -> tuple[Any, list[dict], pd.DataFrame, dict, dict]:
    """Train one RNN per held-out fold with the shared training loop.

    The folds train side by side in worker processes (``rnn.evaluation.workers``,
    ``training.parallel``; ``None``: one per core), each logging its epochs to
    this MLflow run live. Every fold seeds itself, so the results do not depend
    on the number of workers.

    Returns the model of ``test_fold``, its per-epoch history, the out-of-fold
    predictions, MLflow metrics (``cv_accuracy_mean``/``_std`` and per fold) and a JSON report.
    """
    import mlflow

    from dlflow.tracking.resume import run_checkpoint_dir
    from dlflow.training import TrainConfig
    from dlflow.training.parallel import plan_workers, worker_pool

    rnn: RnnParams = parse("rnn", params)
    folds = encoded["folds"]
    to_run = _folds_to_run(rnn, folds)
    config = TrainConfig(**rnn.training.model_dump() | {"checkpoint_dir": run_checkpoint_dir(rnn.training.checkpoint_dir)})
    workers, threads = plan_workers(rnn.evaluation.workers, len(to_run), rnn.training.num_threads)
    if config.processes > 1:
        workers = 1  # each fold already trains data-parallel
    run = mlflow.active_run()
    if run is None:
        logger.warning("No active MLflow run: the folds' epoch metrics are not logged")
    jobs = [_FoldJob(rnn, fold, config, None if run is None else run.info.run_id) for fold in to_run]
    if workers == 1:
        outcomes = []
        for job in jobs:
            outcomes.append(job.run(encoded, embeddings))
            logger.info("Fold %d: test accuracy %.4f", job.fold, outcomes[-1].accuracy)
    else:
        jobs = [
            dataclasses.replace(job, config=config.model_copy(update={"progress": False, "num_threads": threads})) for job in jobs
        ]
        inputs = {"encoded": encoded, "embeddings": embeddings, "tracking_uri": mlflow.get_tracking_uri()}
        with worker_pool(workers, threads, _receive_fold_inputs, inputs) as run_jobs:
            outcomes = []
            for outcome in run_jobs(_run_fold_job, jobs):
                logger.info(
                    "Fold %d: test accuracy %.4f (%d of %d folds done)",
                    outcome.fold,
                    outcome.accuracy,
                    len(outcomes) + 1,
                    len(jobs),
                )
                outcomes.append(outcome)
    outcomes.sort(key=lambda outcome: outcome.fold)
    accuracies = {outcome.fold: outcome.accuracy for outcome in outcomes}
    chosen = next(outcome for outcome in outcomes if outcome.fold == rnn.evaluation.test_fold)
    values = np.array(list(accuracies.values()))
    report = {
        "mode": rnn.evaluation.mode,
        "fold_accuracy": {str(k): v for k, v in accuracies.items()},
        "accuracy_mean": float(values.mean()),
        "accuracy_std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
    }
    metrics = {"cv_accuracy_mean": report["accuracy_mean"], "cv_accuracy_std": report["accuracy_std"]}
    metrics |= {f"cv_fold{k}_accuracy": v for k, v in accuracies.items()}
    oof = pd.concat([outcome.predictions for outcome in outcomes]).sort_values("row").reset_index(drop=True)
    return chosen.model.cpu().eval(), chosen.history, oof, mlflow_metrics(metrics), report


@dataclasses.dataclass(frozen=True)
class _FoldOutcome:
    fold: int
    accuracy: float
    predictions: pd.DataFrame
    model: Any  # the test fold's only
    history: list[dict]


@dataclasses.dataclass(frozen=True)
class _FoldJob:
    """One fold of ``cross_validate_rnn``: train with it held out, predict it (in this process or a worker)."""

    rnn: RnnParams
    fold: int
    config: Any
    run_id: str | None  # the MLflow run its epochs are logged to

    def run(self, encoded: dict[str, np.ndarray], embeddings: np.ndarray) -> _FoldOutcome:
        from dlflow.training import MlflowEpochLogger, predict

        is_test_fold = self.fold == self.rnn.evaluation.test_fold
        prefix = "" if is_test_fold else f"fold{self.fold}_"
        callbacks = [] if self.run_id is None else [MlflowEpochLogger(prefix, samples="sentences", run_id=self.run_id)]
        result = fit_rnn_fold(encoded, embeddings, self.rnn, self.fold, self.config, callbacks)
        test_rows = np.flatnonzero(encoded["folds"] == self.fold)
        test = _split(encoded, test_rows)
        probabilities = predict(result.model, test.features, batch_size=self.config.eval_batch_size, device="cpu").numpy()
        accuracy = float((probabilities.argmax(1) == test.targets.numpy()).mean())
        predictions = pd.DataFrame(
            {
                "row": test_rows,
                "fold": self.fold,
                "label": test.targets.numpy().astype(np.uint8),
                "prediction": probabilities.argmax(1).astype(np.uint8),
                "probabilities": list(probabilities.astype(np.float32)),
            }
        )
        model, history = (result.model.cpu(), [vars(r) for r in result.history]) if is_test_fold else (None, [])
        return _FoldOutcome(self.fold, accuracy, predictions, model, history)


_worker_inputs: dict[str, Any] = {}  # a fold worker's copy of the encoded sentences and embeddings


def _receive_fold_inputs(inputs: dict[str, Any]) -> None:
    import mlflow

    _worker_inputs.update(inputs)
    mlflow.set_tracking_uri(inputs["tracking_uri"])


def _run_fold_job(job: _FoldJob) -> _FoldOutcome:
    import multiprocessing

    multiprocessing.current_process().name = f"fold {job.fold}"  # names the worker's log lines
    return job.run(_worker_inputs["encoded"], _worker_inputs["embeddings"])


def fit_rnn_fold(
    encoded: dict[str, np.ndarray], embeddings: np.ndarray, rnn: RnnParams, fold: int, config: Any, callbacks: list[Any]
) -> Any:
    """Train one RNN with fold ``fold`` held out: a seeded, stratified validation slice of the other folds
    (``rnn.evaluation.validation_fraction``) is validated each epoch. Returns the loop's ``FitResult``,
    its model over the full vocabulary.

    The network trains on the embedding rows of the training folds' words only
    (``models.rnn.compact_vocabulary``): the same training, as dense Adam never
    moves a row without gradient, at about twice the speed. With
    ``rnn.adversarial.epsilon`` > 0 each batch also trains on adversarially
    perturbed word vectors (``training.adversarial``).

    ``cross_validate_rnn`` calls it per fold; tuning trials call it for ``test_fold``.
    """
    import torch
    from sklearn.model_selection import train_test_split

    from dlflow.models.rnn import compact_vocabulary, expand_vocabulary
    from dlflow.training import fit, seed_everything
    from dlflow.training.adversarial import EmbeddingAdversarialLoss

    folds = encoded["folds"]
    train_rows, val_rows = train_test_split(
        np.flatnonzero(folds != fold),
        test_size=rnn.evaluation.validation_fraction,
        stratify=encoded["labels"][folds != fold],
        random_state=rnn.training.seed,
    )
    # Train on the embedding rows these sentences use, then put the model back on the full vocabulary.
    full_initial = _initial_embeddings(rnn, embeddings)
    rows, lookup = compact_vocabulary(torch.from_numpy(encoded["ids"][folds != fold]), len(embeddings))
    seed_everything(rnn.training.seed, rnn.training.deterministic)
    result = fit(
        _build_rnn(rnn, embeddings[rows.numpy()]),
        _split(encoded, np.sort(train_rows), lookup),
        _split(encoded, np.sort(val_rows), lookup),
        config,
        callbacks=callbacks,
        training_loss=(
            EmbeddingAdversarialLoss(rnn.adversarial.epsilon, rnn.training.label_smoothing)
            if rnn.adversarial.epsilon > 0
            else None
        ),
    )
    return dataclasses.replace(result, model=expand_vocabulary(result.model, rows, full_initial))


def _initial_embeddings(rnn: RnnParams, embeddings: np.ndarray) -> Any:
    """The full embedding matrix a model starts from: the pre-trained vectors, or (``rand``) a seeded
    normal draw like ``nn.Embedding``'s own, so words unseen in training are not given Word2Vec vectors."""
    import torch

    if rnn.model.embedding_mode != "rand":
        return torch.from_numpy(embeddings)
    generator = torch.Generator().manual_seed(rnn.training.seed)
    initial = torch.randn(embeddings.shape, generator=generator)
    initial[PAD_ID] = 0.0
    return initial


def cross_validate_naive_bayes(mr_sentences: pd.DataFrame, params: dict[str, Any]) -> tuple[dict, dict]:
    """The bag-of-words Naive Bayes baseline on exactly the RNN's folds."""
    from dlflow.models import naive_bayes

    rnn: RnnParams = parse("rnn", params)
    folds = mr_sentences["fold"].to_numpy()
    accuracies = naive_bayes.cross_validate_naive_bayes(
        mr_sentences["sentence"].to_numpy(),
        mr_sentences["label"].to_numpy(),
        folds,
        _folds_to_run(rnn, folds),
        alpha=rnn.baseline.alpha,
        ngram_max=rnn.baseline.ngram_max,
    )
    values = np.array(list(accuracies.values()))
    report = {
        "model": f"MultinomialNB(alpha={rnn.baseline.alpha}) on 1..{rnn.baseline.ngram_max}-grams",
        "fold_accuracy": {str(k): v for k, v in accuracies.items()},
        "accuracy_mean": float(values.mean()),
        "accuracy_std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
    }
    logger.info("Naive Bayes baseline: accuracy %.4f ± %.4f", report["accuracy_mean"], report["accuracy_std"])
    metrics = {"baseline_nb_cv_accuracy_mean": report["accuracy_mean"], "baseline_nb_cv_accuracy_std": report["accuracy_std"]}
    return mlflow_metrics(metrics), report


def package_rnn(
    model: Any, text_vocabulary: dict, mr_sentences: pd.DataFrame, predictions: pd.DataFrame, max_length: int
) -> dict[str, Any]:
    """The servable model (raw sentences in, label and probability out), an example and the test digest."""
    from dlflow.serving.sentence_classifier import SentenceClassifierModel

    servable = SentenceClassifierModel(model, Vocabulary.from_dict(text_vocabulary), CLASS_NAMES, max_length)
    evaluated = mr_sentences.iloc[predictions["row"].to_numpy()]
    return {
        "model": servable,
        "input_example": pd.DataFrame({"sentence": mr_sentences["sentence"].head(3).tolist()}),
        "test_data_digest": table_digest(evaluated[["sentence", "label", "fold"]].reset_index(drop=True)),
    }
