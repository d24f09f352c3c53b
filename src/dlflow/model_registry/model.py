"""Logging a family's servable model to the active run: signature, input example, code, pinned requirements."""

from __future__ import annotations

import tempfile
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pandas as pd

import dlflow

CODE_PATHS = [str(Path(dlflow.__file__).parent)]


def _requirements() -> list[str]:
    """Pinned serving requirements from what is installed (MLflow's own inference
    of them reloads the model in a subprocess and costs seconds per model)."""
    packages = ("torch", "mlflow", "numpy", "pandas", "scikit-learn", "pyarrow")
    return [f"{name}=={version(name).split('+')[0]}" for name in packages]


def log_model(package: dict[str, Any]):
    """Log ``package['model']`` (an MLflow ``PythonModel``) with its signature and input example.

    The model's ``describe()`` goes into its ``MLmodel`` metadata.
    A model with an ``ENTRY_POINT`` is logged as code plus the files its
    ``write_artifacts`` writes (weights, description); others are pickled.
    The output schema is read off the example output's column types.
    ``package['enforce_input_schema']`` False: the signature has no input schema, so MLflow
    passes any input to ``predict``, which checks it (a model that takes more than one form,
    e.g. pixel arrays and base64 image strings, which a tensor schema would refuse).
    Returns MLflow's ``ModelInfo``.
    """
    import mlflow
    from mlflow.models import ModelSignature, infer_signature

    from dlflow.tracking.records import table_schema

    model, example = package["model"], package["input_example"]
    params = package.get("predict_params")
    output = model.predict(None, example, params)
    inferred = infer_signature(example, params=params)
    outputs = table_schema(output) if isinstance(output, pd.DataFrame) else infer_signature(example, output).outputs
    inputs = inferred.inputs if package.get("enforce_input_schema", True) else None
    signature = ModelSignature(inputs=inputs, outputs=outputs, params=inferred.params)
    logged = {
        "name": "model",
        "signature": signature,
        "input_example": (example, params) if params else example,
        "code_paths": CODE_PATHS,
        "pip_requirements": _requirements(),
        "metadata": describe(model),  # in the MLmodel file: what it is, takes and answers, its class names
    }
    entry_point = getattr(model, "ENTRY_POINT", None)
    if entry_point is None:
        return mlflow.pyfunc.log_model(python_model=model, **logged)
    with tempfile.TemporaryDirectory() as directory:
        artifacts = model.write_artifacts(Path(directory))
        return mlflow.pyfunc.log_model(python_model=str(entry_point), artifacts=artifacts, **logged)


def describe(model: Any) -> dict[str, Any]:
    """``model.describe()``: ``summary``, ``input``, ``output`` and ``class_names`` (None without classes)."""
    about = {"summary": type(model).__name__, "input": "see the signature", "output": "see the signature", "class_names": None}
    return about | (model.describe() if hasattr(model, "describe") else {})


def version_description(about: dict[str, Any], *, run_id: str, experiment_id: str, git_commit: str, scores: dict[str, float],
                        metric: str, decision: str, reason: str, test_data_digest: str, report: str,
                        report_path: str) -> str:  # fmt: skip
    """A registered version's description (Markdown): headline metrics, provenance, what the input must look like,
    and a link to the report that opens in the MLflow UI serving the page (a route relative to it)."""
    report_page = f"#/experiments/{experiment_id}/runs/{run_id}/artifacts/{report_path}"
    headline = ", ".join(f"{name} {value:.4f}" for name, value in _headline(scores, metric).items())
    lines = [
        f"**{about['summary']}.** {headline}.",
        f"Gate at registration: **{decision}**: {reason}",
        f"Trained in run `{run_id}` at commit `{git_commit}`; test data digest `{test_data_digest}`.",
        f"**Input:** {about['input']}.",
        f"**Output:** {about['output']}.",
    ]
    if about.get("class_names"):
        lines.append("**Classes** (index: name): " + ", ".join(f"{i}: {n}" for i, n in enumerate(about["class_names"])) + ".")
    lines.append(f"[Champion-vs-challenger report]({report_page}) (the run's artifact `{report_path}`; file: {report})")
    return "\n\n".join(lines)


def model_description(about: dict[str, Any], name: str, family: str) -> str:
    """A registered model's description (Markdown): what it is and how to use it."""
    lines = [
        f"**{about['summary']}**, trained and registered by dlflow's `{family}` pipeline "
        f"(`kedro run --pipeline {family}`); each version passes the promotion gate before it may become `@champion`.",
        f"**Input:** {about['input']}.",
        f"**Output:** {about['output']}.",
        f'Load it with `mlflow.pyfunc.load_model("models:/{name}@champion")`, or serve it with '
        f"`mlflow models serve -m models:/{name}@champion`.",
    ]
    if about.get("class_names"):
        lines.insert(3, "**Classes** (index: name): " + ", ".join(f"{i}: {n}" for i, n in enumerate(about["class_names"])) + ".")
    return "\n\n".join(lines)


def _headline(scores: dict[str, float], metric: str) -> dict[str, float]:
    """The gate's metric first, then the other overall scores (not per-class ones), at most five."""
    names = [metric] + [
        n for n in scores if n != metric and not any(c in n for c in ("_f1_", "_precision_", "_recall_", "num_samples"))
    ]
    return {name: scores[name] for name in names[:5] if name in scores}


def provenance_tags(run: Any, about: dict[str, Any]) -> dict[str, str]:
    """Version tags naming what the model was trained on and what it answers: ``class_names`` (JSON),
    ``training_data`` (JSON: the run's training tables and their digests) and ``training_data_digest``
    (one digest over those)."""
    import hashlib
    import json

    inputs = getattr(run, "inputs", None)
    training = {
        item.dataset.name: item.dataset.digest
        for item in (inputs.dataset_inputs if inputs is not None else [])
        if {tag.key: tag.value for tag in item.tags}.get("mlflow.data.context", "training") == "training"
    }
    tags = {}
    if training:
        tags["training_data"] = json.dumps(dict(sorted(training.items())), separators=(",", ":"))
        tags["training_data_digest"] = hashlib.sha256(tags["training_data"].encode()).hexdigest()[:16]
    if about.get("class_names"):
        tags["class_names"] = json.dumps(list(about["class_names"]))
    return tags
