"""The promotion gate: which alias a newly registered model version gets, why, and who moved it.

Rules (``conf/*/parameters_promotion.yml``, :class:`dlflow.config.PromotionRules`):
``champion`` moves to a new version only when both were measured on the *same*
test set (the ``test_data_digest`` tag), its headline metric beats the
champion's by at least ``min_improvement``, and no class's ``class_metric``
(recall, precision or F1) drops by more than ``max_class_drop``. Otherwise the
new version becomes ``challenger``.

Concurrency. MLflow has no compare-and-set for aliases, so the aliases are never
decided from "the current champion" alone. Every version is created with all it
is judged on (metric, value, test data digest, per-class metrics and the rules
in force) as tags, atomically with the version itself, and the gate's outcome is
defined as a *replay*: versions in version-number order, each judged by its own
rules against the champion its predecessors left. That result depends only on
the versions, not on timing, so every writer computes the same aliases. Each
writer then sets what differs, re-reads versions and aliases, and repeats until
a read after its own last write agrees with the replay (:func:`converge_aliases`).
The globally last such check sees every version and the final aliases, so when
all writers are done exactly one version holds ``champion``: the one serial
registrations in version order would have chosen. The remaining window: a
writer killed between setting an alias and its verifying read can leave a stale
alias until the next registration (or a call of :func:`converge_aliases`).

Each version's ``gate_decision`` tag (``promoted`` / ``not_promoted``) is the
event of its registration, never a claim about the present: the aliases say who
is champion now, and :func:`alias_history` says how they got there.
"""

from __future__ import annotations

import getpass
import json
import logging
import os
import random
import socket
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from dlflow.config import PromotionRules

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.tracking import MlflowClient

logger = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
PROMOTED = "promoted"
NOT_PROMOTED = "not_promoted"

# Version tags written when the version is created (what the gate judges) ...
TAG_METRIC, TAG_VALUE, TAG_DIGEST = "metric", "metric_value", "test_data_digest"
TAG_RULES, TAG_PER_CLASS = "gate_rules", "per_class_metrics"
# ... and once it has been judged (history: the decision at registration).
TAG_DECISION, TAG_REASON, TAG_RULE, TAG_COMPARED = "gate_decision", "gate_reason", "gate_rule", "gate_compared_with"
TAG_REPORT = "promotion_report"
#: Registered-model (and target-version) tags recording one alias move each.
MOVE_PREFIX = "alias_move."

_EPS = 1e-12
_LEGACY_DECISIONS = {CHAMPION: True, CHALLENGER: False}  # gate_decision values written before the replay gate


# ----------------------------------------------------------------------------- pure: the rules


@dataclass(frozen=True)
class GateInput:
    """What the gate knows about one version, read from its tags.

    ``per_class`` maps class name to ``{"precision", "recall", "f1"}``; None when
    the family has no classes (Word2Vec). ``recorded`` is the decision already
    written on the version (then it is not judged again).
    """

    version: str
    metric: str
    value: float | None
    test_data_digest: str | None
    per_class: Mapping[str, Mapping[str, float]] | None = None
    rules: PromotionRules | None = None
    recorded: bool | None = None
    recorded_reason: str | None = None


@dataclass(frozen=True)
class Decision:
    promoted: bool
    reason: str
    rule: str  # which rule decided: no_champion, test_data, metric, min_improvement, max_class_drop, all_rules, recorded
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


@dataclass(frozen=True)
class GateStep:
    """One version's turn in the replay: its decision and the champion it was compared with."""

    candidate: GateInput
    decision: Decision
    champion: GateInput | None

    @property
    def version(self) -> str:
        return self.candidate.version


def replay(inputs: Iterable[GateInput]) -> list[GateStep]:
    """Judge the versions in version-number order, each against the champion its predecessors left.

    A version whose decision is already recorded keeps it; one with neither a
    recorded decision nor rules (registered outside the gate) is skipped.
    """
    steps: list[GateStep] = []
    champion: GateInput | None = None
    for item in sorted(inputs, key=lambda i: int(i.version)):
        if item.recorded is not None:
            decision = Decision(
                item.recorded, item.recorded_reason or "(recorded)", "recorded",
                champion.version if champion else None, champion.value if champion else None,
            )
        elif item.rules is not None:
            decision = decide_promotion(item, champion, item.rules)
        else:
            continue
        steps.append(GateStep(item, decision, champion))
        if decision.promoted:
            champion = item
    return steps


