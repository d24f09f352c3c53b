"""The RNN's training recipe: encoded labelled sentences in (any number of classes), one model per held-out fold out.

``cross_validate`` trains the folds (in this process or side by side in worker
processes, ``training.parallel``); ``fit_rnn_fold`` is one fold's training, which
tuning trials call too; ``predict_fold`` builds a fold's prediction table, for
cross-validation and for the tuned model alike. Knows nothing of Kedro; MLflow is
reached only through the epoch logger it hands the loop (``training.callbacks``).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import multiprocessing
from typing import Any

import numpy as np
import pandas as pd
import torch

from dlflow.config import RnnRecipe
from dlflow.sources.feedback import FEEDBACK_FOLD
from dlflow.text import PAD_ID
from dlflow.training.callbacks import MlflowEpochLogger
from dlflow.training.config import TrainConfig
from dlflow.training.data import TensorDataset
from dlflow.training.loop import fit, predict
from dlflow.training.runtime import seed_everything

logger = logging.getLogger(__name__)


def class_index_dtype(num_classes: int) -> np.dtype:
    """The smallest unsigned integer type that holds the class indices ``0 .. num_classes - 1`` (uint8 up to 256)."""
    return np.min_scalar_type(max(num_classes - 1, 0))


def sentence_tensors(encoded: dict[str, np.ndarray], rows: np.ndarray, lookup: Any = None) -> TensorDataset:
    """The sentences ``rows`` as a dataset; ``lookup`` maps their token ids into a compact vocabulary."""
    ids = torch.from_numpy(encoded["ids"][rows])
    return TensorDataset(
        features=(ids if lookup is None else lookup[ids], torch.from_numpy(encoded["lengths"][rows])),
        targets=torch.from_numpy(encoded["labels"][rows]),
    )


def build_rnn(rnn: RnnRecipe, embeddings: np.ndarray, num_classes: int) -> Any:
    from dlflow.models.rnn import SentenceRNN

    return SentenceRNN(
        embeddings.shape[0],
        embeddings.shape[1],
        num_classes=num_classes,
        pretrained=torch.from_numpy(embeddings),
        **rnn.model.model_dump(),
    )


def initial_embeddings(rnn: RnnRecipe, embeddings: np.ndarray) -> torch.Tensor:
    """The full embedding matrix a model starts from: the pre-trained vectors, or (``rand``) a seeded
    normal draw like ``nn.Embedding``'s own, so words unseen in training are not given Word2Vec vectors."""
    if rnn.model.embedding_mode != "rand":
        return torch.from_numpy(embeddings)
    generator = torch.Generator().manual_seed(rnn.training.seed)
    initial = torch.randn(embeddings.shape, generator=generator)
    initial[PAD_ID] = 0.0
    return initial


def fit_rnn_fold(
    encoded: dict[str, np.ndarray],
    embeddings: np.ndarray,
    rnn: RnnRecipe,
    fold: int,
    config: TrainConfig,
    callbacks: list[Any],
    num_classes: int,
) -> Any:
    """Train one RNN with fold ``fold`` held out: a seeded, stratified validation slice of the other folds
    (``rnn.evaluation.validation_fraction``, and at least one sentence per class) is validated each
    epoch; feedback sentences (fold ``FEEDBACK_FOLD``) are only trained on. Returns the loop's ``FitResult``, its model over the full vocabulary.

    The network trains on the embedding rows of the training folds' words only
    (``models.rnn.compact_vocabulary``): the same training, as dense Adam never
    moves a row without gradient, at about twice the speed. With
    ``rnn.adversarial.epsilon`` > 0 each batch also trains on adversarially
    perturbed word vectors (``training.adversarial``).
    """
    from sklearn.model_selection import train_test_split

    from dlflow.models.rnn import compact_vocabulary, expand_vocabulary
    from dlflow.training.adversarial import EmbeddingAdversarialLoss

    folds = encoded["folds"]
    pool = np.flatnonzero((folds != fold) & (folds != FEEDBACK_FOLD))
    # As many sentences as the fraction asks (sklearn's own rounding), and no fewer than the classes:
    # a stratified slice needs one of each.
    validation_size = max(math.ceil(rnn.evaluation.validation_fraction * len(pool)), num_classes)
    train_rows, val_rows = train_test_split(
        pool,
        test_size=validation_size,
        stratify=encoded["labels"][pool],
        random_state=rnn.training.seed,
    )
    # Feedback sentences (fold FEEDBACK_FOLD) are trained on, never validated: the validation slice is as before.
    train_rows = np.concatenate([train_rows, np.flatnonzero(folds == FEEDBACK_FOLD)])
    # Train on the embedding rows these sentences use, then put the model back on the full vocabulary.
    full_initial = initial_embeddings(rnn, embeddings)
    rows, lookup = compact_vocabulary(torch.from_numpy(encoded["ids"][folds != fold]), len(embeddings))
    seed_everything(rnn.training.seed, rnn.training.deterministic)
    result = fit(
        build_rnn(rnn, embeddings[rows.numpy()], num_classes),
        sentence_tensors(encoded, np.sort(train_rows), lookup),
        sentence_tensors(encoded, np.sort(val_rows), lookup),
        config,
        callbacks=callbacks,
        training_loss=(
            EmbeddingAdversarialLoss(rnn.adversarial.epsilon, rnn.training.label_smoothing)
            if rnn.adversarial.epsilon > 0
            else None
        ),
    )
    return dataclasses.replace(result, model=expand_vocabulary(result.model, rows, full_initial))


