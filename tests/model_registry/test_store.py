"""The gate against a real MLflow model registry (SQLite store in tmp_path): the version tags, the
aliases, their audit, the registration lock, and concurrent registrations."""

from __future__ import annotations

import json
import multiprocessing
import threading
import time
from datetime import datetime

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from dlflow.config import PromotionRules
from dlflow.model_registry.lock import LOCK_SUFFIX, registration_lock
from dlflow.model_registry.promotion import CHALLENGER, CHAMPION, GateInput
from dlflow.model_registry.store import (
    alias_history,
    gate_input,
    register_and_gate,
)
from tests.conftest import new_mlflow_store
from tests.mlflow_queries import expected_aliases

NAME = "gate-test"
RULES = PromotionRules(metric="test_accuracy", max_class_drop=0.02)


def per_class(**recalls: float) -> dict[str, dict[str, float]]:
    return {name: {"precision": 0.9, "recall": r, "f1": 0.9} for name, r in recalls.items()}


@pytest.fixture
def client(tmp_path, empty_mlflow_store):
    """A registry of its own for each test: a copy of the session's empty SQLite store (migrations run once)."""
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(new_mlflow_store(empty_mlflow_store, tmp_path / "mlflow.db", tmp_path / "mlruns" / "0"))
    mlflow.set_experiment("registry-tests")  # an experiment id set by an earlier test means nothing here
    client = MlflowClient()
    client.create_registered_model(NAME)
    (tmp_path / "model").mkdir()
    yield client
    mlflow.set_tracking_uri(previous)


def gate(tmp_path, value: float, digest: str = "d1", classes=None, rules: PromotionRules = RULES) -> tuple[str, str]:
    candidate = GateInput(None, "test_accuracy", value, digest, classes)
    version, decision, _ = register_and_gate(MlflowClient(), str(tmp_path / "model"), NAME, candidate, rules)
    return version, decision.alias


def aliases(client: MlflowClient) -> dict[str, str]:
    return {alias: str(version) for alias, version in client.get_registered_model(NAME).aliases.items()}


def test_first_version_becomes_champion(client, tmp_path):
    assert gate(tmp_path, 0.90) == ("1", CHAMPION)
    assert aliases(client) == {"champion": "1"}
    tags = client.get_model_version(NAME, "1").tags
    assert tags["gate_decision"] == "promoted" and tags["gate_compared_with"] == "none"
    assert json.loads(tags["gate_rules"])["max_class_drop"] == 0.02
    assert NAME + LOCK_SUFFIX not in {m.name for m in client.search_registered_models()}  # released


def test_worse_model_is_refused_and_becomes_challenger(client, tmp_path):
    gate(tmp_path, 0.90)
    assert gate(tmp_path, 0.85) == ("2", CHALLENGER)
    assert aliases(client) == {"champion": "1", "challenger": "2"}
    tags = client.get_model_version(NAME, "2").tags
    assert tags["gate_decision"] == "not_promoted" and tags["gate_rule"] == "min_improvement"
    assert tags["gate_compared_with"] == "1"
    assert "not promoted" in tags["gate_reason"] and "0.8500" in tags["gate_reason"] and "0.9000" in tags["gate_reason"]


def test_per_class_drop_is_judged_from_the_champions_tags(client, tmp_path):
    gate(tmp_path, 0.90, classes=per_class(Shirt=0.70, Bag=0.95))
    assert gate(tmp_path, 0.95, classes=per_class(Shirt=0.60, Bag=0.99)) == ("2", CHALLENGER)
    assert client.get_model_version(NAME, "2").tags["gate_rule"] == "max_class_drop"
    assert gate(tmp_path, 0.91, classes=per_class(Shirt=0.69, Bag=0.99)) == ("3", CHAMPION)
    assert gate_input(client.get_model_version(NAME, "3")).per_class["Shirt"]["recall"] == 0.69


def test_different_test_set_is_not_comparable(client, tmp_path):
    gate(tmp_path, 0.80, digest="full-test-set")
    version, alias = gate(tmp_path, 0.99, digest="tiny-subset")
    assert alias == CHALLENGER
    assert "not comparable" in client.get_model_version(NAME, version).tags["gate_reason"]
    assert aliases(client)["champion"] == "1"


def test_every_alias_move_is_recorded_with_who_when_from_to_and_why(client, tmp_path):
    gate(tmp_path, 0.90)
    gate(tmp_path, 0.85)
    gate(tmp_path, 0.95)
    history = alias_history(client, NAME)
    assert [(m.alias, m.from_version, m.to_version) for m in history] == [
        (CHAMPION, None, "1"), (CHALLENGER, None, "2"), (CHAMPION, "1", "3"),
    ]  # fmt: skip
    for move in history:
        assert "@" in move.by
        assert datetime.fromisoformat(move.at).utcoffset().total_seconds() == 0
    assert history[2].reason.startswith("promoted (all rules passed)") and "0.9500" in history[2].reason
    assert history[2].gate_of_version == "3"
    # the version that received the alias carries the same record
    assert history[2].key in client.get_model_version(NAME, "3").tags


