"""The promotion gate: which alias a newly registered model version gets, and why.

``champion`` moves to the new version only when its test metric is at least
the current champion's (plus ``min_improvement``) on the *same* test set,
recognised by the test data digest both versions are tagged with. Otherwise
the new version becomes ``challenger``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

logger = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"


@dataclass(frozen=True)
class Decision:
    alias: str
    reason: str
    champion_version: str | None = None
    champion_value: float | None = None


def current_champion(client: MlflowClient, model_name: str) -> ModelVersion | None:
    """The version holding the ``champion`` alias, or None when there is none yet."""
    try:
        return client.get_model_version_by_alias(model_name, CHAMPION)
    except MlflowException:
        return None


def decide_promotion(
    champion: ModelVersion | None,
    *,
    metric: str,
    value: float,
    test_data_digest: str,
    greater_is_better: bool = True,
    min_improvement: float = 0.0,
) -> Decision:
    """Compare a candidate with the champion on the same test set; no side effects."""
    if champion is None:
        return Decision(CHAMPION, "no champion yet")
    tags = champion.tags
    if tags.get("test_data_digest") != test_data_digest:
        return Decision(
            CHALLENGER,
            f"champion v{champion.version} was measured on test data {tags.get('test_data_digest')}, "
            f"this version on {test_data_digest}: not comparable, champion kept",
            champion.version,
        )
    if tags.get("metric") != metric or "metric_value" not in tags:
        return Decision(CHALLENGER, f"champion v{champion.version} has no '{metric}' to compare", champion.version)
    best = float(tags["metric_value"])
    margin = (value - best) if greater_is_better else (best - value)
    verdict = (
        f"{metric} {value:.4f} vs champion v{champion.version} {best:.4f} "
        f"(required improvement >= {min_improvement:g})"
    )
    if margin >= min_improvement:
        return Decision(CHAMPION, f"promoted: {verdict}", champion.version, best)
    return Decision(CHALLENGER, f"not promoted: {verdict}", champion.version, best)


def apply_decision(client: MlflowClient, model_name: str, version: str, decision: Decision) -> None:
    """Point the decided alias at ``version`` and record the decision on the version."""
    client.set_registered_model_alias(model_name, decision.alias, version)
    client.set_model_version_tag(model_name, version, "gate_decision", decision.alias)
    client.set_model_version_tag(model_name, version, "gate_reason", decision.reason)
    logger.info("Model %s v%s → @%s: %s", model_name, version, decision.alias, decision.reason)
