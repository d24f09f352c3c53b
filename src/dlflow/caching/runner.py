"""``SkipUnchangedRunner``: Kedro's sequential runner, minus the nodes whose outputs are current.

A node tagged with one of ``cache.tags`` (default: ``ingestion``,
``preprocessing``) is skipped when a record in ``cache.directory`` shows it
completed with the same fingerprint (input contents, parameters, node and
project code: ``dlflow.caching.fingerprints``) and every output it wrote is still there,
byte for byte. Anything else runs, and so does everything downstream whose
inputs then change. Each skip is logged and tagged on the MLflow run as
``dlflow.reused.<node>`` = the id of the run whose outputs were reused.

It is the project's default runner (``dlflow.cli``); ``--params cache.enabled=false``
runs every node, as ``--runner SequentialRunner`` does.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime, timezone
from itertools import chain
from pathlib import Path

import mlflow
from kedro.io.core import DatasetNotFoundError
from kedro.pipeline import Pipeline
from kedro.pipeline.node import Node
from kedro.runner import SequentialRunner
from kedro.runner.task import Task

from dlflow.caching.fingerprints import CacheRecord, code_digest, dataset_digest, dataset_path, value_digest
from dlflow.config import CacheParams, parse

logger = logging.getLogger(__name__)

REUSED_TAG = "dlflow.reused."


def _is_parameter(name: str) -> bool:
    return name == "parameters" or name.startswith("params:")


class SkipUnchangedRunner(SequentialRunner):
    """Runs a pipeline in order, skipping cacheable nodes whose persisted outputs are current."""

    def _run(self, pipeline: Pipeline, catalog, hook_manager=None, run_id: str | None = None) -> None:
        settings = self._settings(catalog)
        if not settings.enabled:
            return super()._run(pipeline, catalog, hook_manager, run_id)
        self._validate_catalog(catalog)
        self._set_manager_datasets(catalog)
        directory = Path(settings.directory)
        load_counts = Counter(chain.from_iterable(n.inputs for n in pipeline.nodes))
        done: set[Node] = set()
        for node in pipeline.nodes:  # topological order
            cacheable = bool(set(settings.tags) & node.tags) and self._persisted_outputs(node, catalog)
            record_path = directory / f"{node.name}.json"
            try:
                if cacheable and (source := self._current_record(node, catalog, record_path)) is not None:
                    self._record_skip(node, source)
                else:
                    Task(node=node, catalog=catalog, hook_manager=hook_manager, is_async=self._is_async, run_id=run_id).execute()
                    if cacheable:
                        self._write_record(node, catalog, record_path)
            except Exception:
                self._suggest_resume_scenario(pipeline, done, catalog)
                raise
            done.add(node)
            self._logger.info("Completed %d out of %d tasks", len(done), len(pipeline.nodes))
            self._release_datasets(node, catalog, load_counts, pipeline)

    # -- decisions

    @staticmethod
    def _settings(catalog) -> CacheParams:
        try:
            raw = catalog.load("params:cache")
        except DatasetNotFoundError:  # no `cache` block in the parameters: the defaults
            raw = {}
        return parse("cache", raw)

    @staticmethod
    def _persisted_outputs(node: Node, catalog) -> bool:
        return bool(node.outputs) and all(dataset_path(catalog.get(name)) is not None for name in node.outputs)

    @staticmethod
    def _fingerprint(node: Node, catalog) -> str | None:
        inputs: dict[str, str] = {}
        for name in node.inputs:
            digest = value_digest(catalog.load(name)) if _is_parameter(name) else dataset_digest(catalog.get(name))
            if digest is None:
                return None  # an input we cannot fingerprint (in memory): always run
            inputs[name] = digest
        return value_digest({"node": node.name, "code": code_digest(node.func), "inputs": inputs})

    def _current_record(self, node: Node, catalog, record_path: Path) -> CacheRecord | None:
        """The record vouching for ``node``'s outputs, or None when the node must run (and why, in the log)."""
        record = CacheRecord.read(record_path)
        if record is None:
            return None
        if record.fingerprint != self._fingerprint(node, catalog):
            self._logger.info("Running node %s: its inputs, parameters or code changed", node.name)
            return None
        for name in node.outputs:
            if record.outputs.get(name) != dataset_digest(catalog.get(name)):
                self._logger.info("Running node %s: output %s is missing or changed since it was written", node.name, name)
                return None
        return record

    # -- bookkeeping

    def _record_skip(self, node: Node, source: CacheRecord) -> None:
        self._logger.info(
            "Skipped node %s: unchanged since MLflow run %s (%s); its outputs are reused",
            node.name, source.run_id, source.completed_at,
        )  # fmt: skip
        if mlflow.active_run() is not None:
            mlflow.set_tag(REUSED_TAG + node.name, source.run_id or "unknown")

    def _write_record(self, node: Node, catalog, record_path: Path) -> None:
        fingerprint = self._fingerprint(node, catalog)  # after the run: downloaded inputs now exist
        if fingerprint is None:
            return
        active = mlflow.active_run()
        CacheRecord(
            node=node.name,
            fingerprint=fingerprint,
            outputs={name: dataset_digest(catalog.get(name)) for name in node.outputs},
            run_id=active.info.run_id if active else None,
            completed_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        ).write(record_path)

