"""Registration nodes: summarise the candidate, register it through the promotion gate, build the report.

``summarise_candidate`` and ``build_promotion_report`` are pure functions of their
inputs; ``register_model`` is the one node that writes to MLflow's registry (the
model, its version, the aliases and tags), through :mod:`dlflow.model_registry`.
"""

from __future__ import annotations

import html
import logging
from typing import Any

import pandas as pd

from dlflow.config import PromotionParams, PromotionRules, RegistrationParams
from dlflow.evaluation.metrics import confusion

logger = logging.getLogger(__name__)

#: Where the catalog's ``{family}.candidate`` and ``{family}.promotion_report`` log to the run.
EVALUATION_ARTIFACT = "registration/{family}/evaluation.json"
REPORT_ARTIFACT = "registration/{family}/champion_vs_challenger.html"


def summarise_candidate(
    package: dict[str, Any],
    scores: dict[str, float],
    evaluation: dict[str, Any],
    promotion: dict[str, Any],
    predictions: pd.DataFrame | None = None,
    *,
    family: str,
) -> dict[str, Any]:
    """What the gate judges and the report compares, as JSON.

    ``rules``: ``params:promotion`` resolved for ``family``; ``metric`` and ``value``:
    the score they judge; ``test_data_digest``: the data it was measured on (from
    ``package``); all ``scores``; ``per_class`` metrics from the family's
    ``evaluation`` report and the ``confusion_matrix`` of its test ``predictions``
    (both None for a family without classes).
    """
    rules = PromotionParams.model_validate(promotion).rules_for(family)
    if rules.metric not in scores:
        raise ValueError(f"promotion metric {rules.metric!r} for {family} is not among the scores: {sorted(scores)}")
    per_class = evaluation.get("per_class") or None
    matrix = None
    if per_class and predictions is not None:
        matrix = confusion(predictions["label"], predictions["prediction"], len(per_class)).tolist()
    return {
        "metric": rules.metric,
        "value": float(scores[rules.metric]),
        "test_data_digest": package["test_data_digest"],
        "rules": rules.model_dump(),
        "scores": {name: float(value) for name, value in scores.items()},
        "per_class": per_class,
        "confusion_matrix": matrix,
    }


def register_model(
    package: dict[str, Any],
    candidate: dict[str, Any],
    params: dict[str, Any],
    profile: Any = None,
    *,
    family: str,
    learning_curves: bool = True,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Log ``package['model']`` (and its reference ``profile`` for monitoring, if the family has one) to the active
    run; register it through the gate unless ``params`` says not to, the version tagged with its profile.

    Under the registration lock: judge ``candidate`` against the champion, create
    the version with its decision as tags, move ``champion``/``challenger``. Then
    point the version at its report (written next by ``build_promotion_report``) and
    read back what the report compares. ``learning_curves``: whether the run's epoch
    curves are this family's. Returns the registration record and that comparison.
    """
    import mlflow
    from mlflow.tracking import MlflowClient

    from dlflow.model_registry.champion import PROFILE_TAG
    from dlflow.model_registry.evidence import comparison
    from dlflow.model_registry.model import describe, log_model, model_description, provenance_tags, version_description
    from dlflow.model_registry.profiles import log_reference_profile
    from dlflow.model_registry.promotion import GateInput
    from dlflow.model_registry.store import TAG_REPORT, register_and_gate

    registration = RegistrationParams.model_validate(params)
    if mlflow.active_run() is None:
        raise RuntimeError("register_model needs an active MLflow run: is kedro-mlflow tracking disabled?")
    client = MlflowClient()
    run = client.get_run(mlflow.active_run().info.run_id)  # as it is now: the hooks' tags (git commit) included
    run_id = run.info.run_id
    record = {"model_uri": log_model(package).model_uri, "run_id": run_id, candidate["metric"]: candidate["value"]}
    profile_uri = log_reference_profile(profile, run_id, family) if profile is not None else None
    if not registration.enabled:
        return record, {"candidate_history": None, "champion": None, "champion_error": None}

    name, about = registration.model_name, describe(package["model"])
    git_commit = run.data.tags.get("git_commit", "unknown")
    gate = GateInput(None, candidate["metric"], candidate["value"], candidate["test_data_digest"], candidate["per_class"])
    version, decision, aliases = register_and_gate(
        client, record["model_uri"], name, gate, PromotionRules.model_validate(candidate["rules"]),
        run_id=run_id, family=family, git_commit=git_commit, git_dirty=run.data.tags.get("git_dirty", "unknown"),
        **provenance_tags(run, about),
    )  # fmt: skip
    report = mlflow.get_artifact_uri(REPORT_ARTIFACT.format(family=family))
    client.set_model_version_tag(name, version, TAG_REPORT, report)
    if profile_uri is not None:
        client.set_model_version_tag(name, version, PROFILE_TAG, profile_uri)
    client.update_model_version(
        name, version,
        description=version_description(
            about, run_id=run_id, experiment_id=run.info.experiment_id, git_commit=git_commit, scores=candidate["scores"],
            metric=candidate["metric"], decision=decision.label, reason=decision.reason,
            test_data_digest=candidate["test_data_digest"], report=report, report_path=REPORT_ARTIFACT.format(family=family),
        ),
    )  # fmt: skip
    client.update_registered_model(name, description=model_description(about, name, family))
    mlflow.set_tags({"registered_model": name, "registered_version": version, "gate_decision": decision.label})
    logger.info("Model %s v%s: %s; aliases now %s", name, version, decision.reason, aliases)
    found = comparison(
        client, name, decision, run_id, EVALUATION_ARTIFACT.format(family=family), list(candidate["scores"]), learning_curves
    )
    return record | {
        "model_name": name, "version": version, "gate_decision": decision.label, "reason": decision.reason,
        "rule": decision.rule, "compared_with": decision.champion_version, "report": report, "aliases": aliases,
    }, found  # fmt: skip


def build_promotion_report(candidate: dict[str, Any], registration: dict[str, Any], comparison: dict[str, Any]) -> str:
    """The champion-vs-challenger page (HTML) of the version ``registration`` describes: the
    ``candidate`` summary against the champion side in ``comparison`` (or alone, saying why)."""
    from dlflow.model_registry.report import ModelSide, build_report

    version, compared = registration.get("version"), registration.get("compared_with")
    if version is None:
        return (
            f"<!DOCTYPE html><html><body><p>{html.escape(registration['model_uri'])}: logged to the run, not registered "
            "(registration.enabled is false).</p></body></html>"
        )
    side = ModelSide(
        label=f"candidate v{version}", version=version, run_id=registration["run_id"], scores=candidate["scores"],
        per_class=candidate["per_class"], confusion_matrix=candidate["confusion_matrix"],
        history=comparison["candidate_history"],
    )  # fmt: skip
    champion = ModelSide(**comparison["champion"]) if comparison["champion"] else None
    note = None
    if compared is not None and registration["rule"] == "test_data":
        note = f"Champion v{compared} was measured on other test data: not compared; the candidate is shown alone."
    elif compared is not None and champion is None:
        note = (
            f"Champion v{compared} could not be read back from MLflow ({comparison['champion_error']}); "
            "the candidate is shown alone."
        )
    rules = {"same test data": f"required (digest {candidate['test_data_digest']})", **candidate["rules"]}
    return build_report(
        registration["model_name"], side, champion, decision=registration["gate_decision"],
        reason=registration["reason"], rules=rules, champion_note=note, compared_with=compared,
    )  # fmt: skip