def predict_fold(model: Any, encoded: dict[str, np.ndarray], fold: int, eval_batch_size: int) -> pd.DataFrame:
    """The prediction table of fold ``fold``'s sentences: ``row`` (in ``encoded``), ``fold``, ``label``,
    ``prediction``, ``probabilities``."""
    rows = np.flatnonzero(encoded["folds"] == fold)
    test = sentence_tensors(encoded, rows)
    probabilities = predict(model, test.features, batch_size=eval_batch_size, device="cpu").numpy()
    return pd.DataFrame(
        {
            "row": rows,
            "fold": fold,
            "label": test.targets.numpy().astype(class_index_dtype(probabilities.shape[1])),
            "prediction": probabilities.argmax(1).astype(class_index_dtype(probabilities.shape[1])),
            "probabilities": list(probabilities.astype(np.float32)),
        }
    )


@dataclasses.dataclass(frozen=True)
class FoldOutcome:
    fold: int
    accuracy: float
    predictions: pd.DataFrame
    model: Any  # the test fold's only
    history: list[dict]


@dataclasses.dataclass(frozen=True)
class FoldJob:
    """One fold of ``cross_validate``: train with it held out, predict it (in this process or a worker)."""

    rnn: RnnRecipe
    fold: int
    config: TrainConfig
    num_classes: int
    run_id: str | None  # the MLflow run its epochs are logged to
    tracking_uri: str | None

    def run(self, encoded: dict[str, np.ndarray], embeddings: np.ndarray) -> FoldOutcome:
        is_test_fold = self.fold == self.rnn.evaluation.test_fold
        prefix = "" if is_test_fold else f"fold{self.fold}_"
        callbacks = (
            []
            if self.run_id is None
            else [MlflowEpochLogger(prefix, samples="sentences", run_id=self.run_id, tracking_uri=self.tracking_uri)]
        )
        result = fit_rnn_fold(encoded, embeddings, self.rnn, self.fold, self.config, callbacks, self.num_classes)
        predictions = predict_fold(result.model, encoded, self.fold, self.config.eval_batch_size)
        accuracy = float((predictions["prediction"] == predictions["label"]).mean())
        model, history = (result.model.cpu(), [vars(r) for r in result.history]) if is_test_fold else (None, [])
        return FoldOutcome(self.fold, accuracy, predictions, model, history)


def cross_validate(
    encoded: dict[str, np.ndarray],
    embeddings: np.ndarray,
    rnn: RnnRecipe,
    folds: list[int],
    config: TrainConfig,
    num_classes: int,
    run_id: str | None,
    tracking_uri: str | None,
) -> list[FoldOutcome]:
    """Train and predict each of ``folds`` held out, in fold order.

    The folds train side by side in worker processes (``rnn.evaluation.workers``,
    ``training.parallel``; ``None``: one per core), each logging its epochs to the
    MLflow run ``run_id`` live. Every fold seeds itself, so the results do not
    depend on the number of workers.
    """
    from dlflow.training.parallel import plan_workers, worker_pool

    workers, threads = plan_workers(rnn.evaluation.workers, len(folds), rnn.training.num_threads)
    if config.processes > 1:
        workers = 1  # each fold already trains data-parallel
    if run_id is None:
        logger.warning("No MLflow run: the folds' epoch metrics are not logged")
    jobs = [FoldJob(rnn, fold, config, num_classes, run_id, tracking_uri) for fold in folds]
    outcomes = []
    if workers == 1:
        for job in jobs:
            outcomes.append(job.run(encoded, embeddings))
            logger.info("Fold %d: test accuracy %.4f", job.fold, outcomes[-1].accuracy)
    else:
        quiet = config.model_copy(update={"progress": False, "num_threads": threads})
        jobs = [dataclasses.replace(job, config=quiet) for job in jobs]
        inputs = {"encoded": encoded, "embeddings": embeddings}
        with worker_pool(workers, threads, _receive_fold_inputs, inputs) as run_jobs:
            for outcome in run_jobs(_run_fold_job, jobs):
                outcomes.append(outcome)
                logger.info(
                    "Fold %d: test accuracy %.4f (%d of %d folds done)", outcome.fold, outcome.accuracy, len(outcomes), len(jobs)
                )
    return sorted(outcomes, key=lambda outcome: outcome.fold)


_worker_inputs: dict[str, Any] = {}  # a fold worker's copy of the encoded sentences and embeddings


def _receive_fold_inputs(inputs: dict[str, Any]) -> None:
    _worker_inputs.update(inputs)


def _run_fold_job(job: FoldJob) -> FoldOutcome:
    multiprocessing.current_process().name = f"fold {job.fold}"  # names the worker's log lines
    return job.run(_worker_inputs["encoded"], _worker_inputs["embeddings"])
