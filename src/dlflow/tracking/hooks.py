"""Project hooks around MLflow: the tracking store, the run's identity and context, data lineage, timings.

kedro-mlflow's own hook starts and ends the MLflow run and logs parameters;
it does not record the git commit or the input data sets, which these add.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
from kedro.framework.hooks import hook_impl
from kedro.io import MemoryDataset

from dlflow.tracking.credentials import export_kedro_credentials
from dlflow.tracking.lineage import git_state, table_digest
from dlflow.tracking.records import log_table_input
from dlflow.tracking.server import (
    check_experiment_permission,
    check_registration_permission,
    check_tracking_server,
    ensure_experiment,
    registered_model_names,
)

logger = logging.getLogger(__name__)

# MLflow and torch are imported inside the hooks that use them: this module is imported by
# settings.py, i.e. by every ``kedro`` command, most of which need neither.


def launcher_rank() -> int:
    """``RANK`` set by ``torchrun`` (or another launcher), else 0."""
    return int(os.environ.get("RANK") or 0)


class TrackingStoreHook:
    """Before kedro-mlflow touches the tracking store (``tryfirst``):

    * fails in seconds, naming the URI, when a tracking server does not answer
      (MLflow's client would retry for minutes), refuses the login, or the user
      may not write to the experiment or to a registered model the pipeline
      registers (the message names the permission, never the password);
    * creates the experiment in a way that tolerates several runs starting at
      once (kedro-mlflow's own get-or-create races on a fresh store).
    """

    def __init__(self) -> None:
        self._uri = ""
        self._params: dict[str, Any] = {}

    @hook_impl(tryfirst=True)
    def after_context_created(self, context) -> None:
        if launcher_rank() > 0:
            _silence_secondary_rank()
        config = context.config_loader["mlflow"]
        uri = config["server"]["mlflow_tracking_uri"]
        export_kedro_credentials(_kedro_credentials(context), config["server"].get("credentials"))  # as kedro-mlflow will
        experiment = config["tracking"]["experiment"]
        check_tracking_server(uri)  # answers, and takes the login; the run's experiment is checked once it is known
        artifact_location = (experiment.get("create_experiment_kwargs") or {}).get("artifact_location")
        ensure_experiment(uri, experiment["name"], artifact_location)
        self._uri, self._params = uri, context.params

    @hook_impl(tryfirst=True)  # before kedro-mlflow starts the run
    def before_pipeline_run(self, pipeline) -> None:
        check_registration_permission(self._uri, registered_model_names(pipeline.inputs(), self._params))


def _kedro_credentials(context) -> dict[str, Any]:
    """Kedro's credentials (``conf/<env>/credentials*.yml``); none when there is no such file."""
    from kedro.config import MissingConfigException

    try:
        return context.config_loader["credentials"]
    except MissingConfigException:
        return {}


def _silence_secondary_rank() -> None:
    """Under ``torchrun``, rank 0 alone tracks: the other ranks log to a throw-away store."""
    store = Path(tempfile.mkdtemp(prefix=f"dlflow-rank{launcher_rank()}-")) / "mlflow.db"
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{store}"
    logger.info(
        "torchrun rank %d: MLflow tracking goes to a throw-away store (%s); rank 0 tracks the run", launcher_rank(), store
    )


class SecondaryRankOutputsHook:
    """Under ``torchrun``, rank 0 alone writes the project's outputs: on the other ranks every data
    set the pipeline produces is kept in memory (each rank still computes what it needs), except the
    data sets that can be ``relocated`` (parquet-shard tables, token-id corpora), which go to a folder
    of the rank's own: what a node saves there (chunks, keyed parts, a token stream) is not what the
    next node loads (a DataFrame, a lazy ``ShardedTable``, memory-mapped ``TokenIds``), so every rank
    must load them as rank 0 does, or the ranks would train on different batches."""

    @hook_impl
    def before_pipeline_run(self, pipeline, catalog) -> None:
        if launcher_rank() == 0:
            return
        private = None
        for name in pipeline.all_outputs():
            dataset = catalog[name] if name in catalog else None
            if callable(getattr(dataset, "relocated", None)):  # ParquetShardsDataset, TokenIdsDataset
                private = private or Path(tempfile.mkdtemp(prefix=f"dlflow-rank{launcher_rank()}-tables-"))
                catalog[name] = dataset.relocated(private / name)
            else:
                catalog[name] = MemoryDataset(copy_mode="assign")


class RunIdentityHook:
    """Where a run goes and what it is called, set in kedro-mlflow's own configuration before
    kedro-mlflow starts the run (``tryfirst``):

    * the experiment of the pipeline's family (``conf/<env>/experiments.yml``: ``dlflow/cnn``, ...),
      applied with kedro-mlflow's ``setup``, which creates it if needed and makes it current;
    * a name read off the parameters (``cnn fast fashion_mnist 4ep``), as ``tracking.run.name``
      unless ``mlflow.yml`` sets one;
    * the run a killed ``kedro run`` of the same command left open, as ``tracking.run.id``,
      so that kedro-mlflow re-opens it instead of starting a new one.
    """

    def __init__(self) -> None:
        self._context = None

    @hook_impl
    def after_context_created(self, context) -> None:
        self._context = context

    @hook_impl(tryfirst=True)
    def before_pipeline_run(self, run_params: dict[str, Any]) -> None:
        import mlflow

        from dlflow.tracking.naming import CONFIG_KEY, experiment_name, load_config, run_name
        from dlflow.tracking.resume import find_interrupted_run, resume_key

        context, config = self._context, getattr(self._context, "mlflow", None)
        if config is None or mlflow.active_run() is not None:
            return  # no kedro-mlflow, or a run someone else opened (kedro-mlflow then logs into it)
        pipelines = run_params.get("pipeline_names") or run_params.get("pipeline_name")
        client = mlflow.tracking.MlflowClient()
        if config.tracking.run.id is not None:  # a run given by id (an Airflow DAG run's) stays in its experiment
            name = client.get_experiment(client.get_run(config.tracking.run.id).info.experiment_id).name
            check_experiment_permission(config.server.mlflow_tracking_uri, name)
        else:
            name = experiment_name(pipelines, load_config(_optional_config(context, CONFIG_KEY)))
            check_experiment_permission(config.server.mlflow_tracking_uri, name)  # EDIT there, on a team server
            artifact_location = config.tracking.experiment.create_experiment_kwargs.artifact_location
            ensure_experiment(config.server.mlflow_tracking_uri, name, artifact_location)  # race-tolerant create
        config.tracking.experiment.name = name
        config.setup(context)  # kedro-mlflow's own: the experiment becomes current
        config.tracking.run.name = config.tracking.run.name or run_name(pipelines, context.params, run_params.get("env"))
        if config.tracking.run.id is not None:
            return
        experiment = config.tracking.experiment._experiment
        run_id = find_interrupted_run(client, experiment.experiment_id, resume_key(run_params, context.params))
        if run_id is not None:
            logger.info("Resuming MLflow run %s, left running by an interrupted run of the same command", run_id)
            config.tracking.run.id = run_id


def _optional_config(context, key: str) -> dict[str, Any]:
    """``context.config_loader[key]``, or ``{}`` when no file of that pattern exists."""
    from kedro.config import MissingConfigException

    try:
        return context.config_loader[key]
    except (MissingConfigException, KeyError):
        return {}


class RunDescriptionHook:
    """A run says what it is: its description (what ran, on which data; then its headline
    metrics and registered version), and tags that read as values, not object reprs."""

    def __init__(self) -> None:
        self._context = None

    @hook_impl
    def after_context_created(self, context) -> None:
        self._context = context

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any]) -> None:  # after kedro-mlflow has started the run
        import mlflow

        from dlflow.tracking.naming import run_description

        if mlflow.active_run() is None or self._context is None:
            return
        pipelines = run_params.get("pipeline_names") or run_params.get("pipeline_name")
        run_id = mlflow.active_run().info.run_id
        client = mlflow.tracking.MlflowClient()
        command = client.get_run(run_id).data.tags.get("kedro_command") or ""  # set by kedro-mlflow after the start
        description = run_description(pipelines, self._context.params, run_params.get("env"), command)
        mlflow.set_tags({"mlflow.note.content": description, "kedro_session_id": str(run_params.get("run_id") or "")})
        client.delete_tag(run_id, "run_id")  # Kedro's session id (kept as kedro_session_id), not the MLflow run's

    @hook_impl(tryfirst=True)  # before kedro-mlflow's own after_pipeline_run ends the run
    def after_pipeline_run(self, run_params: dict[str, Any]) -> None:
        import mlflow

        from dlflow.tracking.naming import CONFIG_KEY, load_config, result_summary, run_description, run_name

        if mlflow.active_run() is None or self._context is None:
            return
        run = mlflow.tracking.MlflowClient().get_run(mlflow.active_run().info.run_id)
        pipelines = run_params.get("pipeline_names") or run_params.get("pipeline_name")
        identity = load_config(_optional_config(self._context, CONFIG_KEY))
        summary = result_summary(pipelines, identity, run.data.metrics, run.data.tags)
        description = run_description(
            pipelines, self._context.params, run_params.get("env"), run.data.tags.get("kedro_command") or ""
        )
        tags = {"mlflow.note.content": description + (f"\n\n{summary}" if summary else "")}
        if run.info.run_name == run_name(pipelines, self._context.params, run_params.get("env")):  # ours, not mlflow.yml's
            tags["mlflow.runName"] = run_name(pipelines, self._context.params, run_params.get("env"), run.data.tags)
        mlflow.set_tags(tags)


