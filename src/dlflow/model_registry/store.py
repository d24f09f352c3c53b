"""The registry side of the gate: a new version, judged and aliased under the registration lock.

Under :func:`~dlflow.model_registry.lock.registration_lock`, :func:`register_and_gate`
reads the recorded decisions, judges the candidate against the last promoted
version (:func:`~dlflow.model_registry.promotion.decide_promotion`), creates the version
with everything it was judged on *and* the decision as tags, in one write, and
moves ``champion``/``challenger`` to where the recorded decisions put them.
Registrations are serial, so each version is judged against the champion its
predecessors left, in version order. An alias moved by hand, or left behind by a
registration killed between its version and its alias, is put back by the next one.

A version's ``gate_decision`` tag (``promoted`` / ``not_promoted``) is the event of
its registration, never a claim about the present: the aliases say who is
champion now, and :func:`alias_history` says how they got there.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from dlflow.config import PromotionRules
from dlflow.model_registry.lock import actor, registration_lock
from dlflow.model_registry.promotion import (
    PROMOTED,
    Decision,
    GateInput,
    decide_promotion,
    target_aliases,
)

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.tracking import MlflowClient

logger = logging.getLogger(__name__)

# Version tags: what the gate judged ...
TAG_METRIC, TAG_VALUE, TAG_DIGEST = "metric", "metric_value", "test_data_digest"
TAG_RULES, TAG_PER_CLASS = "gate_rules", "per_class_metrics"
# ... and what it decided, at registration.
TAG_DECISION, TAG_REASON, TAG_RULE, TAG_COMPARED = "gate_decision", "gate_reason", "gate_rule", "gate_compared_with"
TAG_REPORT = "promotion_report"
#: Registered-model (and target-version) tags recording one alias move each.
MOVE_PREFIX = "alias_move."


def version_tags(candidate: GateInput, rules: PromotionRules, decision: Decision, **extra: str) -> dict[str, str]:
    """The tags a version is created with: what it was judged on, by which rules, and the decision."""
    tags = {
        TAG_METRIC: candidate.metric,
        TAG_VALUE: repr(float(candidate.value)),
        TAG_DIGEST: str(candidate.test_data_digest),
        TAG_RULES: rules.model_dump_json(),
        **extra,
    }
    if candidate.per_class:
        compact = {
            str(name): {k: round(float(v), 6) for k, v in scores.items() if k in ("precision", "recall", "f1")}
            for name, scores in candidate.per_class.items()
        }
        tags[TAG_PER_CLASS] = json.dumps(compact, separators=(",", ":"))
    return tags | {
        TAG_DECISION: decision.label,
        TAG_REASON: decision.reason,
        TAG_RULE: decision.rule,
        TAG_COMPARED: decision.champion_version or "none",
    }


def gate_input(version: ModelVersion) -> GateInput:
    """What the gate judges a registered version on, read from its tags."""
    tags = version.tags or {}
    value = tags.get(TAG_VALUE)
    per_class = tags.get(TAG_PER_CLASS)
    return GateInput(
        str(version.version), tags.get(TAG_METRIC, ""), float(value) if value else None,
        tags.get(TAG_DIGEST), json.loads(per_class) if per_class else None,
    )  # fmt: skip


def gated_versions(client: MlflowClient, model_name: str) -> list[ModelVersion]:
    """The versions of ``model_name`` that carry a gate decision, in version order."""
    versions, token = [], None
    while True:
        page = client.search_model_versions(f"name = '{model_name}'", page_token=token)
        versions.extend(v for v in page if (v.tags or {}).get(TAG_DECISION))
        token = page.token
        if not token:
            return sorted(versions, key=lambda v: int(v.version))


def register_and_gate(
    client: MlflowClient, model_uri: str, model_name: str, candidate: GateInput, rules: PromotionRules, **tags: str
) -> tuple[str, Decision, dict[str, str]]:
    """Judge ``candidate``, register ``model_uri`` with its decision and move the aliases: one registration
    at a time. Returns the new version, its decision and where ``champion``/``challenger`` are now."""
    import mlflow

    with registration_lock(client, model_name):
        gated = gated_versions(client, model_name)
        promoted = [v for v in gated if v.tags[TAG_DECISION] == PROMOTED]
        decision = decide_promotion(candidate, gate_input(promoted[-1]) if promoted else None, rules)
        created = mlflow.register_model(model_uri, model_name, tags=version_tags(candidate, rules, decision, **tags))
        version = str(created.version)
        reasons = {str(v.version): v.tags.get(TAG_REASON, "") for v in gated} | {version: decision.reason}
        decided = [(str(v.version), v.tags[TAG_DECISION] == PROMOTED) for v in gated] + [(version, decision.promoted)]
        target = target_aliases(decided)
        _move_aliases(client, model_name, target, reasons, gate_of_version=version)
    return version, decision, target


def _move_aliases(
    client: MlflowClient, model_name: str, target: Mapping[str, str], reasons: Mapping[str, str], gate_of_version: str
) -> None:
    """Set each alias of ``target`` that is elsewhere, recording the move and why."""
    current = {alias: str(version) for alias, version in client.get_registered_model(model_name).aliases.items()}
    for alias, version in target.items():
        if current.get(alias) == version:
            continue
        client.set_registered_model_alias(model_name, alias, version)
        reason = reasons[version]
        if version != gate_of_version:
            reason = f"re-applied by the gate of v{gate_of_version} (the alias was not where the rules put it): {reason}"
        record_alias_move(client, model_name, alias, current.get(alias), version, reason, gate_of_version)
        logger.info("Model %s: @%s v%s → v%s (%s)", model_name, alias, current.get(alias), version, reason)


# ----------------------------------------------------------------------------- the audit of alias moves


@dataclass(frozen=True)
class AliasMove:
    alias: str
    from_version: str | None
    to_version: str
    by: str
    at: str  # UTC, ISO 8601
    reason: str
    gate_of_version: str | None = None  # whose registration made the move
    key: str = ""


def record_alias_move(
    client: MlflowClient, model_name: str, alias: str, from_version: str | None, to_version: str,
    reason: str, gate_of_version: str | None = None,
) -> AliasMove:  # fmt: skip
    """Record one alias move as a registered-model tag (a unique key per move) and on the target version."""
    now = datetime.now(timezone.utc)
    key = f"{MOVE_PREFIX}{now.strftime('%Y%m%dT%H%M%S%fZ')}.{uuid.uuid4().hex[:8]}"
    move = AliasMove(alias, from_version, str(to_version), actor(), now.isoformat(), reason, gate_of_version, key)
    value = json.dumps({k: v for k, v in asdict(move).items() if k != "key"})
    client.set_registered_model_tag(model_name, key, value)
    client.set_model_version_tag(model_name, str(to_version), key, value)
    return move


def alias_history(client: MlflowClient, model_name: str) -> list[AliasMove]:
    """The recorded alias moves of ``model_name``, oldest first."""
    tags = client.get_registered_model(model_name).tags or {}
    return sorted(
        (AliasMove(**json.loads(value), key=key) for key, value in tags.items() if key.startswith(MOVE_PREFIX)),
        key=lambda m: (m.at, m.key),
    )
