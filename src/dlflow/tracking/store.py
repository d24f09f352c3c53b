"""Where MLflow lives by default: the embedded SQLite store of the project.

The default is an SQLite store at an *absolute* path under ``<project>/mlruns``
(MLflow 3.17 refuses the plain ``./mlruns`` file store, and a relative
``sqlite:///`` URI lands wherever the process started). ``MLFLOW_TRACKING_URI``
overrides it, e.g. for a team server. ``conf/base/mlflow.yml`` reads both through
the config loader's resolvers (``dlflow.settings``).
"""

from __future__ import annotations

import os
from pathlib import Path


def _project_root() -> Path:
    """The Kedro project being run: the working directory when it holds a ``pyproject.toml``
    (``kedro run`` starts there), else the source tree's root."""
    if (Path.cwd() / "pyproject.toml").is_file():
        return Path.cwd()
    return Path(__file__).resolve().parents[3]  # src/dlflow/tracking/store.py


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
