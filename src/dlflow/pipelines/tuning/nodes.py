"""Tuning nodes: run a worker's trials, summarise and plot the study, take the best trial's model to the test set.

Thin: the search (``dlflow.tuning``) and the training (the family's recipe in
``dlflow.training.cnn`` / ``dlflow.training.rnn`` over the shared loop) live elsewhere. ``tune_<family>``
returns the Optuna study itself (an in-memory data set), which the later nodes read.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from dlflow.config import CnnParams, RnnParams, TuningParams, parse
from dlflow.tracking.context import RunContext  # at run time: Kedro reads the nodes' type hints

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
    checkpoints: str,
    run_context: RunContext,
    implicit: dict[str, Any] | None = None,
) -> optuna.Study:
    """Join (or create) the family's study and run this worker's trials; with ``wait``, also wait for the others'.

    Trials log to child runs of this run, and checkpoint under ``<checkpoints>/tuning/<study>``.
    ``implicit``: dotted values the family uses without stating them (the CNN constructor's
    defaults), for the first trial that repeats the configured recipe.
    """
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
    url = storage_url(tuning, run_context.tracking_uri, run_context.project_path)
    study = open_study(study_params, make_storage(url, tuning))
    if study_params.enqueue_defaults and not study.trials:
        enqueue_configured_values(study, study_params.space, overlay(params, implicit or {}))
    tag_tuning_run(run_context.run_id, study.study_name, redacted(url))
    logger.info("Study %s on %s: %d trials so far", study.study_name, redacted(url), len(study.trials))
    objective = Objective(study_params, params, train, f"{checkpoints}/tuning/{study.study_name}", run_context.run_id)
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
    image_source: str,
    tuning: dict[str, Any],
    checkpoints: str,
    run_context: RunContext,
    *,
    wait: bool = False,
) -> Any:
    """Run this worker's CNN trials on the cached split (``params:cnn`` under ``params:tuning``'s search,
    its augmentation resolved for ``image_source``); the study."""
    from dlflow.training.cnn import fit_cnn

    cnn = _resolved_augmentation(cnn, image_source)

    def train(params: dict[str, Any], callbacks: list, checkpoint_dir: str | None) -> Any:
        family: CnnParams = parse("cnn", params)
        return fit_cnn(
            train_split, val_split, normalisation, class_names, family.model, family.training, family.augmentation,
            callbacks=callbacks, checkpoint_dir=checkpoint_dir,
        )  # fmt: skip

    return _run_study("cnn", cnn, tuning, train, wait, checkpoints, run_context, implicit=_cnn_option_defaults(cnn))


def _resolved_augmentation(cnn: dict[str, Any], image_source: str) -> dict[str, Any]:
    """``cnn`` with ``augmentation``'s nulls replaced by ``image_source``'s defaults (``AugmentationParams.resolved``)."""
    augmentation = parse("cnn", cnn).augmentation.resolved(image_source)
    return cnn | {"augmentation": augmentation.model_dump()}


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
    encoded: dict[str, np.ndarray],
    embeddings: np.ndarray,
    class_names: list[str],
    rnn: dict[str, Any],
    tuning: dict[str, Any],
    checkpoints: str,
    run_context: RunContext,
    *,
    wait: bool = False,
) -> Any:
    """Run this worker's RNN trials: each trains with ``rnn.evaluation.test_fold`` held out and validates
    on a slice of the other folds; the study."""
    from dlflow.training import MlflowEpochLogger, TrainConfig
    from dlflow.training.rnn import fit_rnn_fold

    def train(params: dict[str, Any], callbacks: list, checkpoint_dir: str | None) -> Any:
        family: RnnParams = parse("rnn", params)
        config = TrainConfig(**family.training.model_dump() | {"checkpoint_dir": checkpoint_dir})
        callbacks = [MlflowEpochLogger(samples="sentences") if isinstance(c, MlflowEpochLogger) else c for c in callbacks]
        return fit_rnn_fold(encoded, embeddings, family, family.evaluation.test_fold, config, callbacks, len(class_names))

    return _run_study("rnn", rnn, tuning, train, wait, checkpoints, run_context)


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
    model: Any, test_split: pd.DataFrame, normalisation: dict[str, Any], tuned: dict[str, Any], image_source: str
) -> pd.DataFrame:
    """The tuned CNN's test predictions, with the tuned evaluation settings."""
    from dlflow.training.cnn import predict_cnn

    cnn: CnnParams = parse("cnn", _resolved_augmentation(tuned, image_source))
    return predict_cnn(model, test_split, normalisation, cnn.training.eval_batch_size, cnn.augmentation.flip_test_time)


def package_tuned_cnn(
    model: Any,
    normalisation: dict[str, Any],
    class_names: list[str],
    test_split: pd.DataFrame,
    tuned: dict[str, Any],
    image_source: str,
    resize: str,
) -> dict[str, Any]:
    """The tuned CNN, servable, packaged as the ``cnn`` pipeline packages its model."""
    from dlflow.serving.packaging import image_classifier_package

    cnn: CnnParams = parse("cnn", _resolved_augmentation(tuned, image_source))
    return image_classifier_package(
        model, normalisation, class_names, test_split,
        architecture=cnn.model.architecture, options=cnn.model.options,
        flip_test_time=cnn.augmentation.flip_test_time, resize=resize,
    )  # fmt: skip


def predict_tuned_rnn(model: Any, encoded: dict[str, np.ndarray], tuned: dict[str, Any]) -> pd.DataFrame:
    """The tuned RNN's predictions on the held-out fold ``rnn.evaluation.test_fold`` (never seen by a trial)."""
    from dlflow.training.rnn import predict_fold

    rnn: RnnParams = parse("rnn", tuned)
    return predict_fold(model, encoded, rnn.evaluation.test_fold, rnn.training.eval_batch_size)


def package_tuned_rnn(
    model: Any,
    text_vocabulary: dict,
    mr_sentences: pd.DataFrame,
    predictions: pd.DataFrame,
    class_names: list[str],
    tuned: dict[str, Any],
) -> dict[str, Any]:
    """The tuned RNN, servable, packaged as the ``rnn`` pipeline packages its model."""
    from dlflow.serving.packaging import sentence_classifier_package

    rnn: RnnParams = parse("rnn", tuned)
    return sentence_classifier_package(model, text_vocabulary, mr_sentences, predictions, class_names, rnn.max_length)