class RunSummaryHook:
    """Every run ends its log with one line: the headline metrics, the registered version and the gate's
    decision (or the model a batch was scored with), and the run's URL in the MLflow UI
    (``dlflow.tracking.naming.summary_line``). Read after kedro-mlflow has ended the run, so the line
    holds what the run logged last."""

    def __init__(self) -> None:
        self._context, self._run = None, None

    @hook_impl
    def after_context_created(self, context) -> None:
        self._context = context

    @hook_impl
    def before_pipeline_run(self) -> None:  # after kedro-mlflow has started the run
        import mlflow

        run = mlflow.active_run()
        self._run = None if run is None else (run.info.run_id, run.info.experiment_id, mlflow.get_tracking_uri())

    @hook_impl(trylast=True)
    def after_pipeline_run(self, run_params: dict[str, Any]) -> None:
        import mlflow

        from dlflow.tracking.naming import CONFIG_KEY, load_config, run_url, summary_line

        if self._run is None or self._context is None:
            return
        run_id, experiment_id, uri = self._run
        try:
            run = mlflow.tracking.MlflowClient(uri).get_run(run_id)
        except mlflow.exceptions.MlflowException as error:  # the store went away at the very end: say so, do not fail
            logger.warning("Run finished; its MLflow run %s could not be read back (%s)", run_id, error)
            return
        pipelines = run_params.get("pipeline_names") or run_params.get("pipeline_name")
        identity = load_config(_optional_config(self._context, CONFIG_KEY))
        logger.info(summary_line(pipelines, identity, run.data.metrics, run.data.tags, run_url(uri, experiment_id, run_id)))


