"""Shared registration node: log the servable model, register a version, run the promotion gate,
and write the champion-vs-challenger report."""

from __future__ import annotations

import logging
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

import dlflow
from dlflow.config import PromotionParams, PromotionRules, RegistrationParams
from dlflow.evaluation.metrics import confusion
from dlflow.registry.promotion import (
    TAG_REPORT,
    GateStep,
    converge_aliases,
    gate_steps,
    gate_tags,
    record_decision,
    register_version,
    step_for,
    target_aliases,
)

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from dlflow.registry.report import ModelSide

logger = logging.getLogger(__name__)
CODE_PATHS = [str(Path(dlflow.__file__).parent)]


def _requirements() -> list[str]:
    """Pinned serving requirements from what is installed (MLflow's own inference
    of them reloads the model in a subprocess and costs seconds per model)."""
    packages = ("torch", "mlflow", "numpy", "pandas", "scikit-learn", "pyarrow")
    return [f"{name}=={version(name).split('+')[0]}" for name in packages]


def _log_model(package: dict[str, Any]):
    """Log the family's servable ``PythonModel`` with its signature and input example.

    A model with an ``ENTRY_POINT`` is logged as code plus the files its
    ``write_artifacts`` writes (weights, description); others are pickled.
    The output schema is read off the example output's column types.
    """
    import tempfile

    import mlflow
    from mlflow.models import ModelSignature, infer_signature

    from dlflow.tracking.records import table_schema

    model, example = package["model"], package["input_example"]
    params = package.get("predict_params")
    output = model.predict(None, example, params)
    inferred = infer_signature(example, params=params)
    outputs = table_schema(output) if isinstance(output, pd.DataFrame) else infer_signature(example, output).outputs
    signature = ModelSignature(inputs=inferred.inputs, outputs=outputs, params=inferred.params)
    logged = {
        "name": "model",
        "signature": signature,
        "input_example": (example, params) if params else example,
        "code_paths": CODE_PATHS,
        "pip_requirements": _requirements(),
    }
    entry_point = getattr(model, "ENTRY_POINT", None)
    if entry_point is None:
        return mlflow.pyfunc.log_model(python_model=model, **logged)
    with tempfile.TemporaryDirectory() as directory:
        artifacts = model.write_artifacts(Path(directory))
        return mlflow.pyfunc.log_model(python_model=str(entry_point), artifacts=artifacts, **logged)


def _artifact(family: str, name: str) -> str:
    """Per-family artifact path: the ``nlp`` pipeline registers two families in one run."""
    return f"registration/{family}/{name}"


def _candidate_evaluation(
    scores: dict[str, float], evaluation: dict[str, Any], predictions: pd.DataFrame | None
) -> dict[str, Any]:
    """What the report compares: scores, per-class metrics and confusion matrix (None without classes)."""
    per_class = evaluation.get("per_class") or None
    matrix = None
    if per_class and predictions is not None:
        matrix = confusion(predictions["label"], predictions["prediction"], len(per_class)).tolist()
    return {"scores": {k: float(v) for k, v in scores.items()}, "per_class": per_class, "confusion_matrix": matrix}


def _history(client: MlflowClient, run_id: str) -> dict[str, list[tuple[int, float]]]:
    """Per-epoch curves as logged live by ``MlflowEpochLogger`` (empty for families without epochs)."""
    from dlflow.registry.report import CURVES

    curves = {key: [(m.step, m.value) for m in client.get_metric_history(run_id, key)] for key in CURVES}
    return {key: points for key, points in curves.items() if points}


def _load_json(run_id: str, path: str) -> dict[str, Any] | None:
    import mlflow

    try:
        return mlflow.artifacts.load_dict(f"runs:/{run_id}/{path}")
    except Exception:  # absent (older runs) or unreadable: the report says what is missing
        return None


def _champion_side(client: MlflowClient, model_name: str, family: str, step: GateStep, candidate: ModelSide) -> ModelSide:
    """The champion this version was judged against, read back from its run in MLflow."""
    from dlflow.registry.report import ModelSide

    champion = client.get_model_version(model_name, step.champion.version)
    run = client.get_run(champion.run_id)
    evaluation = _load_json(run.info.run_id, _artifact(family, "evaluation.json"))
    if evaluation is None:  # registered before this report existed: the evaluation pipeline's own report
        evaluation = {"per_class": (_load_json(run.info.run_id, "evaluation/metrics.json") or {}).get("per_class")}
    logged = evaluation.get("scores") or run.data.metrics
    return ModelSide(
        label=f"champion v{champion.version}",
        version=str(champion.version),
        run_id=run.info.run_id,
        scores={name: logged[name] for name in candidate.scores if name in logged},
        per_class=evaluation.get("per_class"),
        confusion_matrix=evaluation.get("confusion_matrix"),
        history=_history(client, run.info.run_id) if candidate.history is not None else None,
    )


