"""The Airflow route, checked in the project's own environment (no Airflow here).

The DAGs are generated in-process by kedro-airflow's own ``kedro airflow create``
command with dlflow's template (airflow/dag_template.j2), exactly as
airflow/generate_dags.sh does, and read back as Python source: distinct
dag_ids, every node in exactly one task, no in-memory dataset split between
tasks, task order consistent with the data flow, one MLflow run handed to every
task. Importing and running them with real Apache Airflow 3 is .ci/airflow.sh's
job (Airflow lives in its own virtual environment).
"""

from __future__ import annotations

import ast
import os
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from kedro.io import MemoryDataset
from kedro_airflow.plugin import commands as kedro_airflow_commands

from tests.conftest import REPO_ROOT, copy_project

TEMPLATE = REPO_ROOT / "airflow" / "dag_template.j2"
GENERATE = REPO_ROOT / "airflow" / "generate_dags.sh"
ENV = "test"


def _copy_project(root: Path) -> Path:
    return copy_project(root / "project")


def _create_dags(project: Path, target: Path, *options: str) -> None:
    """``kedro airflow create -j airflow/dag_template.j2 -g memory ...`` for ``project``."""
    metadata = bootstrap_project(project)
    args = [
        "airflow",
        "create",
        "--env",
        ENV,
        "--target-dir",
        str(target),
        "--jinja-file",
        str(TEMPLATE),
        "--group-by",
        "memory",
        *options,
    ]
    result = CliRunner().invoke(kedro_airflow_commands, args, obj=metadata, catch_exceptions=False)
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory, data_mirror: Path):
    """Every registered pipeline's DAG for ``--env test``, with the project's catalog and pipelines."""
    from kedro.framework.project import pipelines

    root = tmp_path_factory.mktemp("airflow")
    project = _copy_project(root)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(project)
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
        patch.setenv("DLFLOW_DATA_MIRROR", str(data_mirror))
        bootstrap_project(project)
        names = sorted(name for name in pipelines if name != "__default__")
        _create_dags(project, root / "dags", "--pipelines", ",".join(names), "--params", f"project_path={project}")
        with KedroSession.create(project_path=project, env=ENV) as session:
            catalog = session.load_context().catalog
        registered = {name: pipelines[name] for name in names}
    return root / "dags", registered, catalog, project


def _module(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def _constant(module: ast.Module, name: str):
    for statement in module.body:
        if isinstance(statement, ast.Assign) and any(getattr(t, "id", None) == name for t in statement.targets):
            return ast.literal_eval(statement.value)
    raise AssertionError(f"{name} is not assigned in the DAG file")


def _edges(module: ast.Module) -> set[tuple[str, str]]:
    """The ``tasks["a"] >> tasks["b"]`` dependencies, by group name."""
    edges = set()
    for node in ast.walk(module):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.RShift):
            if isinstance(node.left, ast.Subscript) and isinstance(node.right, ast.Subscript):
                edges.add((ast.literal_eval(node.left.slice), ast.literal_eval(node.right.slice)))
    return edges


def test_one_dag_file_per_pipeline_with_distinct_dag_ids(generated) -> None:
    dags, pipelines, _, _ = generated
    files = sorted(dags.glob("*_dag.py"))
    assert {f.name for f in files} == {f"dlflow_{ENV}_{name}_dag.py" for name in pipelines}
    dag_ids = [_constant(_module(f), "DAG_ID") for f in files]
    assert len(set(dag_ids)) == len(files), dag_ids
    for path, dag_id in zip(files, dag_ids):
        assert dag_id == path.name.removesuffix("_dag.py")
        compile(path.read_text(), str(path), "exec")
        module = _module(path)
        assert _constant(module, "KEDRO_ENV") == ENV
        assert _constant(module, "PIPELINE_NAME") == dag_id.removeprefix(f"dlflow_{ENV}_")


def test_every_node_runs_in_exactly_one_task(generated) -> None:
    dags, pipelines, _, _ = generated
    for name, pipeline in pipelines.items():
        groups = _groups(_module(dags / f"dlflow_{ENV}_{name}_dag.py"))
        scheduled = [node for nodes in groups.values() for node in nodes]
        assert sorted(scheduled) == sorted(node.name for node in pipeline.nodes), name


def test_no_in_memory_dataset_crosses_tasks_and_order_follows_the_data(generated) -> None:
    dags, pipelines, catalog, _ = generated
    for name, pipeline in pipelines.items():
        module = _module(dags / f"dlflow_{ENV}_{name}_dag.py")
        group_of = {node: group for group, nodes in _groups(module).items() for node in nodes}
        edges = _edges(module)
        producer = {output: node.name for node in pipeline.nodes for output in node.outputs}
        for node in pipeline.nodes:
            for dataset in node.inputs:
                if dataset not in producer:
                    continue
                source, target = group_of[producer[dataset]], group_of[node.name]
                in_memory = dataset not in catalog or isinstance(catalog.get(dataset), MemoryDataset)
                if in_memory:
                    assert source == target, f"{name}: in-memory {dataset} goes from task {source} to {target}"
                elif source != target:
                    assert _reachable(edges, source, target), f"{name}: {target} may run before {source} writes {dataset}"