def target_aliases(steps: Sequence[GateStep]) -> dict[str, str]:
    """``champion``: the last promoted version; ``challenger``: the last one refused."""
    target: dict[str, str] = {}
    for step in steps:
        target[step.decision.alias] = step.version
    return target


# ----------------------------------------------------------------------------- tags


def gate_tags(
    *, metric: str, value: float, test_data_digest: str, rules: PromotionRules,
    per_class: Mapping[str, Mapping[str, float]] | None = None, **extra: str,
) -> dict[str, str]:
    """The tags a version is created with: everything the gate judges it on."""
    tags = {
        TAG_METRIC: metric,
        TAG_VALUE: repr(float(value)),
        TAG_DIGEST: test_data_digest,
        TAG_RULES: rules.model_dump_json(),
        **extra,
    }
    if per_class:
        compact = {
            str(name): {k: round(float(v), 6) for k, v in scores.items() if k in ("precision", "recall", "f1")}
            for name, scores in per_class.items()
        }
        tags[TAG_PER_CLASS] = json.dumps(compact, separators=(",", ":"))
    return tags


def gate_input(version: ModelVersion) -> GateInput:
    """Read a version's gate tags (tolerating versions registered before these tags existed)."""
    tags = version.tags or {}
    recorded = tags.get(TAG_DECISION)
    value = tags.get(TAG_VALUE)
    return GateInput(
        version=str(version.version),
        metric=tags.get(TAG_METRIC, ""),
        value=float(value) if value not in (None, "") else None,
        test_data_digest=tags.get(TAG_DIGEST),
        per_class=json.loads(tags[TAG_PER_CLASS]) if TAG_PER_CLASS in tags else None,
        rules=PromotionRules.model_validate_json(tags[TAG_RULES]) if TAG_RULES in tags else None,
        recorded={PROMOTED: True, NOT_PROMOTED: False, **_LEGACY_DECISIONS}.get(recorded) if recorded else None,
        recorded_reason=tags.get(TAG_REASON),
    )


# ----------------------------------------------------------------------------- the registry


def current_champion(client: MlflowClient, model_name: str) -> ModelVersion | None:
    """The version holding the ``champion`` alias, or None when there is none yet."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(model_name, CHAMPION)
    except MlflowException:
        return None


def register_version(model_uri: str, model_name: str, tags: Mapping[str, str], attempts: int = 8) -> ModelVersion:
    """``mlflow.register_model`` with its gate tags set atomically, retried when concurrent
    registrations collide on the version number (the store gives up after 3 tries)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    for attempt in range(1, attempts + 1):
        try:
            return mlflow.register_model(model_uri, model_name, tags=dict(tags))
        except MlflowException as error:
            transient = "Model Version creation error" in str(error) or "database is locked" in str(error)
            if not transient or attempt == attempts:
                raise
            logger.warning("Registering %s collided with another registration (%s); retrying", model_name, error)
            time.sleep(random.uniform(0.1, 0.5) * attempt)
    raise AssertionError("unreachable")


def gate_steps(client: MlflowClient, model_name: str) -> list[GateStep]:
    """The replay over every version of ``model_name`` now in the registry."""
    versions, token = [], None
    while True:
        page = client.search_model_versions(f"name = '{model_name}'", page_token=token)
        versions.extend(page)
        token = page.token
        if not token:
            return replay(gate_input(v) for v in versions)


def step_for(steps: Sequence[GateStep], version: str) -> GateStep:
    for step in steps:
        if step.version == str(version):
            return step
    raise LookupError(f"version {version} is not among the gated versions")


def record_decision(client: MlflowClient, model_name: str, step: GateStep) -> None:
    """Write a version's decision at registration on it (idempotent: the replay is deterministic).

    A decision already recorded (by this version's writer or a concurrent one) is left as it is.
    """
    if step.decision.rule == "recorded":
        return
    tags = {  # the decision last: a version with it has its reason too
        TAG_REASON: step.decision.reason,
        TAG_RULE: step.decision.rule,
        TAG_COMPARED: step.champion.version if step.champion else "none",
        TAG_DECISION: step.decision.label,
    }
    for key, value in tags.items():
        _idempotent(client.set_model_version_tag, model_name, step.version, key, value)


