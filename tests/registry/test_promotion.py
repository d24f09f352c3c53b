"""The promotion gate: pure rules, the replay, the alias audit, and concurrent writers against a
real MLflow model registry (SQLite store in tmp_path)."""

from __future__ import annotations

import json
import multiprocessing
from datetime import datetime

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from dlflow.config import PromotionParams, PromotionRules
from dlflow.registry.promotion import (
    CHALLENGER,
    CHAMPION,
    GateInput,
    alias_history,
    converge_aliases,
    current_champion,
    decide_promotion,
    gate_input,
    gate_steps,
    gate_tags,
    record_alias_move,
    record_decision,
    register_version,
    replay,
    step_for,
    target_aliases,
)

NAME = "gate-test"
RULES = PromotionRules(metric="test_accuracy", max_class_drop=0.02)


def per_class(**recalls: float) -> dict[str, dict[str, float]]:
    return {name: {"precision": 0.9, "recall": r, "f1": 0.9} for name, r in recalls.items()}


def side(version: str, value: float | None, digest: str = "d1", classes=None, metric: str = "test_accuracy", rules=RULES) -> GateInput:
    return GateInput(version, metric, value, digest, classes, rules)


# ----------------------------------------------------------------------------- decide_promotion (pure)


def test_first_version_is_promoted():
    decision = decide_promotion(side("1", 0.5), None, RULES)
    assert decision.promoted and decision.alias == CHAMPION and decision.rule == "no_champion"


def test_worse_headline_metric_is_refused_by_min_improvement():
    decision = decide_promotion(side("2", 0.85), side("1", 0.90), RULES)
    assert not decision.promoted and decision.alias == CHALLENGER and decision.rule == "min_improvement"
    assert decision.reason.startswith("not promoted (rule min_improvement)")
    assert "0.8500" in decision.reason and "0.9000" in decision.reason and "v1" in decision.reason


def test_equal_or_better_is_promoted_and_min_improvement_is_required_when_set():
    assert decide_promotion(side("2", 0.90), side("1", 0.90), RULES).promoted
    strict = RULES.model_copy(update={"min_improvement": 0.01})
    assert not decide_promotion(side("2", 0.905), side("1", 0.90), strict).promoted
    assert decide_promotion(side("2", 0.91), side("1", 0.90), strict).promoted


def test_lower_is_better_metrics():
    rules = RULES.model_copy(update={"greater_is_better": False})
    assert decide_promotion(side("2", 0.25), side("1", 0.30), rules).promoted
    assert not decide_promotion(side("2", 0.35), side("1", 0.30), rules).promoted


def test_different_test_set_is_not_comparable():
    decision = decide_promotion(side("2", 0.99, "tiny"), side("1", 0.80, "full"), RULES)
    assert not decision.promoted and decision.rule == "test_data" and "not comparable" in decision.reason


def test_champion_without_the_metric_is_kept():
    decision = decide_promotion(side("2", 0.99), side("1", 0.5, metric="test_macro_f1"), RULES)
    assert not decision.promoted and decision.rule == "metric"


def test_a_class_dropping_more_than_allowed_blocks_a_better_model():
    champion = side("1", 0.90, classes=per_class(Shirt=0.70, Bag=0.95))
    candidate = side("2", 0.93, classes=per_class(Shirt=0.65, Bag=0.99))
    decision = decide_promotion(candidate, champion, RULES)
    assert not decision.promoted and decision.rule == "max_class_drop"
    assert "'Shirt'" in decision.reason and "0.7000" in decision.reason and "0.6500" in decision.reason
    assert "max_class_drop 0.02" in decision.reason


def test_a_drop_within_the_limit_passes_and_the_reason_says_so():
    champion = side("1", 0.90, classes=per_class(Shirt=0.70, Bag=0.95))
    candidate = side("2", 0.93, classes=per_class(Shirt=0.68, Bag=0.99))
    decision = decide_promotion(candidate, champion, RULES)
    assert decision.promoted and decision.rule == "all_rules"
    assert "largest per-class drop" in decision.reason and "'Shirt'" in decision.reason