def _groups(module: ast.Module) -> dict[str, list[str]]:
    """group name (the key of ``tasks``) -> node names, from the ``tasks = {...}`` dict and the task bodies."""
    by_function = {}
    for function in ast.walk(module):
        if isinstance(function, ast.FunctionDef):
            for call in ast.walk(function):
                if isinstance(call, ast.Call) and getattr(call.func, "id", None) == "_run_kedro":
                    (keyword,) = [k for k in call.keywords if k.arg == "node_names"]
                    by_function[function.name] = ast.literal_eval(keyword.value)
    groups = {}
    for node in ast.walk(module):
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "tasks":
            for key, value in zip(node.value.keys, node.value.values):
                groups[ast.literal_eval(key)] = by_function[value.func.id]
    assert groups, "no `tasks = {...}` in the DAG file"
    return groups


def _reachable(edges: set[tuple[str, str]], source: str, target: str) -> bool:
    frontier, seen = [source], {source}
    while frontier:
        current = frontier.pop()
        for a, b in edges:
            if a == current and b not in seen:
                if b == target:
                    return True
                seen.add(b)
                frontier.append(b)
    return False


def test_one_mlflow_run_is_created_first_and_handed_to_every_task(generated) -> None:
    dags, _, _, project = generated
    source = (dags / f"dlflow_{ENV}_cnn_dag.py").read_text()
    module = ast.parse(source)
    assert f'or "{project}" or Path.cwd()' in source
    assert 'os.environ.get("DLFLOW_PROJECT_PATH")' in source
    assert _constant(module, "RUN_ID_PARAM") == "mlflow_run_id"
    # every Kedro task takes the start task's result: Airflow runs start_mlflow_run first
    calls = [
        node
        for node in ast.walk(module)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id.startswith("run_")
    ]
    assert calls and all([a.id for a in c.args] == ["mlflow_run"] for c in calls)
    assert "mlflow_run = start_mlflow_run()" in source
    assert "list(tasks.values()) >> finish_mlflow_run(mlflow_run)" in source
    assert "runtime_params={RUN_ID_PARAM: mlflow_run_id}" in source


def test_mlflow_yml_takes_the_run_id_from_the_runtime_parameter(kedro_project: Path) -> None:
    """The contract the DAGs rely on: ``mlflow_run_id`` becomes kedro-mlflow's ``tracking.run.id``."""
    with KedroSession.create(project_path=kedro_project, env=ENV, runtime_params={"mlflow_run_id": "0123abcd"}) as session:
        run_id = session.load_context().mlflow.tracking.run.id
    assert run_id == "0123abcd", "conf/base/mlflow.yml needs `tracking.run.id: ${runtime_params:mlflow_run_id,null}`"
    with KedroSession.create(project_path=kedro_project, env=ENV) as session:
        assert session.load_context().mlflow.tracking.run.id is None  # plain `kedro run`: a new run


def test_template_settings_render_as_python(tmp_path: Path, kedro_project: Path) -> None:
    """A cron schedule, retries and a custom project path pass through ``--params`` into valid Python."""
    _create_dags(
        kedro_project,
        tmp_path / "dags",
        "--pipelines",
        "ingestion",
        "--params",
        "schedule=0 3 * * *,retries=0,project_path=/srv/dlflow,max_active_runs=2",
    )
    path = tmp_path / "dags" / f"dlflow_{ENV}_ingestion_dag.py"
    source = path.read_text()
    compile(source, str(path), "exec")
    assert 'schedule="0 3 * * *"' in source
    assert "retries=0," in source and "max_active_runs=2," in source
    assert 'or "/srv/dlflow" or Path.cwd()' in source


def test_scripts_are_valid_bash() -> None:
    for script in (GENERATE, REPO_ROOT / ".ci" / "airflow.sh"):
        subprocess.run(["bash", "-n", str(script)], check=True)
    usage = subprocess.run(["bash", str(GENERATE), "--help"], check=True, capture_output=True, text=True).stdout
    assert "--env" in usage and "--pipelines" in usage
    assert os.access(GENERATE, os.X_OK)


class _NotFound(Exception):
    """Stands in for Airflow's ``AirflowNotFoundException`` (matched by name, as the DAG does)."""


_NotFound.__name__ = "AirflowNotFoundException"


