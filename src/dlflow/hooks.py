"""Project hooks: parameter validation before any work, and data lineage in MLflow.

kedro-mlflow's own hook starts and ends the MLflow run and logs parameters;
it does not record the git commit or the input data sets, which these add.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from kedro.framework.hooks import hook_impl
from kedro.io import MemoryDataset

from dlflow.config import validate_parameters
from dlflow.lineage import git_state, table_digest
from dlflow.manifest import build_manifest
from dlflow.resume import KEY_TAG, find_interrupted_run, owner_tags, resume_key
from dlflow.tracking import check_tracking_server, ensure_experiment
from dlflow.training.distributed import launcher_rank

logger = logging.getLogger(__name__)

#: Layers whose tables are recorded as MLflow dataset inputs when a node loads them.
LINEAGE_LAYERS = ("02_intermediate", "05_model_input")


class ParameterValidationHook:
    """Fails fast, before any data is touched, when a parameter block is invalid."""

    @hook_impl
    def after_context_created(self, context) -> None:
        validate_parameters(context.params)


class TrackingStoreHook:
    """Before kedro-mlflow touches the tracking store (``tryfirst``):

    * fails in seconds, naming the URI, when a tracking server does not answer
      (MLflow's client would retry for minutes);
    * creates the experiment in a way that tolerates several runs starting at
      once (kedro-mlflow's own get-or-create races on a fresh store).
    """

    @hook_impl(tryfirst=True)
    def after_context_created(self, context) -> None:
        if launcher_rank() > 0:
            _silence_secondary_rank()
        config = context.config_loader["mlflow"]
        uri = config["server"]["mlflow_tracking_uri"]
        check_tracking_server(uri)
        experiment = config["tracking"]["experiment"]
        artifact_location = (experiment.get("create_experiment_kwargs") or {}).get("artifact_location")
        ensure_experiment(uri, experiment["name"], artifact_location)


def _silence_secondary_rank() -> None:
    """Under ``torchrun``, rank 0 alone tracks: the other ranks log to a throw-away store."""
    store = Path(tempfile.mkdtemp(prefix=f"dlflow-rank{launcher_rank()}-")) / "mlflow.db"
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{store}"
    logger.info("torchrun rank %d: MLflow tracking goes to a throw-away store (%s); rank 0 tracks the run", launcher_rank(), store)


class SecondaryRankOutputsHook:
    """Under ``torchrun``, rank 0 alone writes outputs: on the other ranks every data set
    the pipeline produces is kept in memory (each rank still computes what it needs)."""

    @hook_impl
    def before_pipeline_run(self, pipeline, catalog) -> None:
        if launcher_rank() == 0:
            return
        for name in pipeline.all_outputs():
            catalog[name] = MemoryDataset(copy_mode="assign")


class ResumeRunHook:
    """Points kedro-mlflow at the run a killed ``kedro run`` of the same command left open.

    Runs before kedro-mlflow's own ``before_pipeline_run`` (``tryfirst``), which
    then re-opens that run instead of starting a new one.
    """

    def __init__(self) -> None:
        self._context = None

    @hook_impl
    def after_context_created(self, context) -> None:
        self._context = context

    @hook_impl(tryfirst=True)
    def before_pipeline_run(self, run_params: dict[str, Any]) -> None:
        config = getattr(self._context, "mlflow", None)
        if config is None or config.tracking.run.id is not None or mlflow.active_run() is not None:
            return
        experiment = config.tracking.experiment._experiment
        run_id = find_interrupted_run(mlflow.tracking.MlflowClient(), experiment.experiment_id, resume_key(run_params, self._context.params))
        if run_id is not None:
            logger.info("Resuming MLflow run %s, left running by an interrupted run of the same command", run_id)
            config.tracking.run.id = run_id


class LineageHook:
    """Tags each run with the git commit, its resume key and owner; logs input tables with
    digests, and ``manifest.json`` at the end of the run."""

    def __init__(self) -> None:
        self._project_path = "."
        self._logged: dict[str, str] = {}
        self._params: dict[str, Any] = {}

    @hook_impl
    def after_context_created(self, context) -> None:
        self._params = context.params

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any]) -> None:
        self._project_path = run_params.get("project_path") or "."
        self._logged.clear()
        if mlflow.active_run() is not None:
            mlflow.set_tags(git_state(self._project_path) | owner_tags() | {KEY_TAG: resume_key(run_params, self._params)})

    @hook_impl
    def after_dataset_loaded(self, dataset_name: str, data: Any) -> None:
        if (
            mlflow.active_run() is None
            or not isinstance(data, pd.DataFrame)
            or dataset_name in self._logged
        ):
            return
        self._logged[dataset_name] = table_digest(data)
        context = "evaluation" if "test" in dataset_name else "training"
        dataset = mlflow.data.from_pandas(data, name=dataset_name, digest=self._logged[dataset_name])
        mlflow.log_input(dataset, context=context)

    @hook_impl(tryfirst=True)  # before kedro-mlflow's own after_pipeline_run ends the run
    def after_pipeline_run(self, run_params: dict[str, Any]) -> None:
        if mlflow.active_run() is not None:
            mlflow.log_dict(build_manifest(run_params, self._params, self._logged), "manifest.json")