def _report(
    client: MlflowClient, model_name: str, family: str, step: GateStep, candidate: ModelSide, rules: PromotionRules
) -> str:
    from dlflow.registry.report import build_report

    champion, note = None, None
    if step.champion is not None and step.decision.rule == "test_data":
        note = (
            f"Champion v{step.champion.version} was measured on other test data: "
            "not compared; the candidate is shown alone."
        )
    elif step.champion is not None:
        try:
            champion = _champion_side(client, model_name, family, step, candidate)
        except Exception as error:  # e.g. its run was deleted: report what there is
            logger.warning("Champion v%s of %s could not be read back: %s", step.champion.version, model_name, error)
            note = (
                f"Champion v{step.champion.version} could not be read back from MLflow ({error}); "
                "the candidate is shown alone."
            )
    shown_rules = {"same test data": f"required (digest {step.candidate.test_data_digest})", **rules.model_dump()}
    return build_report(
        model_name, candidate, champion,
        decision=step.decision.label, reason=step.decision.reason, rules=shown_rules,
        champion_note=note, compared_with=step.champion.version if step.champion else None,
    )


def register_model(
    package: dict[str, Any],
    scores: dict[str, float],
    evaluation: dict[str, Any],
    params: dict[str, Any],
    promotion: dict[str, Any],
    predictions: pd.DataFrame | None = None,
    *,
    family: str,
    learning_curves: bool = True,
) -> dict[str, Any]:
    """Log ``package['model']`` to the active run, register it, judge it and move the aliases.

    ``package`` holds the servable model (a torch module or an MLflow
    ``PythonModel``), an ``input_example`` and the ``test_data_digest`` of the
    data its ``scores`` were measured on; ``evaluation`` is the family's full
    evaluation report (``per_class`` when it has classes) and ``predictions``
    the test predictions the confusion matrix comes from (classifiers only).
    ``promotion`` holds the rules (``params:promotion``), resolved for ``family``;
    ``learning_curves`` says whether the runs' epoch curves belong to this family.
    Writes ``registration/<family>/champion_vs_challenger.html`` to the run and
    attaches it to the new version. Returns a JSON-able record of what happened.
    """
    import mlflow
    from mlflow.tracking import MlflowClient

    from dlflow.registry.report import ModelSide, build_report

    registration = RegistrationParams.model_validate(params)
    rules = PromotionParams.model_validate(promotion).rules_for(family)
    run = mlflow.active_run()
    if run is None:
        raise RuntimeError("register_model needs an active MLflow run: is kedro-mlflow tracking disabled?")
    if rules.metric not in scores:
        raise ValueError(f"promotion metric {rules.metric!r} for {family} is not among the scores: {sorted(scores)}")
    value = float(scores[rules.metric])
    info = _log_model(package)
    record: dict[str, Any] = {"model_uri": info.model_uri, "run_id": run.info.run_id, rules.metric: value}
    if not registration.enabled:
        return record

    name, run_id = registration.model_name, run.info.run_id
    candidate_evaluation = _candidate_evaluation(scores, evaluation, predictions)
    mlflow.log_dict(candidate_evaluation, _artifact(family, "evaluation.json"))
    tags = gate_tags(
        metric=rules.metric, value=value, test_data_digest=package["test_data_digest"], rules=rules,
        per_class=candidate_evaluation["per_class"], run_id=run_id, family=family,
        git_commit=run.data.tags.get("git_commit", "unknown"),
    )
    version = str(register_version(info.model_uri, name, tags).version)
    client = MlflowClient()
    step = step_for(gate_steps(client, name), version)
    record_decision(client, name, step)

    # aliases first: whatever happens to the report, the registry is left consistent
    aliases = target_aliases(converge_aliases(client, name, gate_of_version=version))

    candidate = ModelSide(
        label=f"candidate v{version}", version=version, run_id=run_id, scores=scores,
        per_class=candidate_evaluation["per_class"], confusion_matrix=candidate_evaluation["confusion_matrix"],
        history=_history(client, run_id) if learning_curves else None,
    )
    report_path = _artifact(family, "champion_vs_challenger.html")
    mlflow.log_text(_report(client, name, family, step, candidate, rules), report_path)
    report_uri = mlflow.get_artifact_uri(report_path)
    client.set_model_version_tag(name, version, TAG_REPORT, report_uri)
    client.update_model_version(
        name, version,
        description=f"Registered from run {run_id}. Gate decision at registration: {step.decision.label}: "
        f"{step.decision.reason}. Champion-vs-challenger report: {report_uri}",
    )
    mlflow.set_tags({"registered_model": name, "registered_version": version, "gate_decision": step.decision.label})
    logger.info("Model %s v%s: %s; aliases now %s", name, version, step.decision.reason, aliases)
    return record | {
        "model_name": name, "version": version, "gate_decision": step.decision.label,
        "reason": step.decision.reason, "report": report_uri, "aliases": aliases,
    }
