"""Kedro project settings for dlflow.

The embedded MLflow default is an SQLite store at an *absolute* path under
``<project>/mlruns`` (MLflow 3.17 refuses the plain ``./mlruns`` file store and
a relative ``sqlite:///`` URI lands wherever the process started).
``MLFLOW_TRACKING_URI`` overrides it, e.g. for a team server.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

from kedro.config import OmegaConfigLoader

from dlflow.tracking.hooks import (
    LineageHook,
    ParameterValidationHook,
    RunDescriptionHook,
    RunIdentityHook,
    SecondaryRankOutputsHook,
    TimingHook,
    TrackingStoreHook,
)
from dlflow.tracking.outage import TrackingOutageHook

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "true")

# MLflow's own download bars would land in log files as carriage-return frames.
if not sys.stderr.isatty():
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
# Kedro 1.7 and kedro-mlflow 2 register their own resolvers with OmegaConf's deprecated
# register_new_resolver(); nothing in this project calls it, and every run would print the notice 4x.
warnings.filterwarnings("ignore", message=r"register_new_resolver\(\) is deprecated", category=UserWarning)


def _project_root() -> Path:
    """The Kedro project being run: the working directory when it holds a ``pyproject.toml``
    (``kedro run`` starts there), else the source tree's root."""
    if (Path.cwd() / "pyproject.toml").is_file():
        return Path.cwd()
    return Path(__file__).resolve().parents[2]


def tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` if set, else the embedded SQLite store."""
    default = f"sqlite:///{_project_root() / 'mlruns' / 'mlflow.db'}"
    return os.environ.get("MLFLOW_TRACKING_URI") or default


def artifact_location() -> str | None:
    """``artifacts/`` beside an SQLite store's file; a server manages its own."""
    uri = tracking_uri()
    if not uri.startswith("sqlite:///"):
        return None
    return str(Path(uri.removeprefix("sqlite:///")).parent / "artifacts")


HOOKS = (
    ParameterValidationHook(),
    TrackingStoreHook(),
    SecondaryRankOutputsHook(),
    RunIdentityHook(),
    RunDescriptionHook(),
    LineageHook(),
    TimingHook(),
    TrackingOutageHook(),
)

# kedro-viz records a run's events only under Kedro's plain SequentialRunner (it matches the runner's repr), and
# warns on every run of dlflow's SkipUnchangedRunner; its pictures (`kedro viz`, `kedro viz build`) need no hooks.
DISABLE_HOOKS_FOR_PLUGINS = ("kedro-viz",)

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    "custom_resolvers": {
        "dlflow.tracking_uri": lambda: tracking_uri(),
        "dlflow.artifact_location": lambda: artifact_location(),
    },
    "config_patterns": {
        "mlflow": ["mlflow*", "mlflow*/**", "**/mlflow*"],
        "experiments": ["experiments*", "experiments*/**"],  # dlflow.tracking.naming: each family's experiment
    },
}
