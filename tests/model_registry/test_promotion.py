"""The promotion gate's rules, without MLflow: each decision and the rule that made it."""

from __future__ import annotations

import pytest

from dlflow.config import PromotionParams, PromotionRules
from dlflow.model_registry.promotion import (
    CHALLENGER,
    CHAMPION,
    GateInput,
    decide_promotion,
    target_aliases,
)

RULES = PromotionRules(metric="test_accuracy", max_class_drop=0.02)


def per_class(**recalls: float) -> dict[str, dict[str, float]]:
    return {name: {"precision": 0.9, "recall": r, "f1": 0.9} for name, r in recalls.items()}


def side(version: str, value: float | None, digest: str = "d1", classes=None, metric: str = "test_accuracy") -> GateInput:
    return GateInput(version, metric, value, digest, classes)


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
        {
            "default": {"max_class_drop": 0.02, "min_improvement": 0.001},
            "families": {"word2vec": {"metric": "analogy_accuracy"}, "rnn": {"max_class_drop": None}},
        }
    )
    assert params.rules_for("cnn") == params.default
    assert params.rules_for("word2vec").metric == "analogy_accuracy"
    assert params.rules_for("word2vec").max_class_drop == 0.02
    assert params.rules_for("rnn").max_class_drop is None and params.rules_for("rnn").min_improvement == 0.001
    with pytest.raises(ValueError):
        PromotionParams.model_validate({"default": {"max_class_drop": -1}})
    with pytest.raises(ValueError):
        PromotionParams.model_validate({"default": {"metric_typo": "x"}})


# ----------------------------------------------------------------------------- target_aliases (pure)


def test_aliases_go_to_the_last_promoted_and_the_last_refused_version():
    decided = [("1", True), ("2", False), ("10", True), ("3", False), ("9", True)]
    assert target_aliases(decided) == {CHAMPION: "10", CHALLENGER: "3"}
    assert target_aliases([("1", True)]) == {CHAMPION: "1"}
    assert target_aliases([]) == {}


def test_the_shipped_rules_are_valid_and_checked_before_any_work():
    import yaml

    from dlflow.config import validate_parameters
    from tests.conftest import REPO_ROOT

    shipped = yaml.safe_load((REPO_ROOT / "conf" / "base" / "parameters_promotion.yml").read_text())
    validate_parameters(shipped)  # what ParameterValidationHook runs after the context is created
    assert PromotionParams.model_validate(shipped["promotion"]).rules_for("word2vec").metric == "analogy_accuracy"
    with pytest.raises(ValueError, match=r"promotion\.default\.max_class_drop"):
        validate_parameters({"promotion": {"default": {"max_class_drop": 5}}})