def test_per_class_rule_off_or_not_applicable():
    champion = side("1", 0.90, classes=per_class(Shirt=0.70))
    candidate = side("2", 0.93, classes=per_class(Shirt=0.10))
    off = RULES.model_copy(update={"max_class_drop": None})
    assert "per-class rule off" in decide_promotion(candidate, champion, off).reason
    no_classes = decide_promotion(side("2", 0.93), side("1", 0.90), RULES)  # e.g. Word2Vec
    assert no_classes.promoted and "not applicable" in no_classes.reason
    f1_rules = RULES.model_copy(update={"class_metric": "f1"})  # f1 did not move
    assert decide_promotion(candidate, champion, f1_rules).promoted


def test_family_overrides_replace_only_the_keys_given():
    params = PromotionParams.model_validate(
        {"default": {"max_class_drop": 0.02, "min_improvement": 0.001},
         "families": {"word2vec": {"metric": "analogy_accuracy"}, "rnn": {"max_class_drop": None}}}
    )
    assert params.rules_for("cnn") == params.default
    assert params.rules_for("word2vec").metric == "analogy_accuracy"
    assert params.rules_for("word2vec").max_class_drop == 0.02
    assert params.rules_for("rnn").max_class_drop is None and params.rules_for("rnn").min_improvement == 0.001
    with pytest.raises(ValueError):
        PromotionParams.model_validate({"default": {"max_class_drop": -1}})
    with pytest.raises(ValueError):
        PromotionParams.model_validate({"default": {"metric_typo": "x"}})


# ----------------------------------------------------------------------------- replay (pure)


def test_replay_judges_in_version_order_each_by_its_own_rules():
    strict = RULES.model_copy(update={"min_improvement": 0.05})
    steps = replay([side("3", 0.93, rules=strict), side("1", 0.90), side("2", 0.80), side("4", 0.96, rules=strict)])
    assert [(s.version, s.decision.alias) for s in steps] == [("1", CHAMPION), ("2", CHALLENGER), ("3", CHALLENGER), ("4", CHAMPION)]
    assert steps[3].champion.version == "1"
    assert target_aliases(steps) == {CHAMPION: "4", CHALLENGER: "3"}


def test_replay_keeps_recorded_decisions_and_skips_versions_outside_the_gate():
    legacy = GateInput("1", "test_accuracy", 0.5, "d1", recorded=True, recorded_reason="no champion yet")
    outside = GateInput("2", "", None, None)  # registered by hand, never gated
    steps = replay([legacy, outside, side("3", 0.6)])
    assert [s.version for s in steps] == ["1", "3"]
    assert steps[0].decision.rule == "recorded" and steps[1].champion.version == "1"


# ----------------------------------------------------------------------------- against a real registry


@pytest.fixture
def client(tmp_path):
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_experiment("registry-tests")  # an experiment id set by an earlier test means nothing here
    client = MlflowClient()
    client.create_registered_model(NAME)
    (tmp_path / "model").mkdir()
    yield client
    mlflow.set_tracking_uri(previous)


def register(tmp_path, value: float, digest: str = "d1", classes=None, rules: PromotionRules = RULES) -> str:
    tags = gate_tags(metric="test_accuracy", value=value, test_data_digest=digest, rules=rules, per_class=classes)
    return str(register_version(str(tmp_path / "model"), NAME, tags).version)


def gate(tmp_path, value: float, digest: str = "d1", classes=None, rules: PromotionRules = RULES) -> tuple[str, str]:
    """What the registration node does: register with the gate tags, record the decision, move aliases."""
    client = MlflowClient()
    version = register(tmp_path, value, digest, classes, rules)
    step = step_for(gate_steps(client, NAME), version)
    record_decision(client, NAME, step)
    converge_aliases(client, NAME, gate_of_version=version)
    return version, step.decision.alias


def aliases(client: MlflowClient) -> dict[str, str]:
    return {alias: str(version) for alias, version in client.get_registered_model(NAME).aliases.items()}


