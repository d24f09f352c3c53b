"""Project hooks: parameter validation before any work, and data lineage in MLflow.

kedro-mlflow's own hook starts and ends the MLflow run and logs parameters;
it does not record the git commit or the input data sets, which these add.
"""

from __future__ import annotations

import logging
from typing import Any

import mlflow
import pandas as pd
from kedro.framework.hooks import hook_impl

from dlflow.config import validate_parameters
from dlflow.lineage import git_state, table_digest

logger = logging.getLogger(__name__)

#: Layers whose tables are recorded as MLflow dataset inputs when a node loads them.
LINEAGE_LAYERS = ("02_intermediate", "05_model_input")


class ParameterValidationHook:
    """Fails fast, before any data is touched, when a parameter block is invalid."""

    @hook_impl
    def after_context_created(self, context) -> None:
        validate_parameters(context.params)


class LineageHook:
    """Tags each run with the git commit and logs input tables with their digests."""

    def __init__(self) -> None:
        self._project_path = "."
        self._logged: set[str] = set()

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any]) -> None:
        self._project_path = run_params.get("project_path") or "."
        self._logged.clear()
        if mlflow.active_run() is not None:
            mlflow.set_tags(git_state(self._project_path))

    @hook_impl
    def after_dataset_loaded(self, dataset_name: str, data: Any) -> None:
        if (
            mlflow.active_run() is None
            or not isinstance(data, pd.DataFrame)
            or dataset_name in self._logged
        ):
            return
        self._logged.add(dataset_name)
        context = "evaluation" if "test" in dataset_name else "training"
        dataset = mlflow.data.from_pandas(data, name=dataset_name, digest=table_digest(data))
        mlflow.log_input(dataset, context=context)