class RunContextHook:
    """Hands the nodes their run's context as the catalog entry ``run_context`` (``dlflow.tracking.context``):
    the MLflow run kedro-mlflow started, the tracking URI and the project's folder, so that no node
    reads the active run, the tracking URI or the working directory itself."""

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], catalog) -> None:  # after kedro-mlflow has started the run
        import mlflow

        from dlflow.tracking.context import RUN_CONTEXT, RunContext, RunContextDataset

        run = mlflow.active_run()
        context = RunContext(
            run_id=None if run is None else run.info.run_id,
            tracking_uri=mlflow.get_tracking_uri(),
            project_path=Path(run_params.get("project_path") or ".").resolve(),
        )
        catalog[RUN_CONTEXT] = RunContextDataset(context)


class LineageHook:
    """Tags each run with the git commit, its resume key and owner; logs input tables with
    digests, and ``manifest.json`` at the end of the run."""

    def __init__(self) -> None:
        self._project_path = "."
        self._logged: dict[str, str] = {}
        self._params: dict[str, Any] = {}
        self._reproducibility: dict[str, Any] = {}

    @hook_impl
    def after_context_created(self, context) -> None:
        self._params = context.params

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline) -> None:
        import mlflow

        from dlflow.tracking.manifest import REPRODUCIBLE_TAG, reproducibility
        from dlflow.tracking.resume import KEY_TAG, owner_tags, resume_key

        self._project_path = run_params.get("project_path") or "."
        self._logged.clear()
        self._reproducibility = reproducibility({node.name for node in pipeline.nodes}, self._params)
        if mlflow.active_run() is not None:
            tags = git_state(self._project_path) | owner_tags() | {KEY_TAG: resume_key(run_params, self._params)}
            mlflow.set_tags(tags | {REPRODUCIBLE_TAG: str(self._reproducibility["bit_reproducible"]).lower()})

    @hook_impl
    def after_dataset_loaded(self, dataset_name: str, data: Any) -> None:
        import mlflow

        # A ShardedTable exists only once its module is imported: not imported here (pyarrow.parquet at start-up)
        sharded = sys.modules.get("dlflow.sources.sharded_table")
        is_sharded = sharded is not None and isinstance(data, sharded.ShardedTable)
        if mlflow.active_run() is None or not (is_sharded or isinstance(data, pd.DataFrame)) or dataset_name in self._logged:
            return
        context = "evaluation" if "test" in dataset_name else "training"
        if is_sharded:  # described, not read: its parts' footers digested, its schema from one row
            self._logged[dataset_name] = data.fingerprint()
            first = data.read_part(0).slice(0, 1).to_pandas()
            log_table_input(first, dataset_name, self._logged[dataset_name], context, rows=len(data))
            return
        self._logged[dataset_name] = table_digest(data)
        log_table_input(data, dataset_name, self._logged[dataset_name], context)

    @hook_impl(tryfirst=True)  # before kedro-mlflow's own after_pipeline_run ends the run
    def after_pipeline_run(self, run_params: dict[str, Any]) -> None:
        import mlflow

        from dlflow.tracking.manifest import build_manifest

        if mlflow.active_run() is not None:
            manifest = build_manifest(run_params, self._params, self._logged) | {"reproducibility": self._reproducibility}
            mlflow.log_dict(manifest, "manifest.json")


