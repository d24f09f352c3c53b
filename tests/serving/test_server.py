"""The recommended serving configuration (``dlflow.serving.server``) over real HTTP, and what the model does
for MLflow's scoring server.

The server is ``python -m dlflow.serving.server``'s command (``mlflow models serve`` with two workers, one
compute thread each, no access log) on a free port of 127.0.0.1, serving the small CNN of conftest.py from
its SQLite store; it is started once for the module and always stopped with its workers.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from io import StringIO
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.pyfunc import scoring_server

from dlflow.serving.packaging import png_base64
from dlflow.serving.server import SERVING_ENVIRONMENT, default_workers, main, serving_command
from dlflow.sources.image_table import table_images
from tests.serving.loopback import free_port, invoke, refusal, serving

pytestmark = pytest.mark.timeout(600)

WORKERS = 2
SERVING_FLAG = "_MLFLOW_IS_IN_SERVING_ENVIRONMENT"  # what MLflow's scoring server sets (mlflow.environment_variables)


@pytest.fixture(scope="module")
def model(logged):
    """The logged model loaded in this process, with MLflow pointed at its store."""
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(logged.tracking_uri)
    try:
        yield mlflow.pyfunc.load_model(logged.info.model_uri)
    finally:
        mlflow.set_tracking_uri(previous)


@pytest.fixture(scope="module")
def server(logged, tmp_path_factory) -> Iterator[tuple[str, Path, int]]:
    """The recommended configuration serving the logged model: (URL, its log, the server's process group)."""
    port, log = free_port(), tmp_path_factory.mktemp("server") / "serve.log"
    inherited = {k: v for k, v in os.environ.items() if k not in SERVING_ENVIRONMENT}  # the configuration's own values
    command, env = serving_command(
        logged.info.model_uri, host="127.0.0.1", port=port, workers=WORKERS,
        environment=inherited | {"MLFLOW_TRACKING_URI": logged.tracking_uri},
    )  # fmt: skip
    with serving(command, env, log, port, workers=WORKERS) as (url, process):
        yield url, log, process.pid


def many_images(logged, count: int) -> np.ndarray:
    """``count`` images of the test table, repeated in order as needed: (count, 32, 32, 3) uint8."""
    images = table_images(logged.test)
    return images[np.arange(count) % len(images)]


# ------------------------------------------------------------------------------- the command line


def test_the_command_is_mlflow_models_serve_with_a_worker_per_core_and_one_thread_each() -> None:
    command, env = serving_command("models:/m@champion", host="0.0.0.0", port=5001, environment={"PATH": "/bin"})
    assert command == [sys.executable, "-m", "mlflow", "models", "serve", "-m", "models:/m@champion", "--env-manager", "local",
                       "-h", "0.0.0.0", "-p", "5001", "-w", str(len(os.sched_getaffinity(0)))]  # fmt: skip
    assert default_workers() == len(os.sched_getaffinity(0))
    assert env == {"PATH": "/bin", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "UVICORN_ACCESS_LOG": "false"}

    # what the caller's environment already says wins; --access-log keeps uvicorn's default
    _, env = serving_command("models:/m@champion", workers=3, access_log=True, environment={"OMP_NUM_THREADS": "4"})
    assert env == {"OMP_NUM_THREADS": "4", "MKL_NUM_THREADS": "1"}
    with pytest.raises(ValueError, match="workers must be at least 1, got 0"):
        serving_command("models:/m@champion", workers=0)


def test_python_m_dlflow_serving_server_prints_what_it_runs(capsys) -> None:
    main(["models:/m@champion", "-p", "5009", "-w", "3", "--print"])
    printed = capsys.readouterr().err.strip()
    added = " ".join(f"{k}={os.environ.get(k, v)}" for k, v in SERVING_ENVIRONMENT.items())  # a variable already set wins
    assert printed.startswith(added) and printed.endswith(
        "mlflow models serve -m models:/m@champion --env-manager local -h 127.0.0.1 -p 5009 -w 3"
    ), printed
    with pytest.raises(SystemExit):
        main(["models:/m@champion", "-w", "0", "--print"])
    assert "--workers must be at least 1, got 0" in capsys.readouterr().err


# ------------------------------------------------------------ the answer inside MLflow's scoring server


def test_in_mlflows_scoring_server_predict_answers_the_tables_records(model, logged, monkeypatch) -> None:
    images = many_images(logged, 70)
    table = model.predict(images)
    assert isinstance(table, pd.DataFrame) and len(table) == 70

    monkeypatch.setenv(SERVING_FLAG, "false")  # restored when the test ends: init() below sets it for the process
    scoring_server.init(model)  # what `mlflow models serve` does to the loaded model before the first request
    assert os.environ[SERVING_FLAG] == "true"
    records = model.predict(images)
    assert isinstance(records, list) and records == table.to_dict(orient="records")
    assert [list(r) for r in records[:1]] == [list(table.columns)]  # the columns, in order
    served, expected = StringIO(), StringIO()
    scoring_server.predictions_to_json(records, served)
    scoring_server.predictions_to_json(table, expected)
    assert served.getvalue() == expected.getvalue()  # byte for byte the JSON the table would have given

    # monitoring answers stay a table (they carry the signals and features too)
    monitored = model.predict(images[:3], params={"monitoring": True})
    assert isinstance(monitored, pd.DataFrame) and "feature_0" in monitored.columns


def test_answers_do_not_depend_on_how_the_images_are_batched(model, logged) -> None:
    images = many_images(logged, 130)
    whole = model.predict(images)
    servable = model.unwrap_python_model()
    size = servable.config["batch_size"]
    servable.config["batch_size"] = 48  # three batches, each with its mirror images in one pass
    try:
        batched = model.predict(images)
    finally:
        servable.config["batch_size"] = size
    assert batched["prediction"].tolist() == whole["prediction"].tolist()
    pd.testing.assert_frame_equal(batched, whole, atol=1e-6)


# ---------------------------------------------------------------------------------- over real HTTP


@pytest.mark.e2e  # a model server of its own (mlflow models serve)
def test_many_images_in_one_request_get_the_answers_of_predict_in_process(server, model, logged) -> None:
    url, _, _ = server
    images = many_images(logged, 130)
    expected = model.predict(images)
    for body in (
        {"inputs": images.tolist()},  # (N, 32, 32, 3) pixel values
        {"inputs": images.reshape(len(images), -1).tolist()},  # one flattened image per row
        {"inputs": {"image": [png_base64(image) for image in images[:64]]}},  # encoded files
    ):
        answers = pd.DataFrame(invoke(url, body))
        wanted = expected.head(len(answers))
        assert len(answers) == (64 if isinstance(body["inputs"], dict) else 130)
        assert list(answers.columns) == list(expected.columns)
        assert answers["prediction"].tolist() == wanted["prediction"].tolist()
        assert answers["label_name"].tolist() == wanted["label_name"].tolist()
        probabilities = [c for c in expected.columns if c.startswith("p")]
        np.testing.assert_allclose(answers[probabilities].to_numpy(float), wanted[probabilities].to_numpy(float), atol=1e-5)


@pytest.mark.e2e  # a model server of its own (mlflow models serve)
def test_bad_input_is_still_refused_with_400_naming_the_row(server, logged) -> None:
    url, _, _ = server
    images = many_images(logged, 3).astype(float)
    images[2, 5, 6, 1] = np.nan
    message = refusal(url, json.dumps({"inputs": images.tolist()}))  # NaN: Python's JSON extension, as clients send it
    assert "row 2: pixel value nan at pixel row 5, column 6, channel 1" in message and "0-255" in message
    assert "shape (2, 28, 28)" in refusal(url, {"inputs": np.zeros((2, 28, 28)).tolist()})
    message = refusal(url, {"inputs": {"image": [png_base64(many_images(logged, 1)[0]), "%%%"]}})
    assert "row 1: not base64" in message and "row 0" not in message


@pytest.mark.e2e  # a model server of its own (mlflow models serve)
def test_the_configuration_is_applied_to_every_worker(server) -> None:
    url, log, group = server
    invoke(url, {"inputs": np.zeros((1, 32, 32, 3)).tolist()})
    workers = [pid for pid in _group(group) if b"multiprocessing.spawn" in _read(f"/proc/{pid}/cmdline")]
    assert len(workers) == WORKERS, {pid: _read(f"/proc/{pid}/cmdline") for pid in _group(group)}
    for pid in workers:
        environment = dict(line.split("=", 1) for line in _read(f"/proc/{pid}/environ").decode().split("\0") if "=" in line)
        assert {k: environment.get(k) for k in SERVING_ENVIRONMENT} == SERVING_ENVIRONMENT, pid
    assert log.read_text().count("Application startup complete") == WORKERS
    assert "POST /invocations" not in log.read_text()  # no access log


def _group(group: int) -> list[int]:
    """The live processes of process group ``group``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[2]) == group:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def _read(path: str) -> bytes:
    return Path(path).read_bytes()