def _login_function(source: str):
    """The generated DAG's ``_mlflow_login`` with its constants, compiled on its own."""
    module = ast.parse(source)
    wanted = {"MLFLOW_CONN_ID", "MLFLOW_USERNAME_VARIABLE", "LOGIN_VARIABLES", "_mlflow_login"}
    body = [
        node
        for node in module.body
        if (isinstance(node, ast.FunctionDef) and node.name in wanted)
        or (isinstance(node, ast.Assign) and any(getattr(t, "id", None) in wanted for t in ast.walk(node.targets[0])))
    ]
    namespace: dict = {"os": os}
    exec(compile(ast.Module(body=body, type_ignores=[]), "dag", "exec"), namespace)
    return namespace["_mlflow_login"]


def test_the_dags_take_the_tracking_login_from_an_airflow_connection_or_variables(generated, monkeypatch) -> None:
    """No credential is baked into a DAG file; at run time the login comes from Airflow's connection
    ``dlflow_mlflow``, else its variables. (Airflow's own objects are stood in for here: Airflow is not
    installed in the project's environment; .ci/airflow.sh runs a DAG through the real ones.)"""
    import sys
    import types

    dags, _, _, _ = generated
    source = (dags / f"dlflow_{ENV}_cnn_dag.py").read_text()
    assert 'MLFLOW_CONN_ID = os.environ.get("DLFLOW_MLFLOW_CONN_ID") or "dlflow_mlflow"' in source
    assert "Connection.get(MLFLOW_CONN_ID)" in source and "_mlflow_login() |" in source  # pinned in every task
    login = _login_function(source)
    connections: dict = {}
    variables: dict = {}

    class Connection:
        @staticmethod
        def get(conn_id):
            if conn_id not in connections:
                raise _NotFound(conn_id)
            return connections[conn_id]

    class Variable:
        @staticmethod
        def get(key, default=None):
            return variables.get(key, default)

    monkeypatch.setitem(sys.modules, "airflow", types.ModuleType("airflow"))
    monkeypatch.setitem(sys.modules, "airflow.sdk", types.SimpleNamespace(Connection=Connection, Variable=Variable))
    assert login() == {}  # neither: the worker's own environment, or a server without logins
    variables |= {"dlflow_mlflow_username": "scheduler", "dlflow_mlflow_password": "from-a-variable"}
    assert login() == {"MLFLOW_TRACKING_USERNAME": "scheduler", "MLFLOW_TRACKING_PASSWORD": "from-a-variable"}
    connections["dlflow_mlflow"] = types.SimpleNamespace(login="scheduler", password="from-the-connection")
    assert login() == {"MLFLOW_TRACKING_USERNAME": "scheduler", "MLFLOW_TRACKING_PASSWORD": "from-the-connection"}

    def broken(conn_id):
        raise RuntimeError("the Airflow API is down")

    monkeypatch.setattr(Connection, "get", staticmethod(broken))
    with pytest.raises(RuntimeError, match="API is down"):  # only a missing connection falls back
        login()


def test_a_monitor_dag_per_family_triggers_that_familys_training_dag(tmp_path: Path) -> None:
    """airflow/render_monitor_dags.py (generate_dags.sh calls it): valid Python, the ids of the monitor and of the
    training DAG it triggers, the inference input it hands each inbox file to, and the template settings."""
    import sys

    render = REPO_ROOT / "airflow" / "render_monitor_dags.py"
    subprocess.run(
        [sys.executable, str(render), "--env", ENV, "--target", str(tmp_path), "--params", "retries=0,monitor_schedule=*/15 * * * *"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    for family, input_param in (("cnn", "images_path"), ("rnn", "sentences_path")):
        path = tmp_path / f"dlflow_{ENV}_monitor_{family}_dag.py"
        source = path.read_text()
        compile(source, str(path), "exec")
        module = _module(path)
        assert _constant(module, "DAG_ID") == path.name.removesuffix("_dag.py")
        assert _constant(module, "TRAINING_DAG_ID") == f"dlflow_{ENV}_{family}"  # kedro-airflow's DAG of the family
        assert _constant(module, "INPUT_PARAM") == input_param and _constant(module, "KEDRO_ENV") == ENV
        assert 'schedule="*/15 * * * *"' in source and "retries=0," in source
        assert f'or "{REPO_ROOT}" or Path.cwd()' in source  # the checkout, unless DLFLOW_PROJECT_PATH says otherwise
        assert "Connection.get(MLFLOW_CONN_ID)" in source  # the same login helpers as the training DAGs
        assert '"monitor_run_id": "{{ run_id }}"' in source  # an Airflow template, left for Airflow to render
    local = tmp_path / "local"
    subprocess.run([sys.executable, str(render), "--target", str(local), "--families", "cnn"], check=True, capture_output=True)
    (only,) = local.glob("*_dag.py")
    assert only.name == "dlflow_monitor_cnn_dag.py" and 'schedule="@hourly"' in only.read_text()
    assert _constant(_module(only), "TRAINING_DAG_ID") == "dlflow_cnn"
