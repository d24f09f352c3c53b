"""Resuming a killed run: the same command continues in the same MLflow run.

A run is identified by a *resume key*: a digest of the pipelines, the Kedro
environment, the node selection and every parameter. When a ``kedro run``
starts and the experiment holds a run with the same key that is still marked
RUNNING although the process that started it on this host is gone (killed,
crashed machine, ``kill -9``), kedro-mlflow is pointed at that run instead of
a new one; the training loop resumes from its last epoch checkpoint, so the
curves continue where they stopped.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from mlflow.tracking import MlflowClient

from dlflow.files import json_digest

KEY_TAG = "dlflow.resume_key"
HOST_TAG = "dlflow.host"
PID_TAG = "dlflow.pid"
SELECTION = ("pipeline_names", "env", "tags", "from_nodes", "to_nodes", "node_names", "from_inputs", "to_outputs", "namespaces")


def resume_key(run_params: dict[str, Any], params: dict[str, Any]) -> str:
    """A digest of what the run computes: pipelines, environment, node selection, parameters."""
    what = {key: run_params.get(key) for key in SELECTION} | {"params": params}
    return json_digest(what, 16)


def owner_tags() -> dict[str, str]:
    """Tags naming the process that runs this pipeline."""
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}


def _process_is_gone(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except (ValueError, PermissionError):
        return False
    return False


def find_interrupted_run(client: MlflowClient, experiment_id: str, key: str) -> str | None:
    """The newest RUNNING run with ``key`` whose process on this host no longer exists."""
    runs = client.search_runs(
        [experiment_id],
        f"tags.`{KEY_TAG}` = '{key}' and attributes.status = 'RUNNING'",
        order_by=["attributes.start_time DESC"],
        max_results=10,
    )
    host = socket.gethostname()
    for run in runs:
        tags = run.data.tags
        if tags.get(HOST_TAG) == host and _process_is_gone(tags.get(PID_TAG, "")):
            return run.info.run_id
    return None
