"""The promotion gate's rules: plain functions of what a version and the champion were measured on.

Rules (``conf/*/parameters_promotion.yml``, :class:`dlflow.config.PromotionRules`):
``champion`` moves to a new version only when both were measured on the *same*
test set (the ``test_data_digest``), its headline metric beats the champion's by
at least ``min_improvement``, and no class's ``class_metric`` (recall, precision
or F1) drops by more than ``max_class_drop``. Otherwise the new version becomes
``challenger``. Each refusal names the rule that decided it.

No MLflow here: :mod:`dlflow.model_registry.store` reads the champion from the
registry and applies the decision, one registration at a time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from dlflow.config import PromotionRules

CHAMPION = "champion"
CHALLENGER = "challenger"
PROMOTED = "promoted"
NOT_PROMOTED = "not_promoted"

_EPS = 1e-12


@dataclass(frozen=True)
class GateInput:
    """What the gate knows about one model: the ``metric`` it was judged on, its ``value`` and the
    ``test_data_digest`` of the data measured. ``per_class`` maps class name to
    ``{"precision", "recall", "f1"}``; None when the family has no classes (Word2Vec)."""

    version: str | None
    metric: str
    value: float | None
    test_data_digest: str | None
    per_class: Mapping[str, Mapping[str, float]] | None = None


@dataclass(frozen=True)
class Decision:
    promoted: bool
    reason: str
    rule: str  # which rule decided: no_champion, test_data, metric, min_improvement, max_class_drop, all_rules
    champion_version: str | None = None
    champion_value: float | None = None

    @property
    def alias(self) -> str:
        return CHAMPION if self.promoted else CHALLENGER

    @property
    def label(self) -> str:
        return PROMOTED if self.promoted else NOT_PROMOTED


def decide_promotion(candidate: GateInput, champion: GateInput | None, rules: PromotionRules) -> Decision:
    """Judge ``candidate`` against ``champion`` by ``rules``; no side effects.

    The reason names the rule that decided: the first one that fails, or
    ``all rules passed`` with the figures of each.
    """
    if champion is None:
        return Decision(True, "promoted (no champion yet)", "no_champion")
    cv = champion.version

    def refuse(rule: str, text: str) -> Decision:
        return Decision(False, f"not promoted (rule {rule}): {text}", rule, cv, champion.value)

    if champion.test_data_digest != candidate.test_data_digest:
        return refuse(
            "test_data",
            f"champion v{cv} was measured on test data {champion.test_data_digest}, this version on "
            f"{candidate.test_data_digest}: not comparable, champion kept",
        )
    if champion.metric != rules.metric or champion.value is None:
        return refuse("metric", f"champion v{cv} has no '{rules.metric}' to compare, champion kept")
    if candidate.value is None:
        return refuse("metric", f"this version has no '{rules.metric}'")
    best, value = champion.value, candidate.value
    margin = (value - best) if rules.greater_is_better else (best - value)
    headline = (
        f"{rules.metric} {value:.4f} vs champion v{cv} {best:.4f} "
        f"(required improvement >= {rules.min_improvement:g}, {'higher' if rules.greater_is_better else 'lower'} is better)"
    )
    if margin < rules.min_improvement - _EPS:
        return refuse("min_improvement", headline)

    m = rules.class_metric
    if rules.max_class_drop is None:
        class_note = "per-class rule off"
    elif not candidate.per_class or not champion.per_class:
        missing = "this version" if not candidate.per_class else f"champion v{cv}"
        class_note = f"per-class rule not applicable: no per-class {m} for {missing}"
    else:
        common = [c for c in candidate.per_class if c in champion.per_class]
        drops = {c: float(champion.per_class[c][m]) - float(candidate.per_class[c][m]) for c in common}
        if not drops:
            class_note = "per-class rule not applicable: no class in common"
        else:
            worst = max(drops, key=lambda c: drops[c])
            figures = (
                f"{m} of class '{worst}' {float(champion.per_class[worst][m]):.4f} → "
                f"{float(candidate.per_class[worst][m]):.4f} (drop {drops[worst]:+.4f})"
            )
            if drops[worst] > rules.max_class_drop + _EPS:
                return refuse("max_class_drop", f"{figures} exceeds max_class_drop {rules.max_class_drop:g}; {headline}")
            class_note = f"largest per-class drop: {figures} <= max_class_drop {rules.max_class_drop:g}"
    return Decision(True, f"promoted (all rules passed): {headline}; {class_note}", "all_rules", cv, best)


def target_aliases(decisions: Iterable[tuple[str, bool]]) -> dict[str, str]:
    """Where the recorded decisions ``(version, promoted)`` put the aliases: ``champion`` on the last
    promoted version, ``challenger`` on the last refused one (versions compared as numbers)."""
    target: dict[str, tuple[int, str]] = {}
    for version, promoted in decisions:
        alias = CHAMPION if promoted else CHALLENGER
        if alias not in target or int(version) > target[alias][0]:
            target[alias] = (int(version), str(version))
    return {alias: version for alias, (_, version) in target.items()}
