"""The promotion gate against a real MLflow model registry (SQLite store in tmp_path)."""

from __future__ import annotations

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from dlflow.registry import CHALLENGER, CHAMPION, apply_decision, current_champion, decide_promotion

NAME = "gate-test"


@pytest.fixture
def client(tmp_path):
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    client = MlflowClient()
    client.create_registered_model(NAME)
    (tmp_path / "model").mkdir()
    yield client
    mlflow.set_tracking_uri(previous)


def new_version(client: MlflowClient, tmp_path, value: float, digest: str = "d1") -> str:
    version = str(client.create_model_version(NAME, source=str(tmp_path / "model")).version)
    for key, tag in {"metric": "test_accuracy", "metric_value": str(value), "test_data_digest": digest}.items():
        client.set_model_version_tag(NAME, version, key, tag)
    return version


def gate(client: MlflowClient, tmp_path, value: float, digest: str = "d1", **rules) -> tuple[str, str]:
    version = new_version(client, tmp_path, value, digest)
    decision = decide_promotion(
        current_champion(client, NAME), metric="test_accuracy", value=value, test_data_digest=digest, **rules
    )
    apply_decision(client, NAME, version, decision)
    return version, decision.alias


def aliases(client: MlflowClient) -> dict[str, str]:
    return {alias: str(version) for alias, version in client.get_registered_model(NAME).aliases.items()}


def test_first_version_becomes_champion(client, tmp_path):
    assert current_champion(client, NAME) is None
    assert gate(client, tmp_path, 0.90) == ("1", CHAMPION)
    assert aliases(client) == {"champion": "1"}


def test_worse_model_is_refused_and_becomes_challenger(client, tmp_path):
    gate(client, tmp_path, 0.90)
    assert gate(client, tmp_path, 0.85) == ("2", CHALLENGER)
    assert aliases(client) == {"champion": "1", "challenger": "2"}
    reason = client.get_model_version(NAME, "2").tags["gate_reason"]
    assert "not promoted" in reason and "0.8500" in reason and "0.9000" in reason


def test_equal_or_better_model_is_promoted(client, tmp_path):
    gate(client, tmp_path, 0.90)
    assert gate(client, tmp_path, 0.90) == ("2", CHAMPION)
    assert gate(client, tmp_path, 0.91) == ("3", CHAMPION)
    assert aliases(client)["champion"] == "3"


def test_minimum_improvement_is_required_when_set(client, tmp_path):
    gate(client, tmp_path, 0.90)
    assert gate(client, tmp_path, 0.905, min_improvement=0.01)[1] == CHALLENGER


def test_lower_is_better_metrics(client, tmp_path):
    gate(client, tmp_path, 0.30)
    assert gate(client, tmp_path, 0.25, greater_is_better=False)[1] == CHAMPION


def test_different_test_set_is_not_comparable(client, tmp_path):
    gate(client, tmp_path, 0.80, digest="full-test-set")
    version, alias = gate(client, tmp_path, 0.99, digest="tiny-subset")
    assert alias == CHALLENGER
    assert "not comparable" in client.get_model_version(NAME, version).tags["gate_reason"]
    assert aliases(client)["champion"] == "1"