def _idempotent(call, *args, attempts: int = 5) -> None:
    """Retry a write that concurrent writers may make with the same values (SQL upserts can collide)."""
    from mlflow.exceptions import MlflowException

    for attempt in range(1, attempts + 1):
        try:
            call(*args)
            return
        except MlflowException:
            if attempt == attempts:
                raise
            time.sleep(random.uniform(0.05, 0.2) * attempt)


def _actor() -> str:
    try:
        user = getpass.getuser()
    except Exception:  # no login name in some containers
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


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
) -> AliasMove:
    """Record one alias move as a registered-model tag (a unique key per move) and on the target version."""
    now = datetime.now(timezone.utc)
    key = f"{MOVE_PREFIX}{now.strftime('%Y%m%dT%H%M%S%fZ')}.{uuid.uuid4().hex[:8]}"
    move = AliasMove(alias, from_version, str(to_version), _actor(), now.isoformat(), reason, gate_of_version, key)
    value = json.dumps({k: v for k, v in move.__dict__.items() if k != "key"})
    client.set_registered_model_tag(model_name, key, value)
    client.set_model_version_tag(model_name, str(to_version), key, value)
    return move


def alias_history(client: MlflowClient, model_name: str, *, collapse: bool = True) -> list[AliasMove]:
    """The recorded alias moves of ``model_name``, oldest first.

    Concurrent writers that read the same state can make the same move at once,
    each recording it; with ``collapse`` a move to the version the alias already
    pointed at is left out (``collapse=False``: every record as written).
    """
    tags = client.get_registered_model(model_name).tags or {}
    moves = sorted(
        (AliasMove(**json.loads(value), key=key) for key, value in tags.items() if key.startswith(MOVE_PREFIX)),
        key=lambda m: (m.at, m.key),
    )
    if not collapse:
        return moves
    kept, where = [], {}
    for move in moves:
        if where.get(move.alias) != move.to_version:
            kept.append(move)
            where[move.alias] = move.to_version
    return kept


def _aliases(client: MlflowClient, model_name: str) -> dict[str, str]:
    return {alias: str(version) for alias, version in client.get_registered_model(model_name).aliases.items()}


def converge_aliases(
    client: MlflowClient, model_name: str, *, gate_of_version: str | None = None, max_rounds: int = 30
) -> list[GateStep]:
    """Move ``champion``/``challenger`` to where the replay puts them; return once a read after our own
    last write agrees (versions are read before aliases, which the correctness argument needs).

    Each move is recorded (:func:`record_alias_move`); a version receiving an alias
    gets its decision tags first, so nobody sees an alias without its reason.
    """
    from mlflow.exceptions import MlflowException

    for _ in range(max_rounds):
        steps = gate_steps(client, model_name)
        target = target_aliases(steps)
        current = _aliases(client, model_name)
        moves = {alias: version for alias, version in target.items() if current.get(alias) != version}
        if not moves:
            return steps
        try:
            for alias, version in moves.items():
                step = step_for(steps, version)
                record_decision(client, model_name, step)
                _idempotent(client.set_registered_model_alias, model_name, alias, version)
                reason = step.decision.reason
                if gate_of_version is not None and gate_of_version != version:
                    reason = (
                        f"re-applied by the gate of v{gate_of_version} (the alias was not where the rules "
                        f"put it, e.g. after concurrent registrations): {reason}"
                    )
                move = record_alias_move(client, model_name, alias, current.get(alias), version, reason, gate_of_version)
                logger.info("Model %s: @%s v%s → v%s (%s)", model_name, alias, move.from_version, version, reason)
        except MlflowException as error:  # e.g. two writers inserting the same alias row at once
            logger.warning("Moving an alias of %s failed (%s); re-reading", model_name, error)
        time.sleep(random.uniform(0.0, 0.05))
    raise RuntimeError(f"the aliases of {model_name} did not settle after {max_rounds} rounds")
