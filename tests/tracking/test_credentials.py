"""Credentials routes, redaction and outage detection, without a server (the server tests: test_team_server.py)."""

from __future__ import annotations

import os

import pytest
import requests
from mlflow.exceptions import MlflowException

from dlflow.tracking.credentials import (
    PASSWORD_ENV,
    USERNAME_ENV,
    TrackingCredentialsError,
    export_kedro_credentials,
    login,
    redact,
    redact_uri,
)
from dlflow.tracking.outage import TrackingServerLost, is_tracking_outage, retry_settings
from dlflow.tracking.server import TrackingServerUnreachable, check_tracking_server, registered_model_names
from tests.tracking.servers import free_port


@pytest.fixture(autouse=True)
def _no_login(monkeypatch):
    """No login in the environment, and whatever a test exports is undone after it."""
    for name in (USERNAME_ENV, PASSWORD_ENV):
        monkeypatch.setenv(name, "recorded")  # so that monkeypatch restores the variable's original state
        monkeypatch.delenv(name)


def test_the_credentials_entry_that_mlflow_yml_names_is_exported_as_mlflow_reads_it():
    credentials = {"mlflow_credentials": {USERNAME_ENV: "trainer", PASSWORD_ENV: "s3cret"}, "other": {"x": "y"}}
    assert export_kedro_credentials(credentials, None) is False  # server.credentials: null
    assert export_kedro_credentials(credentials, "missing") is False  # no conf/local/credentials.yml
    assert login() == (None, None)
    assert export_kedro_credentials(credentials, "mlflow_credentials") is True
    assert login() == ("trainer", "s3cret")


def test_a_malformed_credentials_entry_is_refused_without_showing_a_value():
    with pytest.raises(TrackingCredentialsError, match="sets AWS_SECRET_ACCESS_KEY") as refused:
        export_kedro_credentials({"c": {USERNAME_ENV: "u", "AWS_SECRET_ACCESS_KEY": "value-123"}}, "c")
    assert "value-123" not in str(refused.value)
    with pytest.raises(TrackingCredentialsError, match="must map"):
        export_kedro_credentials({"c": "user:password"}, "c")
    assert USERNAME_ENV not in os.environ


def test_redaction_hides_logins_in_uris_and_the_password(monkeypatch):
    assert redact_uri("https://trainer:s3cret@mlflow.internal/x") == "https://***@mlflow.internal/x"
    assert redact_uri("http://mlflow.internal:5000") == "http://mlflow.internal:5000"
    monkeypatch.setenv(PASSWORD_ENV, "s3cret")
    assert redact("failed for s3cret at postgresql://a:b@db/x") == "failed for *** at postgresql://***@db/x"


def test_an_unreachable_server_is_named_without_the_login_in_its_uri():
    uri = f"http://trainer:s3cret@127.0.0.1:{free_port()}"
    with pytest.raises(TrackingServerUnreachable) as unreachable:
        check_tracking_server(uri, timeout=2, experiment="dlflow/cnn")
    assert "s3cret" not in str(unreachable.value)
    assert "http://***@127.0.0.1:" in str(unreachable.value)


def test_the_models_a_pipeline_registers_come_from_its_registration_parameters():
    params = {
        "cnn": {"registration": {"model_name": "dlflow-cnn", "enabled": True}},
        "rnn": {"registration": {"model_name": "dlflow-rnn", "enabled": False}},
    }
    inputs = ["params:cnn.registration", "params:rnn.registration", "params:cnn.training", "cnn_model"]
    assert registered_model_names(inputs, params) == ["dlflow-cnn"]
    assert registered_model_names(["params:word2vec.registration"], params) == []


def test_an_outage_is_recognised_through_mlflows_wrapping():
    refused = requests.exceptions.ConnectionError("Connection refused")
    try:
        try:
            raise refused
        except requests.exceptions.ConnectionError as error:
            raise MlflowException("API request to http://x/api/2.0/mlflow/runs/log-batch failed") from error
    except MlflowException as wrapped:
        assert is_tracking_outage(wrapped)
    assert is_tracking_outage(MlflowException("... Max retries exceeded with url: ... too many 503 error responses"))
    assert not is_tracking_outage(MlflowException("RESOURCE_DOES_NOT_EXIST: no such run"))
    assert not is_tracking_outage(ValueError("bad parameter"))
    assert issubclass(TrackingServerLost, RuntimeError)


def test_the_retry_settings_name_mlflows_defaults(monkeypatch):
    for name in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "MLFLOW_HTTP_REQUEST_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    assert retry_settings() == (
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES=7, MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR=2, MLFLOW_HTTP_REQUEST_TIMEOUT=120"
    )
    from mlflow import environment_variables as mlflow_env

    assert (mlflow_env.MLFLOW_HTTP_REQUEST_MAX_RETRIES.default, mlflow_env.MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR.default) == (7, 2)
    assert mlflow_env.MLFLOW_HTTP_REQUEST_TIMEOUT.default == 120


def test_a_lost_server_fails_the_node_with_the_way_back_and_no_login(monkeypatch):
    import types

    import mlflow

    from dlflow.tracking.outage import TrackingOutageHook, lost_message

    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri("http://trainer:s3cret@mlflow.internal:5000")
    try:
        message = lost_message("while node 'train_cnn' ran")
        hook, node = TrackingOutageHook(), types.SimpleNamespace(name="train_cnn")
        outage = MlflowException("API request to ... failed: Max retries exceeded with url: /api/2.0/mlflow/runs/log-batch")
        with pytest.raises(TrackingServerLost, match="while node 'train_cnn' ran") as lost:
            hook.on_node_error(error=outage, node=node)
        assert hook.on_node_error(error=ValueError("a bug in the node"), node=node) is None  # other errors pass as they are
    finally:
        mlflow.set_tracking_uri(previous)
    assert "s3cret" not in message and "http://***@mlflow.internal:5000" in message
    assert "run the same command again and it resumes into the same run" in message
    assert lost.value.__cause__ is outage
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "7")
    hook.on_pipeline_error(error=ValueError("a bug in the node"))
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "7"
    hook.on_pipeline_error(error=lost.value)  # kedro-mlflow then marks the run failed with one try, not a second window
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "0"
