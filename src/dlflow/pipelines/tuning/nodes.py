"""Tuning nodes: run a worker's trials, summarise and plot the study, take the best trial's model to the test set.

Thin: the search (``dlflow.tuning``) and the training (the family's own
``fit_cnn`` / ``fit_rnn_fold`` over the shared loop) live elsewhere. ``tune_<family>``
returns the Optuna study itself (an in-memory data set), which the later nodes read.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from dlflow.config import RnnParams, TuningParams, parse

if TYPE_CHECKING:
    import optuna

    from dlflow.tuning.study import TrainFn

logger = logging.getLogger(__name__)


def _run_study(
    family: str,
    family_params: dict[str, Any],
    tuning: dict[str, Any],
    train: TrainFn,
    wait: bool,
    implicit: dict[str, Any] | None = None,
) -> optuna.Study:
    """Join (or create) the family's study and run this worker's trials; with ``wait``, also wait for the others'.

    ``implicit``: dotted values the family uses without stating them (the CNN constructor's
    defaults), for the first trial that repeats the configured recipe.
    """
    import mlflow

    from dlflow.tuning.space import overlay
    from dlflow.tuning.storage import make_storage, open_study, redacted, storage_url
    from dlflow.tuning.study import Objective, enqueue_configured_values, run_worker, wait_for_workers
    from dlflow.tuning.tracking import tag_tuning_run

    tuning = TuningParams.model_validate(tuning)
    study_params = getattr(tuning, family)
    if study_params is None:
        raise ValueError(f"tuning.{family} is not set in conf/*/parameters_tuning.yml: there is no search to run")
    params = parse(family, family_params).model_dump()
    if params["training"]["processes"] != 1 or "training.processes" in study_params.space:
        raise ValueError(
            f"{family}.training.processes must be 1 for tuning: each trial trains in its worker's process "
            "(run more workers to use more cores or machines, see README 'Hyperparameter tuning')"
        )
    url = storage_url(tuning, mlflow.get_tracking_uri(), Path.cwd())
    study = open_study(study_params, make_storage(url, tuning))
    if study_params.enqueue_defaults and not study.trials:
        enqueue_configured_values(study, study_params.space, overlay(params, implicit or {}))
    tag_tuning_run(study.study_name, redacted(url))
    logger.info("Study %s on %s: %d trials so far", study.study_name, redacted(url), len(study.trials))
    root = params["training"].get("checkpoint_dir")
    objective = Objective(study_params, params, train, f"{root}/tuning/{study.study_name}" if root else None)
    timeout = study_params.timeout_minutes * 60 if study_params.timeout_minutes is not None else None
    run_worker(study, objective, study_params.n_trials, timeout)
    if wait:
        wait_for_workers(study, objective, tuning.wait_for_workers_minutes * 60)
    return study


def tune_cnn(
    train_split: pd.DataFrame,
    val_split: pd.DataFrame,
    normalisation: dict[str, float],
    class_names: list[str],
    cnn: dict[str, Any],
    tuning: dict[str, Any],
    *,
    wait: bool = False,
) -> Any:
    """Run this worker's CNN trials on the cached split (``params:cnn`` under ``params:tuning``'s search); the study."""
    from dlflow.pipelines.cnn.nodes import fit_cnn

    def train(params: dict[str, Any], callbacks: list, checkpoint_dir: str | None) -> Any:
        return fit_cnn(
            train_split, val_split, normalisation, class_names, params["model"], params["training"], params["augmentation"],
            callbacks=callbacks, checkpoint_dir=checkpoint_dir,
        )  # fmt: skip

    return _run_study("cnn", cnn, tuning, train, wait, implicit=_cnn_option_defaults(cnn))


def _cnn_option_defaults(cnn: dict[str, Any]) -> dict[str, Any]:
    """``model.options.<name>`` = the architecture's constructor default, for each option the YAML leaves out."""
    import inspect

    from dlflow.models.cnn import ARCHITECTURES

    model = parse("cnn", cnn).model
    architecture = ARCHITECTURES.get(model.architecture)
    if architecture is None:
        return {}
    return {
        f"model.options.{name}": parameter.default
        for name, parameter in inspect.signature(architecture).parameters.items()
        if parameter.default is not inspect.Parameter.empty and name not in model.options
    }