def test_first_version_becomes_champion(client, tmp_path):
    assert current_champion(client, NAME) is None
    assert gate(tmp_path, 0.90) == ("1", CHAMPION)
    assert aliases(client) == {"champion": "1"}
    tags = client.get_model_version(NAME, "1").tags
    assert tags["gate_decision"] == "promoted" and tags["gate_compared_with"] == "none"
    assert json.loads(tags["gate_rules"])["max_class_drop"] == 0.02


def test_worse_model_is_refused_and_becomes_challenger(client, tmp_path):
    gate(tmp_path, 0.90)
    assert gate(tmp_path, 0.85) == ("2", CHALLENGER)
    assert aliases(client) == {"champion": "1", "challenger": "2"}
    tags = client.get_model_version(NAME, "2").tags
    assert tags["gate_decision"] == "not_promoted" and tags["gate_rule"] == "min_improvement"
    assert "not promoted" in tags["gate_reason"] and "0.8500" in tags["gate_reason"] and "0.9000" in tags["gate_reason"]


def test_per_class_drop_is_judged_from_the_version_tags(client, tmp_path):
    gate(tmp_path, 0.90, classes=per_class(Shirt=0.70, Bag=0.95))
    assert gate(tmp_path, 0.95, classes=per_class(Shirt=0.60, Bag=0.99)) == ("2", CHALLENGER)
    assert client.get_model_version(NAME, "2").tags["gate_rule"] == "max_class_drop"
    assert gate(tmp_path, 0.91, classes=per_class(Shirt=0.69, Bag=0.99)) == ("3", CHAMPION)


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
    ]
    for move in history:
        assert "@" in move.by
        assert datetime.fromisoformat(move.at).utcoffset().total_seconds() == 0
    assert history[2].reason.startswith("promoted (all rules passed)") and "0.9500" in history[2].reason
    assert history[2].gate_of_version == "3"
    # the version that received the alias carries the same record
    assert history[2].key in client.get_model_version(NAME, "3").tags


def test_a_stale_alias_is_put_back_and_the_correction_is_audited(client, tmp_path):
    gate(tmp_path, 0.90)
    gate(tmp_path, 0.95)
    # a writer that decided before v2 existed lands its (recorded) write late
    client.set_registered_model_alias(NAME, CHAMPION, "1")
    record_alias_move(client, NAME, CHAMPION, "2", "1", "promoted (no champion yet)", "1")
    version, _ = gate(tmp_path, 0.50)
    assert aliases(client) == {"champion": "2", "challenger": version}
    last_champion_move = [m for m in alias_history(client, NAME) if m.alias == CHAMPION][-1]
    assert (last_champion_move.from_version, last_champion_move.to_version) == ("1", "2")
    assert last_champion_move.reason.startswith(f"re-applied by the gate of v{version}")


def test_versions_from_the_old_gate_replay_as_recorded(client, tmp_path):
    for value, decision in ((0.90, "champion"), (0.85, "challenger")):
        version = str(client.create_model_version(NAME, source=str(tmp_path / "model")).version)
        for key, tag in {"metric": "test_accuracy", "metric_value": str(value), "test_data_digest": "d1",
                         "gate_decision": decision, "gate_reason": "old gate"}.items():
            client.set_model_version_tag(NAME, version, key, tag)
    client.set_registered_model_alias(NAME, CHAMPION, "1")
    client.set_registered_model_alias(NAME, CHALLENGER, "2")
    assert gate(tmp_path, 0.88) == ("3", CHALLENGER)
    assert gate(tmp_path, 0.91) == ("4", CHAMPION)
    assert aliases(client) == {"champion": "4", "challenger": "3"}


# ----------------------------------------------------------------------------- concurrent writers

WRITERS = 6
# Values chosen so that the order matters: judged in another order, another version would win.
VALUES = [0.80, 0.86, 0.84, 0.90, 0.905, 0.88]
CONCURRENT_RULES = PromotionRules(metric="test_accuracy", min_improvement=0.01)


