"""What ``kedro run`` skips on its way to the first node, and why each skip loses nothing.

Every ``kedro run`` is a process of its own (under kedro-airflow, one per task),
so what it does before its first node is paid again and again. Two things that
no dlflow pipeline needs were measured there (``benchmarks/startup_benchmark.py``,
docs/performance.md "Start-up"):

* **IPython, imported by MLflow's ``start_run``** (about 1 s on 2 cores). To
  tag a new run with where it started, MLflow asks whether it runs in a Jupyter
  notebook or in Databricks (a notebook, or a Serverless GPU Compute job it
  should resume) by importing IPython and looking for the shell's namespace.
  No IPython shell can be running in a process that has not imported IPython,
  so the answer there is always no. While kedro-mlflow starts the run,
  :class:`LeanMlflowHook` makes ``import IPython`` fail in that thread as if
  IPython were not installed, unless it is imported already: MLflow then takes
  its own "no IPython" branch, which gives the same answers as an IPython with
  no shell. In a notebook (``kedro jupyter``, ``%load_ext kedro.ipython``)
  IPython is imported and nothing changes.
* **Every catalog entry, built before anything runs.** kedro-mlflow's hook
  looks, once the catalog exists, for its metric datasets declared without a
  ``key``/``prefix`` and names them after their catalog entry. It finds them by
  building *every* entry of the catalog, which imports the module of every
  dataset type there is: ``matplotlib.pyplot`` for the training pipelines'
  figures in a batch-inference run, for one. :class:`LeanMlflowHook` narrows
  that one step to the entries whose configured ``type`` can be such a dataset
  (its class name holds ``Metric``); the entries it renames are the same.

Both live in :class:`LeanMlflowHook`, which is kedro-mlflow's hook otherwise;
``settings.py`` registers it in place of the plugin's entry point.
``tests/test_startup.py`` runs the start-up path against the installed MLflow
and kedro-mlflow, and fails when either starts importing IPython or building
the whole catalog again.
"""

from __future__ import annotations

import importlib.abc
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from kedro.framework.hooks import hook_impl
from kedro_mlflow.framework.hooks.mlflow_hook import MlflowHook

#: A catalog ``type`` naming a class with this in its name may be a kedro-mlflow metric dataset
#: (``MlflowMetricDataset``, ``MlflowMetricHistoryDataset``, ``MlflowMetricsHistoryDataset``, or a subclass
#: named after them): the entries ``LeanMlflowHook`` hands to kedro-mlflow.
METRIC_TYPE_MARK = "Metric"


class _UnimportedIPythonAbsent(importlib.abc.MetaPathFinder):
    """On ``sys.meta_path``: while ``absent()`` is active in a thread, importing IPython there raises
    ``ModuleNotFoundError``, as if it were not installed. An IPython already imported is untouched
    (Python finds it in ``sys.modules`` without asking any finder); other threads are untouched."""

    def __init__(self) -> None:
        self._local = threading.local()

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if getattr(self._local, "depth", 0) and name.partition(".")[0] == "IPython":
            raise ModuleNotFoundError(f"No module named {name!r} (not imported yet: no IPython shell runs)", name=name)
        return None

    @contextmanager
    def absent(self) -> Iterator[None]:
        if self not in sys.meta_path:
            sys.meta_path.insert(0, self)
        self._local.depth = getattr(self._local, "depth", 0) + 1
        try:
            yield
        finally:
            self._local.depth -= 1


_IPYTHON = _UnimportedIPythonAbsent()


def unimported_ipython_absent() -> AbstractContextManager[None]:
    """A context in which, in this thread, IPython cannot be imported unless it already is."""
    return _IPYTHON.absent()


def may_be_metric_dataset(config: Mapping[str, Any] | None) -> bool:
    """Whether a catalog entry's configuration can describe a kedro-mlflow metric dataset.

    ``None`` (an entry added in code, already built) and a ``type`` that is not a
    dotted name count as "may be": only entries whose class name plainly lacks
    ``Metric`` are left unbuilt.
    """
    kind = None if config is None else config.get("type")
    if not isinstance(kind, str):
        return True
    return METRIC_TYPE_MARK in kind.rsplit(".", 1)[-1]


class _MetricCandidates:
    """The part of a catalog kedro-mlflow's ``after_catalog_created`` reads and writes: ``items()`` of the
    entries that may be metric datasets (built on the way, as before), and ``catalog[name] = dataset``."""

    def __init__(self, catalog: Any) -> None:
        self._catalog = catalog
        resolver = getattr(catalog, "config_resolver", None)  # Kedro's DataCatalog; another catalog: every entry
        configs = resolver.config if resolver is not None else {}  # the declared entries as configured, none built
        self._names = [name for name in catalog.keys() if may_be_metric_dataset(configs.get(name))]

    def items(self) -> list[tuple[str, Any]]:
        return [(name, self._catalog[name]) for name in self._names]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __setitem__(self, name: str, dataset: Any) -> None:
        self._catalog[name] = dataset


class LeanMlflowHook(MlflowHook):
    """kedro-mlflow's ``MlflowHook``, which builds only the catalog entries its ``after_catalog_created`` may
    change (the others stay lazy, as Kedro left them, and are built when a pipeline uses them) and starts
    the MLflow run without importing IPython where none is imported (the module's docstring)."""

    @hook_impl
    def after_catalog_created(  # noqa: PLR0913 (kedro's hook specification)
        self,
        catalog: Any,
        conf_catalog: dict[str, Any],
        conf_creds: dict[str, Any],
        parameters: dict[str, Any],
        save_version: str,
        load_versions: dict[str, str],
    ) -> None:
        super().after_catalog_created(
            catalog=_MetricCandidates(catalog),
            conf_catalog=conf_catalog,
            conf_creds=conf_creds,
            parameters=parameters,
            save_version=save_version,
            load_versions=load_versions,
        )

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        with unimported_ipython_absent():
            super().before_pipeline_run(run_params=run_params, pipeline=pipeline, catalog=catalog)
