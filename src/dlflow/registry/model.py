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

    A model with an ``ENTRY_POINT`` is logged as code plus the files its
    ``write_artifacts`` writes (weights, description); others are pickled.
    The output schema is read off the example output's column types.
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
