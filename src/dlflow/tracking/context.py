"""``RunContext``: what a node may know about the run it is part of, handed to it as an input.

Nodes never read global state (the active MLflow run, the tracking URI, the
working directory): ``RunContextHook`` (``dlflow.tracking.hooks``) puts one
``RunContext`` in the catalog as ``run_context`` once kedro-mlflow has started
the run, and a node that needs it lists ``run_context`` among its inputs.
This module imports neither MLflow nor Kedro's runtime.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kedro.io import MemoryDataset

RUN_CONTEXT = "run_context"  # its name in the catalog


@dataclass(frozen=True)
class RunContext:
    """The MLflow run a pipeline run logs to (``run_id`` None: none is active), where MLflow
    lives, and the Kedro project's root folder."""

    run_id: str | None
    tracking_uri: str
    project_path: Path

    def checkpoint_dir(self, root: str | None) -> str | None:
        """``root`` scoped to this run: ``<root>/<run id>``.

        Only the run that wrote a checkpoint resumes from it (the same run, re-opened
        after a kill); a new run, or one of several running at once, starts fresh and
        logs its own curves. Without a run the folder is ``root`` itself.
        """
        if root is None or self.run_id is None:
            return root
        return f"{root}/{self.run_id}"


class RunContextDataset(MemoryDataset):
    """The catalog entry holding the ``RunContext``: passed on as is, and not part of a node's
    cache fingerprint (the run's identity does not change what a node computes)."""

    fingerprinted = False

    def __init__(self, context: RunContext) -> None:
        super().__init__(data=context, copy_mode="assign")