class TimingHook:
    """Where a run's time goes: start-up, every node, loading and saving every data set, and the rest
    between nodes (other hooks, tracking, the node cache).

    Start-up is the time from the process start until the runner reaches the first node, that is,
    starts loading that node's first input (or runs the node, when it has none): imports, the
    configuration, the catalog, the hooks before the pipeline (the MLflow run's start). Loading the
    first node's inputs (a registered model, a data set) is counted as loading, as every other load
    is; ``startup_with_first_inputs_seconds`` adds it back: the time until the first node's function
    starts. So start-up, nodes, loading, saving and the rest add up to the run's time.

    Logs one summary line and ``timings.json`` to the run (``benchmarks/cnn_benchmark.py``
    prints it as its breakdown; ``benchmarks/startup_benchmark.py`` reads the start-up from it).
    """

    def __init__(self) -> None:
        self._pipeline_started = 0.0
        self._reached: float | None = None  # the runner reached the first node
        self._first_node: float | None = None  # the first node's function started
        self._started: dict[tuple[str, str], float] = {}
        self._seconds: dict[str, dict[str, float]] = {"nodes": {}, "loads": {}, "saves": {}}

    def _start(self, kind: str, name: str) -> None:
        self._started[kind, name] = time.time()

    def _stop(self, kind: str, name: str) -> None:
        started = self._started.pop((kind, name), None)
        if started is not None:
            self._seconds[kind][name] = self._seconds[kind].get(name, 0.0) + time.time() - started

    @hook_impl(tryfirst=True)
    def before_pipeline_run(self) -> None:
        self._pipeline_started, self._reached, self._first_node = time.time(), None, None
        self._started.clear()
        self._seconds = {"nodes": {}, "loads": {}, "saves": {}}

    @hook_impl(tryfirst=True)
    def before_node_run(self, node) -> None:
        self._first_node = self._first_node or time.time()
        self._reached = self._reached or self._first_node
        self._start("nodes", node.name)

    @hook_impl(trylast=True)
    def after_node_run(self, node) -> None:
        self._stop("nodes", node.name)

    @hook_impl(trylast=True)  # the last before-hook: right before the load itself
    def before_dataset_loaded(self, dataset_name: str) -> None:
        self._reached = self._reached or time.time()  # the runner loads the first node's inputs
        self._start("loads", dataset_name)

    @hook_impl(tryfirst=True)  # the first after-hook: before lineage logging
    def after_dataset_loaded(self, dataset_name: str) -> None:
        self._stop("loads", dataset_name)

    @hook_impl(trylast=True)
    def before_dataset_saved(self, dataset_name: str) -> None:
        self._start("saves", dataset_name)

    @hook_impl(tryfirst=True)
    def after_dataset_saved(self, dataset_name: str) -> None:
        self._stop("saves", dataset_name)

    @hook_impl(tryfirst=True)  # before kedro-mlflow's own after_pipeline_run ends the run
    def after_pipeline_run(self) -> None:
        import mlflow

        timings = self.summary(time.time())
        slowest = sorted(timings["nodes"].items(), key=lambda item: -item[1])[:3]
        logger.info(
            "Time: start-up %s s (then %.1f s loading the first node's inputs), nodes %.1f s (slowest: %s), "
            "loading %.1f s, saving %.1f s, other %.1f s",
            "?" if timings["startup_seconds"] is None else f"{timings['startup_seconds']:.1f}",
            timings["first_inputs_seconds"],
            sum(timings["nodes"].values()),
            ", ".join(f"{name} {seconds:.1f} s" for name, seconds in slowest),
            timings["loading_seconds"],
            timings["saving_seconds"],
            timings["other_seconds"],
        )
        if mlflow.active_run() is not None:
            mlflow.log_dict(timings, "timings.json")

    def summary(self, now: float) -> dict[str, Any]:
        """Seconds by phase; ``other_seconds`` is the time after start-up spent neither in a node, loading
        nor saving; ``startup_seconds`` (None where the process start is unknown) ends where the runner
        reached the first node, ``startup_with_first_inputs_seconds`` where its function started."""
        started = process_start_time()
        reached = self._reached or now
        first = self._first_node or now
        nodes, loads, saves = (dict(self._seconds[kind]) for kind in ("nodes", "loads", "saves"))
        between = max(0.0, now - reached - sum(nodes.values()))
        return {
            "process_started": started,
            "startup_seconds": None if started is None else reached - started,
            "startup_with_first_inputs_seconds": None if started is None else first - started,
            "first_inputs_seconds": first - reached,
            "before_first_node_seconds": reached - self._pipeline_started,
            "nodes": nodes,
            "loads": loads,
            "saves": saves,
            "loading_seconds": sum(loads.values()),
            "saving_seconds": sum(saves.values()),
            "other_seconds": max(0.0, between - sum(loads.values()) - sum(saves.values())),
            "pipeline_seconds": now - self._pipeline_started,
        }


def process_start_time() -> float | None:
    """When this process started (seconds since the epoch), from ``/proc``; None elsewhere."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        started_ticks = int(fields[19])  # field 22 of proc(5), counted after "pid (comm)"
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return time.time() - uptime + started_ticks / os.sysconf("SC_CLK_TCK")
