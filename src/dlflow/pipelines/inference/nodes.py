"""Batch inference nodes: resolve ``models:/<name>@<alias>``, check the input against the model's signature, score.

The model is resolved once to a concrete version (so the alias cannot move
between resolving and loading), and its name, version and training run id
are written to the MLflow run as tags and into every output row.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from dlflow.config import InferenceModelParams

if TYPE_CHECKING:
    from mlflow.models.signature import Schema
    from mlflow.tracking import MlflowClient
    from mlflow.types import TensorSpec

logger = logging.getLogger(__name__)


def _resolve_version(client: MlflowClient, name: str, alias: str, family: str):
    """The model version ``name@alias`` points at; ``LookupError`` saying how to fix it otherwise."""
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        registered = client.get_registered_model(name)
    except MlflowException as error:
        if error.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        raise LookupError(
            f"No registered model {name!r} in the MLflow registry at {mlflow.get_registry_uri()}. "
            f"Train and register it first with `kedro run --pipeline {family}`, "
            f"or name another model with --params inference.{family}.model_name=<name>."
        ) from None
    if alias not in registered.aliases:
        known = ", ".join(f"{a} (version {v})" for a, v in sorted(registered.aliases.items())) or "none"
        raise LookupError(
            f"Registered model {name!r} has no alias {alias!r} (its aliases: {known}). "
            f"Run `kedro run --pipeline {family}` until a version passes the promotion gate, "
            f"or pick an existing alias with --params inference.{family}.alias=<alias>."
        )
    return client.get_model_version(name, registered.aliases[alias])


def load_registered_model(params: dict[str, Any], family: str) -> tuple[Any, dict[str, Any]]:
    """Load ``models:/<model_name>@<alias>`` as a pyfunc model and say which version it is.

    Returns the model and ``model_info`` (``model_name``, ``model_version``,
    ``model_run_id``, ``model_uri``), which also tags the active MLflow run.
    """
    import mlflow
    from mlflow.tracking import MlflowClient

    chosen = InferenceModelParams.model_validate(params)
    version = _resolve_version(MlflowClient(), chosen.model_name, chosen.alias, family)
    model = mlflow.pyfunc.load_model(f"models:/{chosen.model_name}/{version.version}")
    info = {
        "model_name": chosen.model_name,
        "model_version": int(version.version),
        "model_run_id": version.run_id,
        "model_uri": f"models:/{chosen.model_name}@{chosen.alias}",
    }
    logger.info("Scoring with %s = version %s (run %s)", info["model_uri"], version.version, version.run_id)
    if mlflow.active_run() is not None:
        mlflow.set_tags({f"inference.{family}.{key}": str(value) for key, value in info.items()})
    return model, info


def load_cnn_model(params: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """``load_registered_model`` for the image CNN (``params:inference.cnn``)."""
    return load_registered_model(params, "cnn")


def load_rnn_model(params: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """``load_registered_model`` for the sentence RNN (``params:inference.rnn``)."""
    return load_registered_model(params, "rnn")


def _check_tensor(data: np.ndarray, spec: TensorSpec, where: str) -> np.ndarray:
    expected = tuple(spec.shape)
    data = np.asarray(data)
    shown = "(N, " + ", ".join(map(str, expected[1:])) + ")"
    if data.ndim != len(expected) or any(e not in (-1, a) for e, a in zip(expected, data.shape)):
        raise ValueError(f"Input of shape {data.shape} does not match {where}, which takes {shown} arrays.")
    return data.astype(spec.type)


def _check_columns(data: pd.DataFrame, schema: Schema, where: str) -> pd.DataFrame:
    from mlflow.types import DataType

    if not isinstance(data, pd.DataFrame):
        raise ValueError(f"{where} takes a table with columns {schema.input_names()}, got {type(data).__name__}.")
    missing = [name for name in schema.required_input_names() if name not in data.columns]
    if missing:
        raise ValueError(f"Input lacks column(s) {missing} that {where} needs; it has {list(data.columns)}.")
    table = data[schema.input_names()]
    if table.isna().any().any():
        empty = list(table.columns[table.isna().any()])
        raise ValueError(f"Input has missing values in {empty}; {where} needs every row filled.")
    strings = {spec.name: str for spec in schema.inputs if spec.type == DataType.string}
    return table.astype(strings).reset_index(drop=True)


def check_input(data: Any, model: Any, model_info: dict[str, Any]) -> Any:
    """``data`` checked against the model's input signature before any scoring, in the model's form.

    Tensor signatures (the CNN) check the shape and give the model's dtype;
    column signatures (the RNN) check that the named columns are present and
    filled, and keep only those.
    """
    where = f"{model_info['model_name']} version {model_info['model_version']}"
    if len(data) == 0:
        raise ValueError(f"The input is empty: nothing for {where} to score.")
    schema = model.metadata.get_input_schema()
    if schema is None:
        logger.warning("%s has no signature: the input is not checked", where)
        return data
    if schema.is_tensor_spec():
        return _check_tensor(data, schema.inputs[0], where)
    return _check_columns(data, schema, where)


def _batches(model: Any, data: Any, batch_size: int) -> list:
    """``model``'s answers for ``data`` in batches; a refused batch is named by its rows in ``data``."""
    from mlflow.exceptions import MlflowException

    answers = []
    for start in range(0, len(data), batch_size):
        try:
            answers.append(model.predict(data[start : start + batch_size]))
        except MlflowException as error:
            end = min(start + batch_size, len(data)) - 1
            raise ValueError(
                f"The model refused input rows {start}-{end} (numbered from 0 within them: {error.message})"
            ) from None
    return answers


def predict_images(model: Any, images: np.ndarray, model_info: dict[str, Any], params: dict[str, Any]) -> pd.DataFrame:
    """One row per image: ``prediction`` (class index), ``label_name``, ``probability`` and the model columns.

    ``images`` are raw pixel values 0-255; the registered model names its classes.
    """
    batch_size = InferenceModelParams.model_validate(params).batch_size
    answers = pd.concat(_batches(model, images, batch_size), ignore_index=True)
    return answers[["prediction", "label_name", "probability"]].assign(**_model_columns(model_info))


def predict_sentences(model: Any, sentences: pd.DataFrame, model_info: dict[str, Any], params: dict[str, Any]) -> pd.DataFrame:
    """One row per sentence: ``sentence``, ``label`` (class name), ``probability`` and the model columns."""
    batch_size = InferenceModelParams.model_validate(params).batch_size
    answers = pd.concat(_batches(model, sentences, batch_size), ignore_index=True)
    return pd.DataFrame(
        {
            "sentence": sentences["sentence"].astype(str),
            "label": answers["label"],
            "probability": answers["probability"],
        }
    ).assign(**_model_columns(model_info))


def _model_columns(model_info: dict[str, Any]) -> dict[str, Any]:
    return {key: model_info[key] for key in ("model_name", "model_version", "model_run_id")}
