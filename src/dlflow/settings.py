"""Kedro project settings for dlflow: the hooks, and the config loader with the tracking store's resolvers
(``dlflow.tracking.store``: an SQLite store under ``<project>/mlruns`` unless ``MLFLOW_TRACKING_URI`` is set)."""

from __future__ import annotations

import os
import sys
import warnings

from dlflow.config_loader import ConfigLoader
from dlflow.sources.naming import dataset_name
from dlflow.tracking.hooks import (
    LineageHook,
    RunContextHook,
    RunDescriptionHook,
    RunIdentityHook,
    RunSummaryHook,
    SecondaryRankOutputsHook,
    TimingHook,
    TrackingStoreHook,
)
from dlflow.tracking.naming import CONFIG_KEY
from dlflow.tracking.outage import TrackingOutageHook
from dlflow.tracking.startup import LeanMlflowHook
from dlflow.tracking.store import artifact_location, tracking_uri
from dlflow.validation import ParameterValidationHook

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "true")

# MLflow's own download bars would land in log files as carriage-return frames.
if not sys.stderr.isatty():
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
# Kedro 1.7 and kedro-mlflow 2 register their own resolvers with OmegaConf's deprecated
# register_new_resolver(); nothing in this project calls it, and every run would print the notice 4x.
warnings.filterwarnings("ignore", message=r"register_new_resolver\(\) is deprecated", category=UserWarning)


HOOKS = (
    ParameterValidationHook(),
    TrackingStoreHook(),
    SecondaryRankOutputsHook(),
    RunIdentityHook(),
    RunDescriptionHook(),
    RunContextHook(),
    LineageHook(),
    TimingHook(),
    TrackingOutageHook(),
    RunSummaryHook(),
    # kedro-mlflow's hook, minus two start-up costs no pipeline needs (dlflow.tracking.startup); last, so that
    # it runs where its entry point's hook ran: after the tryfirst hooks above, before the plain ones.
    LeanMlflowHook(),
)

# kedro-viz records a run's events only under Kedro's plain SequentialRunner (it matches the runner's repr), and
# warns on every run of dlflow's SkipUnchangedRunner; its pictures (`kedro viz`, `kedro viz build`) need no hooks.
# kedro_mlflow: its hook is registered above as LeanMlflowHook instead (the distribution's name, as Kedro reads it).
DISABLE_HOOKS_FOR_PLUGINS = ("kedro-viz", "kedro_mlflow")

CONFIG_LOADER_CLASS = ConfigLoader  # Kedro's, with --params that patch base-only blocks under --env
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    "custom_resolvers": {
        "dlflow.tracking_uri": lambda: tracking_uri(),
        "dlflow.artifact_location": lambda: artifact_location(),
        "dlflow.dataset_name": lambda source, path=None, name=None: dataset_name(source, path, name),  # dlflow.sources.naming
    },
    "config_patterns": {
        "mlflow": ["mlflow*", "mlflow*/**", "**/mlflow*"],
        CONFIG_KEY: ["experiments*", "experiments*/**"],  # dlflow.tracking.naming: each family's experiment
    },
}
