"""What a run records besides parameters: its table inputs (with a schema) and metric values.

``table_schema`` describes a table for MLflow from its column types,
``log_table_input`` records a table as an input of the active run, and
``mlflow_metrics`` shapes metric values the way kedro-mlflow's metrics data set saves them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def mlflow_metrics(values: dict[str, float], step: int = 0) -> dict[str, dict[str, float]]:
    """Metrics as kedro-mlflow's ``MlflowMetricsHistoryDataset`` saves them: ``{name: {"value", "step"}}``."""
    return {name: {"value": float(value), "step": step} for name, value in values.items()}


def tag_run(run_id: str, tags: dict[str, str]) -> None:
    """Set ``tags`` on the MLflow run ``run_id`` (through the tracking client: no active run needed)."""
    import mlflow

    client = mlflow.MlflowClient()
    for key, value in tags.items():
        client.set_tag(run_id, key, value)


def log_table_input(table: pd.DataFrame, name: str, digest: str, context: str, rows: int | None = None) -> None:
    """Record ``table`` as an input of the active run: its name, digest, schema and size (``rows``: the
    number of rows of the table that ``table`` is the first rows of, for a table too large to load).

    The schema is read off the column types (``table_schema``); MLflow's own
    inference would visit every value of every object column and warn about
    integer columns each time a node loads a table.
    """
    import json

    import mlflow
    from mlflow.data.code_dataset_source import CodeDatasetSource  # noqa: F401 (registers the source type)
    from mlflow.entities import Dataset, DatasetInput, InputTag

    entity = Dataset(
        name=name,
        digest=digest,
        source_type="code",
        source=json.dumps({"tags": {"kedro.dataset": name}}),
        schema=json.dumps({"mlflow_colspec": table_schema(table).to_dict()}),
        profile=json.dumps(
            {
                "num_rows": len(table) if rows is None else rows,
                "num_elements": int(table.shape[1] * (len(table) if rows is None else rows)),
            }
        ),
    )
    run_id = mlflow.active_run().info.run_id
    inputs = [DatasetInput(entity, [InputTag("mlflow.data.context", context)])]
    try:
        mlflow.MlflowClient().log_inputs(run_id, inputs)
    except mlflow.exceptions.MlflowException as error:
        # MLflow's SQL store gets-or-creates the experiment's dataset row in two steps: a run of another
        # process that logs the same table at the same instant may create it in between. It exists now.
        if "UNIQUE constraint" not in str(error) and "duplicate key" not in str(error):
            raise
        mlflow.MlflowClient().log_inputs(run_id, inputs)


def table_schema(table: pd.DataFrame) -> Any:
    """An MLflow column schema from ``table``'s dtypes (object columns: by their first value)."""
    from mlflow.types import ColSpec, DataType, Schema
    from mlflow.types.schema import Array

    def value_type(value) -> DataType:
        if isinstance(value, (bool, np.bool_)):
            return DataType.boolean
        if isinstance(value, (int, np.integer)):
            return DataType.long
        if isinstance(value, (float, np.floating)):
            return DataType.double
        return DataType.binary if isinstance(value, (bytes, bytearray)) else DataType.string

    def column_type(column: pd.Series) -> DataType | Array:
        dtype, types = column.dtype, pd.api.types
        if types.is_bool_dtype(dtype):
            return DataType.boolean
        if types.is_integer_dtype(dtype):
            wide = dtype.itemsize >= 8 or (dtype.kind == "u" and dtype.itemsize >= 4)
            return DataType.long if wide else DataType.integer
        if types.is_float_dtype(dtype):
            return DataType.double if dtype.itemsize >= 8 else DataType.float
        if types.is_datetime64_any_dtype(dtype):
            return DataType.datetime
        first = column.iloc[0] if len(column) else ""
        if isinstance(first, (list, tuple, np.ndarray)):  # e.g. the corpus' token lists
            return Array(value_type(first[0]) if len(first) else DataType.string)
        return value_type(first)

    return Schema([ColSpec(column_type(table[column]), str(column)) for column in table.columns])
