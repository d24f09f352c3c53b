"""The code's shape, checked: import-linter's contracts (pyproject.toml), and no node reading global run state."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "dlflow"

#: What a node must get as an input (``run_context``) instead of reading it from the process.
GLOBAL_STATE = {"active_run", "last_active_run", "get_tracking_uri", "get_registry_uri", "cwd", "getcwd"}


def test_import_linter_contracts_are_kept():
    """Library code free of Kedro and MLflow, MLflow only at its borders, layers one way, no pipeline
    importing another's nodes, no circle between the top-level packages (``lint-imports``)."""
    command = shutil.which("lint-imports")
    if command is None:
        pytest.fail("lint-imports is not installed: pip install -e '.[test]' installs import-linter")
    result = subprocess.run([command], cwd=SRC.parents[1], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    "module", sorted(p for p in (SRC / "pipelines").rglob("*.py") if "registration" not in p.parts), ids=lambda p: p.stem
)
def test_no_node_outside_registration_reads_the_run_or_the_working_directory(module: Path):
    calls = {
        node.func.attr
        for node in ast.walk(ast.parse(module.read_text()))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
    }
    assert not calls & GLOBAL_STATE, f"{module.relative_to(SRC)} calls {sorted(calls & GLOBAL_STATE)}: take `run_context`"


def test_the_project_hook_supplies_the_run_context(tmp_path):
    """``RunContextHook`` puts the active run, the tracking URI and the project folder in the catalog."""
    import mlflow
    from kedro.io import DataCatalog

    from dlflow.tracking.context import RUN_CONTEXT, RunContext
    from dlflow.tracking.hooks import RunContextHook

    previous = mlflow.get_tracking_uri()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    catalog = DataCatalog()
    try:
        with mlflow.start_run() as run:
            RunContextHook().before_pipeline_run({"project_path": str(tmp_path)}, catalog)
    finally:
        mlflow.set_tracking_uri(previous)
    assert catalog.load(RUN_CONTEXT) == RunContext(run.info.run_id, uri, tmp_path.resolve())
    assert sys.modules["dlflow.tracking.context"].RunContextDataset.fingerprinted is False
