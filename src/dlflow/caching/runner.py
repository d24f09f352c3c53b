"""``SkipUnchangedRunner``: Kedro's sequential runner, minus the nodes whose outputs are current.

A node tagged with one of ``cache.tags`` (default: ``ingestion``,
``preprocessing``, ``embeddings``) is skipped when a record in ``cache.directory`` shows it
completed with the same fingerprint (input contents, parameters, node and
project code: ``dlflow.caching.fingerprints``) and every output it wrote is still there,
byte for byte. Anything else runs, and so does everything downstream of it
(decided before the run, from the records and the pipeline's structure). The records live in the
catalog's ``node_cache`` folder. Each skip is logged, and the MLflow run (the catalog's ``run_context``)
stays complete on its own (``dlflow.tracking.reuse``): it is tagged ``dlflow.reused.<node>`` = the id of
the run whose outputs were reused, the outputs that run logged as artifacts are copied into it (a link
for a very large one), and its description names the reused nodes and that run.
Inputs that describe the run rather than the data (``run_context``, checkpoint folders: data sets
with ``fingerprinted = False``) are not part of a fingerprint.

It is the project's default runner (``dlflow.cli``); ``--params cache.enabled=false``
runs every node, as ``--runner SequentialRunner`` does.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path

from kedro.framework.hooks import hook_impl
from kedro.io.core import DatasetNotFoundError
from kedro.pipeline import Pipeline
from kedro.pipeline.node import Node
from kedro.runner import SequentialRunner

from dlflow.caching.fingerprints import (
    CacheRecord,
    code_digest,
    dataset_digest,
    dataset_path,
    value_digest,
)
from dlflow.config import CacheParams, parse
from dlflow.tracking.context import RUN_CONTEXT
from dlflow.tracking.reuse import ReusedNode, artifact_folder, record_reuse

logger = logging.getLogger(__name__)

CACHE_FOLDER = "node_cache"  # the catalog entry (dlflow.io.folder.FolderDataset) holding one record per node
DEFAULT_DIRECTORY = "data/09_node_cache"  # where records go when the catalog names no such folder


def _is_parameter(name: str) -> bool:
    return name == "parameters" or name.startswith("params:")


class SkipUnchangedRunner(SequentialRunner):
    """Runs a pipeline in order, skipping cacheable nodes whose persisted outputs are current.

    What to skip is decided before anything runs: a node is skipped when it is
    cacheable, its record matches what it would read now, and no node it
    depends on runs. The rest goes to Kedro's own ``SequentialRunner.run``;
    a hook writes each cacheable node's record once its outputs are saved, so
    a run killed halfway still skips, next time, what it completed.
    """

    def __str__(self) -> str:  # Kedro records a runner as str(runner), and MLflow shows it as the "runner" tag
        return f"{type(self).__module__}.{type(self).__qualname__}"

    def run(self, pipeline: Pipeline, catalog, hook_manager=None, run_id: str | None = None, only_missing_outputs: bool = False):
        settings = self._settings(catalog)
        if not settings.enabled:
            return super().run(pipeline, catalog, hook_manager, run_id, only_missing_outputs)
        directory = self._directory(catalog)
        run_id = self._run_id(catalog)
        skipped = self._plan(pipeline, catalog, settings, directory)
        self._record_skips(skipped, catalog, run_id)
        to_run = Pipeline([node for node in pipeline.nodes if node not in skipped])
        if not to_run.nodes:
            return {}
        cacheable = {n for n in to_run.nodes if self._cacheable(n, catalog, settings)}
        recorder = _RecordWriter(self, catalog, directory, cacheable, run_id)
        if hook_manager is None:  # a runner called directly, without hooks: record after a complete run
            outputs = super().run(to_run, catalog, hook_manager, run_id, only_missing_outputs)
            recorder.write_all()
            return outputs
        hook_manager.register(recorder)
        try:
            return super().run(to_run, catalog, hook_manager, run_id, only_missing_outputs)
        finally:
            hook_manager.unregister(recorder)

    # -- decisions

    def _plan(self, pipeline: Pipeline, catalog, settings: CacheParams, directory: Path) -> dict[Node, CacheRecord]:
        """The nodes to skip, each with the record vouching for its outputs (topological order)."""
        skipped: dict[Node, CacheRecord] = {}
        produced_by_running: set[str] = set()
        for node in pipeline.nodes:
            record = None
            if self._cacheable(node, catalog, settings) and not (set(node.inputs) & produced_by_running):
                record = self._current_record(node, catalog, directory / f"{node.name}.json")
            if record is None:
                produced_by_running |= set(node.outputs)
            else:
                skipped[node] = record
        return skipped

    def _cacheable(self, node: Node, catalog, settings: CacheParams) -> bool:
        return bool(set(settings.tags) & node.tags) and self._persisted_outputs(node, catalog)

    @staticmethod
    def _settings(catalog) -> CacheParams:
        try:
            raw = catalog.load("params:cache")
        except DatasetNotFoundError:  # no `cache` block in the parameters: the defaults
            raw = {}
        return parse("cache", raw)

    @staticmethod
    def _directory(catalog) -> Path:
        try:
            return Path(catalog.load(CACHE_FOLDER))
        except DatasetNotFoundError:
            return Path(DEFAULT_DIRECTORY)

    @staticmethod
    def _run_id(catalog) -> str | None:
        """The MLflow run this pipeline run logs to (``run_context``, put there by the project's hook)."""
        try:
            return catalog.load(RUN_CONTEXT).run_id
        except DatasetNotFoundError:  # run without the project's hooks
            return None

    @staticmethod
    def _persisted_outputs(node: Node, catalog) -> bool:
        return bool(node.outputs) and all(dataset_path(catalog.get(name)) is not None for name in node.outputs)

    @staticmethod
    def _fingerprint(node: Node, catalog) -> str | None:
        inputs: dict[str, str] = {}
        for name in node.inputs:
            if not _is_parameter(name) and not getattr(catalog.get(name), "fingerprinted", True):
                continue  # the run's identity or a working folder: not what the node computes from
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
            logger.info("Running node %s: its inputs, parameters or code changed", node.name)
            return None
        for name in node.outputs:
            if record.outputs.get(name) != dataset_digest(catalog.get(name)):
                logger.info("Running node %s: output %s is missing or changed since it was written", node.name, name)
                return None
        return record

    # -- bookkeeping

    @staticmethod
    def _record_skips(skipped: dict[Node, CacheRecord], catalog, run_id: str | None) -> None:
        """Log each skip; give the MLflow run the skipped nodes' artifacts and say where they came from."""
        reused = []
        for node, source in skipped.items():
            logger.info(
                "Skipped node %s: unchanged since MLflow run %s (%s); its outputs are reused",
                node.name, source.run_id, source.completed_at,
            )  # fmt: skip
            artifacts = []
            for name in node.outputs:
                dataset = catalog.get(name)
                folder = artifact_folder(dataset)
                if folder is not None:
                    artifacts.append((dataset_path(dataset), folder))  # current: the record vouched for its bytes
            reused.append(ReusedNode(node.name, source.run_id, tuple(artifacts)))
        if run_id is not None:
            record_reuse(run_id, reused)

    def _write_record(self, node: Node, catalog, record_path: Path, run_id: str | None) -> None:
        fingerprint = self._fingerprint(node, catalog)  # after the run: downloaded inputs now exist
        if fingerprint is None:
            return
        CacheRecord(
            node=node.name,
            fingerprint=fingerprint,
            outputs={name: dataset_digest(catalog.get(name)) for name in node.outputs},
            run_id=run_id,
            completed_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        ).write(record_path)


class _RecordWriter:
    """A Kedro hook: writes a cacheable node's record once every one of its outputs is saved."""

    def __init__(self, runner: SkipUnchangedRunner, catalog, directory: Path, nodes: set[Node], run_id: str | None) -> None:
        self._runner, self._catalog, self._directory, self._run_id = runner, catalog, directory, run_id
        self._pending = {node: set(node.outputs) for node in nodes}

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, node: Node) -> None:
        waiting = self._pending.get(node)
        if waiting is None:
            return
        waiting.discard(dataset_name)
        if not waiting:
            del self._pending[node]
            self._runner._write_record(node, self._catalog, self._directory / f"{node.name}.json", self._run_id)

    def write_all(self) -> None:
        """Records for every node, after a run without a hook manager completed."""
        for node in list(self._pending):
            self._runner._write_record(node, self._catalog, self._directory / f"{node.name}.json", self._run_id)
        self._pending.clear()
