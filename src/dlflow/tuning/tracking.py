"""Trials as MLflow child runs of the tuning run (the pipeline's run, named by the node's run context).

Each trial opens a nested run named ``trial-<number>`` that holds its parameters,
its per-epoch curves (the shared ``MlflowEpochLogger``), its value, its model (when
complete) and its final state: ``FINISHED`` (complete), ``KILLED`` (pruned) or
``FAILED``, with the Optuna state in the tag ``optuna.state``. The parent stays the
active run afterwards.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna
    from torch import nn

logger = logging.getLogger(__name__)

RUN_ID_ATTR = "mlflow_run_id"
MODEL_ARTIFACT = "model/model.pt"
STATE_TAG = "optuna.state"
MLFLOW_STATUS = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED"}


@contextlib.contextmanager
def child_run(trial: optuna.Trial, study_name: str, values: dict[str, Any], parent_run_id: str | None) -> Iterator[None]:
    """A child MLflow run of ``parent_run_id`` (None: of the active run if there is one, else a top-level run)
    for ``trial`` while the block runs;
    its state follows the block's outcome.

    Returning normally: complete; ``optuna.TrialPruned``: pruned; any other exception: failed.
    The exception propagates to Optuna, which records the same state.
    """
    import mlflow
    import optuna

    tags = {
        "optuna.study": study_name,
        "optuna.trial": str(trial.number),
        STATE_TAG: "RUNNING",
        **({"mlflow.parentRunId": parent_run_id} if parent_run_id is not None else {}),
    }
    retried = retry_of(trial)
    if retried is not None:
        tags["optuna.retry_of_trial"] = str(retried)
    run = mlflow.start_run(run_name=f"trial-{trial.number}", nested=True, tags=tags)  # no run active: a top-level run
    trial.set_user_attr(RUN_ID_ATTR, run.info.run_id)
    state = "FAIL"
    try:
        mlflow.log_params(values)
        yield
        state = "COMPLETE"
    except optuna.TrialPruned:
        state = "PRUNED"
        raise
    finally:
        mlflow.set_tag(STATE_TAG, state)
        mlflow.end_run(status=MLFLOW_STATUS[state])
        logger.info("Trial %d: %s (MLflow run %s)", trial.number, state.lower(), run.info.run_id)


def retry_of(trial: optuna.Trial) -> int | None:
    """The number of the trial that ``trial`` retries (a dead worker's), as Optuna's retry callback records it."""
    frozen = trial.storage.get_trial(trial._trial_id)  # Trial has no public view of its system attributes
    return frozen.system_attrs.get("failed_trial")  # what RetryHeartbeatStaleTrialCallback.retried_trial_number reads


def log_trial_result(metric: str, value: float, model: nn.Module) -> None:
    """A complete trial's value (as ``metric``) and its trained network (pickled module, ``model/model.pt``),
    logged to its child run."""
    import mlflow
    import torch

    mlflow.log_metric(metric, value)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / Path(MODEL_ARTIFACT).name
        torch.save(model.cpu(), path)
        mlflow.log_artifact(str(path), Path(MODEL_ARTIFACT).parent.as_posix())


def load_model(trial: optuna.trial.FrozenTrial) -> nn.Module:
    """The model a complete trial logged to its child run (any worker's, through the tracking store)."""
    import mlflow
    import torch

    run_id = trial.user_attrs[RUN_ID_ATTR]
    with tempfile.TemporaryDirectory() as folder:
        path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=MODEL_ARTIFACT, dst_path=folder)
        return torch.load(path, weights_only=False).eval()


def tag_tuning_run(run_id: str | None, study_name: str, storage: str) -> None:
    """Mark the run ``run_id`` (None: no run, nothing to mark) as the parent tuning run of ``study_name``
    on ``storage`` (password hidden)."""
    from dlflow.tracking.records import tag_run

    if run_id is not None:
        tag_run(run_id, {"optuna.study": study_name, "optuna.storage": storage, "optuna.role": "parent"})


def fail_child_run(trial: optuna.trial.FrozenTrial) -> None:
    """End the child run of a trial whose worker died (left RUNNING) as FAILED."""
    import mlflow

    run_id = trial.user_attrs.get(RUN_ID_ATTR)
    if run_id is None:
        return
    try:
        client = mlflow.MlflowClient()
        client.set_tag(run_id, STATE_TAG, "FAIL")
        client.set_terminated(run_id, "FAILED")
    except Exception as error:  # the study goes on even if the tracking store does not answer
        logger.warning("Could not mark MLflow run %s of stale trial %d failed: %s", run_id, trial.number, error)