def tune_rnn(
    encoded: dict[str, np.ndarray], embeddings: np.ndarray, rnn: dict[str, Any], tuning: dict[str, Any], *, wait: bool = False
) -> Any:
    """Run this worker's RNN trials: each trains with ``rnn.evaluation.test_fold`` held out and validates
    on a slice of the other folds; the study."""
    from dlflow.pipelines.rnn.nodes import fit_rnn_fold
    from dlflow.training import MlflowEpochLogger, TrainConfig

    def train(params: dict[str, Any], callbacks: list, checkpoint_dir: str | None) -> Any:
        family: RnnParams = parse("rnn", params)
        config = TrainConfig(**family.training.model_dump() | {"checkpoint_dir": checkpoint_dir})
        callbacks = [MlflowEpochLogger(samples="sentences") if isinstance(c, MlflowEpochLogger) else c for c in callbacks]
        return fit_rnn_fold(encoded, embeddings, family, family.evaluation.test_fold, config, callbacks)

    return _run_study("rnn", rnn, tuning, train, wait)


def summarise_study(study: Any, tuning: dict[str, Any], *, family: str) -> tuple[pd.DataFrame, dict[str, Any], dict]:
    """The trials table, the best trial (parameters and the ``--params`` string that reproduces them), parent metrics."""
    from dlflow.tracking.records import mlflow_metrics
    from dlflow.tuning.report import best_summary, study_metrics, trials_table

    study_params = getattr(TuningParams.model_validate(tuning), family)
    summary = best_summary(study, family, study_params.metric)
    if summary["best_trial"] is not None:
        logger.info("Study %s: best trial %d, %s %.4f; reproduce with: %s", study.study_name, summary["best_trial"],
                    summary["metric"], summary["best_value"], summary["command"])  # fmt: skip
    return trials_table(study), summary, mlflow_metrics(study_metrics(summary))


def plot_study(study: Any) -> tuple[Any, Any, Any]:
    """Optuna's optimisation history, parallel coordinates and parameter importances."""
    from dlflow.tuning.report import study_plots

    figures = study_plots(study)
    return figures["optimization_history"], figures["parallel_coordinate"], figures["param_importances"]


def select_best_model(study: Any, family_params: dict[str, Any], *, family: str) -> tuple[Any, dict[str, Any], list[dict]]:
    """The best trial's model (from its MLflow child run, whichever worker trained it), the family's
    parameters with the trial's values laid over them, and its per-epoch history."""
    from optuna.trial import TrialState

    from dlflow.tuning.space import overlay
    from dlflow.tuning.tracking import load_model

    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        raise ValueError(
            f"study {study.study_name} has no complete trial: nothing to test or register ({len(study.trials)} trials)"
        )
    best = study.best_trial
    params = overlay(parse(family, family_params).model_dump(), best.params)
    return load_model(best), params, list(best.user_attrs.get("history", []))


def predict_tuned_cnn(
    model: Any, test_split: pd.DataFrame, normalisation: dict[str, float], tuned: dict[str, Any]
) -> pd.DataFrame:
    """The tuned CNN's test predictions, with the tuned evaluation settings (``predict_cnn``)."""
    from dlflow.pipelines.cnn.nodes import predict_cnn

    return predict_cnn(model, test_split, normalisation, tuned["training"], tuned["augmentation"])


def package_tuned_cnn(
    model: Any, normalisation: dict[str, float], class_names: list[str], test_split: pd.DataFrame, tuned: dict[str, Any]
) -> dict[str, Any]:
    """The tuned CNN, servable (``package_cnn``)."""
    from dlflow.pipelines.cnn.nodes import package_cnn

    return package_cnn(model, normalisation, class_names, test_split, tuned["model"], tuned["augmentation"])


def predict_tuned_rnn(model: Any, encoded: dict[str, np.ndarray], tuned: dict[str, Any]) -> pd.DataFrame:
    """The tuned RNN's predictions on the held-out fold ``rnn.evaluation.test_fold`` (never seen by a trial)."""
    import torch

    from dlflow.training import predict

    rnn: RnnParams = parse("rnn", tuned)
    rows = np.flatnonzero(encoded["folds"] == rnn.evaluation.test_fold)
    features = (torch.from_numpy(encoded["ids"][rows]), torch.from_numpy(encoded["lengths"][rows]))
    probabilities = predict(model, features, batch_size=rnn.training.eval_batch_size, device="cpu").numpy()
    return pd.DataFrame(
        {
            "row": rows,
            "fold": rnn.evaluation.test_fold,
            "label": encoded["labels"][rows].astype(np.uint8),
            "prediction": probabilities.argmax(1).astype(np.uint8),
            "probabilities": list(probabilities.astype(np.float32)),
        }
    )
