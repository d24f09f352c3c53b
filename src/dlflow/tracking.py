"""Where runs are tracked, a fast check that the tracking server answers, and table inputs.

MLflow's own client retries an unreachable server for minutes and then fails
deep inside kedro-mlflow; ``check_tracking_server`` asks the server's
``/health`` endpoint once, with a short timeout, before anything runs.
``table_schema`` describes a table for MLflow from its column types, and
``log_table_input`` records a table as an input of the active run.
"""

from __future__ import annotations

import fcntl
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


class TrackingServerUnreachable(RuntimeError):
    """The MLflow tracking server named by the tracking URI does not answer."""


def mlflow_metrics(values: dict[str, float], step: int = 0) -> dict[str, dict[str, float]]:
    """Metrics as kedro-mlflow's ``MlflowMetricsHistoryDataset`` saves them: ``{name: {"value", "step"}}``."""
    return {name: {"value": float(value), "step": step} for name, value in values.items()}


def check_tracking_server(uri: str, timeout: float = 5.0) -> None:
    """Raise ``TrackingServerUnreachable`` naming ``uri`` when an HTTP(S) tracking server does not answer.

    Other stores (an SQLite file, a database URI) are opened by the client
    itself and need no check here.
    """
    if not uri.startswith(("http://", "https://")):
        return
    health = uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(health, timeout=timeout) as response:
            if response.status == 200:
                return
            problem = f"HTTP {response.status} from {health}"
    except urllib.error.HTTPError as error:
        problem = f"HTTP {error.code} from {health}"
    except (urllib.error.URLError, OSError) as error:
        problem = str(getattr(error, "reason", error))
    raise TrackingServerUnreachable(
        f"The MLflow tracking server at {uri} is unreachable ({problem}). Nothing was run. "
        "Start the server (README: 'Team tracking server'), or set MLFLOW_TRACKING_URI to a "
        "reachable server, or unset it to use the embedded SQLite store under mlruns/."
    )


def ensure_experiment(uri: str, name: str, artifact_location: str | None = None) -> str:
    """The id of experiment ``name``, created if missing; safe when several runs start at once.

    Two processes that both find no experiment both try to create it; the
    loser's error is expected and it reads the winner's experiment instead.
    """
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    with _sqlite_setup_lock(uri):  # a fresh SQLite file: one process creates the schema, the others wait
        client = MlflowClient(tracking_uri=uri)
        experiment = client.get_experiment_by_name(name)
        if experiment is not None:
            return experiment.experiment_id
        try:
            return client.create_experiment(name, artifact_location=artifact_location)
        except MlflowException:
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                raise
            return experiment.experiment_id


@contextmanager
def _sqlite_setup_lock(uri: str) -> Iterator[None]:
    """An exclusive lock on ``<db>.lock`` for an ``sqlite:///`` store; nothing for other stores.

    MLflow creates and migrates an SQLite store's tables on first use, and two
    processes doing that at once fail ("table ... already exists").
    """
    if not uri.startswith("sqlite:///"):
        yield
        return
    database = Path(uri.removeprefix("sqlite:///"))
    database.parent.mkdir(parents=True, exist_ok=True)
    with open(database.with_name(database.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def log_table_input(table: pd.DataFrame, name: str, digest: str, context: str) -> None:
    """Record ``table`` as an input of the active run: its name, digest, schema and size.

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
        profile=json.dumps({"num_rows": len(table), "num_elements": int(table.size)}),
    )
    run_id = mlflow.active_run().info.run_id
    mlflow.MlflowClient().log_inputs(run_id, [DatasetInput(entity, [InputTag("mlflow.data.context", context)])])


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