def test_an_alias_moved_by_hand_is_put_back_and_the_correction_is_audited(client, tmp_path):
    gate(tmp_path, 0.90)
    gate(tmp_path, 0.95)
    client.set_registered_model_alias(NAME, CHAMPION, "1")  # by hand, outside the gate
    version, _ = gate(tmp_path, 0.50)
    assert aliases(client) == {"champion": "2", "challenger": version} == expected_aliases(client, NAME)
    last_champion_move = [m for m in alias_history(client, NAME) if m.alias == CHAMPION][-1]
    assert (last_champion_move.from_version, last_champion_move.to_version) == ("1", "2")
    assert last_champion_move.reason.startswith(f"re-applied by the gate of v{version}")


def test_versions_outside_the_gate_are_neither_judged_against_nor_aliased(client, tmp_path):
    gate(tmp_path, 0.90)
    client.create_model_version(NAME, source=str(tmp_path / "model"))  # v2, registered by hand
    assert gate(tmp_path, 0.80) == ("3", CHALLENGER)
    assert client.get_model_version(NAME, "3").tags["gate_compared_with"] == "1"
    assert expected_aliases(client, NAME) == {"champion": "1", "challenger": "3"} == aliases(client)


# ----------------------------------------------------------------------------- the registration lock


def test_the_lock_admits_one_holder_at_a_time_and_is_released_on_errors(client):
    order = []

    def second():
        with registration_lock(MlflowClient(), NAME, poll_s=0.05):
            order.append("second")

    with pytest.raises(RuntimeError):
        with registration_lock(client, NAME):
            waiter = threading.Thread(target=second)
            waiter.start()
            time.sleep(0.5)  # the waiter polls meanwhile
            order.append("first")
            raise RuntimeError("the body failed")
    waiter.join(timeout=30)
    assert order == ["first", "second"]
    assert NAME + LOCK_SUFFIX not in {m.name for m in client.search_registered_models()}


def test_a_lock_left_by_a_dead_holder_is_broken_after_its_lease(client):
    client.create_registered_model(NAME + LOCK_SUFFIX, description="held by a process that was killed")
    started = time.monotonic()
    with registration_lock(client, NAME, lease_s=0.5, poll_s=0.05):
        held = client.get_registered_model(NAME + LOCK_SUFFIX).description
    assert 0.5 <= time.monotonic() - started < 30
    assert held.startswith("held by ") and "killed" not in held


# ----------------------------------------------------------------------------- concurrent writers

WRITERS = 6
# Values chosen so that the order matters: judged in another order, another version would win.
VALUES = [0.80, 0.86, 0.84, 0.90, 0.905, 0.88]
CONCURRENT_RULES = PromotionRules(metric="test_accuracy", min_improvement=0.01)


def _writer(uri: str, model_dir: str, value: float, barrier) -> tuple[str, str]:
    mlflow.set_tracking_uri(uri)
    candidate = GateInput(None, "test_accuracy", value, "d1")
    barrier.wait()  # every process registers at the same moment
    version, decision, _ = register_and_gate(MlflowClient(), model_dir, NAME, candidate, CONCURRENT_RULES)
    return version, decision.label


def test_concurrent_registrations_leave_one_champion_the_rules_choose(client, tmp_path):
    uri = mlflow.get_tracking_uri()
    # Fresh processes, none sharing this one's database connections: forked from a server that imported this
    # module (MLflow, the registry code) once, rather than six interpreters each importing it all again.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    barrier = context.Manager().Barrier(WRITERS)
    with context.Pool(WRITERS) as pool:
        results = pool.starmap(_writer, [(uri, str(tmp_path / "model"), v, barrier) for v in VALUES])

    versions = {str(v.version): v for v in client.search_model_versions(f"name = '{NAME}'")}
    assert sorted(int(v) for v in versions) == list(range(1, WRITERS + 1))
    assert sorted(int(v) for v, _ in results) == list(range(1, WRITERS + 1))

    # what serial registrations in version order would have chosen, judged independently here
    champion, expected = None, {}
    for number in range(1, WRITERS + 1):
        mv = versions[str(number)]
        value = float(mv.tags["metric_value"])
        promoted = champion is None or value - champion >= CONCURRENT_RULES.min_improvement - 1e-12
        expected[str(number)] = "promoted" if promoted else "not_promoted"
        champion = value if promoted else champion
    last_promoted = max((v for v, d in expected.items() if d == "promoted"), key=int)
    last_refused = max((v for v, d in expected.items() if d == "not_promoted"), key=int, default=None)

    final = aliases(client)
    assert final[CHAMPION] == last_promoted
    assert final.get(CHALLENGER) == last_refused
    assert final == expected_aliases(client, NAME)
    # each version's decision tag is the serial outcome: history that no alias contradicts
    assert {v: mv.tags["gate_decision"] for v, mv in versions.items()} == expected
    assert dict(results) == expected
    # the audit ends where the aliases are, and never repeats a move
    history = alias_history(client, NAME)
    for alias in (CHAMPION, CHALLENGER):
        targets = [m.to_version for m in history if m.alias == alias]
        assert targets[-1] == final[alias]
        assert all(a != b for a, b in zip(targets, targets[1:]))
    assert all(m.gate_of_version == m.to_version for m in history)  # each move made by its own registration