def _writer(uri: str, model_dir: str, value: float, barrier) -> tuple[str, str]:
    mlflow.set_tracking_uri(uri)
    client = MlflowClient()
    tags = gate_tags(metric="test_accuracy", value=value, test_data_digest="d1", rules=CONCURRENT_RULES)
    barrier.wait()  # every process registers at the same moment
    version = str(register_version(model_dir, NAME, tags).version)
    step = step_for(gate_steps(client, NAME), version)
    record_decision(client, NAME, step)
    converge_aliases(client, NAME, gate_of_version=version)
    return version, step.decision.label


def test_concurrent_registrations_leave_one_champion_the_rules_choose(client, tmp_path):
    uri = mlflow.get_tracking_uri()
    context = multiprocessing.get_context("spawn")
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
    assert list(final.values()).count(last_promoted) == 1
    # each version's decision tag is the serial outcome: history that no alias contradicts
    assert {v: mv.tags["gate_decision"] for v, mv in versions.items()} == expected
    assert dict(results) == expected
    # the audit ends where the aliases are, and never repeats a move
    history = alias_history(client, NAME)
    assert [m for m in history if m.alias == CHAMPION][-1].to_version == last_promoted
    assert [m for m in history if m.alias == CHALLENGER][-1].to_version == last_refused
    for alias in (CHAMPION, CHALLENGER):
        targets = [m.to_version for m in history if m.alias == alias]
        assert all(a != b for a, b in zip(targets, targets[1:]))
    assert len(alias_history(client, NAME, collapse=False)) >= len(history)
    assert all(gate_input(mv).rules == CONCURRENT_RULES for mv in versions.values())


# ----------------------------------------------------------------------------- the node, for a family without classes


def test_a_family_without_classes_or_curves_registers_and_reports_what_is_missing(client, tmp_path):
    """Word2Vec's shape: scores and a nested report, no per-class metrics, no predictions, no epochs."""
    import numpy as np
    import pandas as pd

    from dlflow.pipelines.registration.nodes import register_model
    from dlflow.serving.word_vectors import WordVectorsModel

    words = ["good", "bad", "movie"]
    package = {
        "model": WordVectorsModel(words, np.eye(3, dtype=np.float32)),
        "input_example": pd.DataFrame({"word": words[:2]}),
        "predict_params": {"query": "most_similar", "topn": 2},
        "test_data_digest": "bench",
    }
    promotion = {"default": {"max_class_drop": 0.02}, "families": {"word2vec": {"metric": "analogy_accuracy"}}}
    records = []
    for value in (0.30, 0.25):
        with mlflow.start_run():
            records.append(register_model(
                package, {"analogy_accuracy": value, "wordsim353_spearman": 0.4},
                {"analogy": {"accuracy": value}}, {"model_name": NAME}, promotion,
                family="word2vec", learning_curves=False,
            ))
    assert [r["gate_decision"] for r in records] == ["promoted", "not_promoted"]
    assert records[1]["aliases"] == {"champion": "1", "challenger": "2"}
    report = mlflow.artifacts.load_text(client.get_model_version(NAME, "2").tags["promotion_report"])
    assert "champion v1" in report and "0.3000" in report and "0.2500" in report and "-0.0500" in report
    assert "Per-class metrics are not available" in report and "No learning curves available" in report
    assert [(m.alias, m.to_version) for m in alias_history(client, NAME)] == [("champion", "1"), ("challenger", "2")]


def test_the_shipped_rules_are_valid_and_checked_before_any_work():
    import yaml

    from dlflow.config import validate_parameters
    from tests.conftest import REPO_ROOT

    shipped = yaml.safe_load((REPO_ROOT / "conf" / "base" / "parameters_promotion.yml").read_text())
    validate_parameters(shipped)  # what ParameterValidationHook runs after the context is created
    assert PromotionParams.model_validate(shipped["promotion"]).rules_for("word2vec").metric == "analogy_accuracy"
    with pytest.raises(ValueError, match=r"promotion\.default\.max_class_drop"):
        validate_parameters({"promotion": {"default": {"max_class_drop": 5}}})
