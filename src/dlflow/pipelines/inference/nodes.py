"""Batch inference nodes: check the input against the registered model's signature, score it.

The model comes from the catalog (``<family>_champion``,
``dlflow.model_registry.champion.RegisteredModelDataset``): one version of
``models:/<name>@<alias>``, already recorded on the MLflow run. Its name,
version and training run id go into every output row. No MLflow here.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)


def _check_tensor(data: np.ndarray, spec: Any, where: str) -> np.ndarray:
    expected = tuple(spec.shape)
    data = np.asarray(data)
    shown = "(N, " + ", ".join(map(str, expected[1:])) + ")"
    if data.ndim != len(expected) or any(e not in (-1, a) for e, a in zip(expected, data.shape)):
        raise ValueError(f"Input of shape {data.shape} does not match {where}, which takes {shown} arrays.")
    return data.astype(spec.type)


def _check_columns(data: pd.DataFrame, schema: Any, where: str) -> pd.DataFrame:
    if not isinstance(data, pd.DataFrame):
        raise ValueError(f"{where} takes a table with columns {schema.input_names()}, got {type(data).__name__}.")
    missing = [name for name in schema.required_input_names() if name not in data.columns]
    if missing:
        raise ValueError(f"Input lacks column(s) {missing} that {where} needs; it has {list(data.columns)}.")
    table = data[schema.input_names()]
    if table.isna().any().any():
        empty = list(table.columns[table.isna().any()])
        raise ValueError(f"Input has missing values in {empty}; {where} needs every row filled.")
    strings = {spec.name: str for spec in schema.inputs if getattr(spec.type, "name", "") == "string"}
    return table.astype(strings).reset_index(drop=True)


def _check_selection(champion: Any, model_name: str, alias: str) -> None:
    """The catalog loaded the model that the parameters name (the run is named and logged after those)."""
    asked = f"models:/{model_name}@{alias}"
    if champion.info["model_uri"] != asked:
        family = champion.family
        raise ValueError(
            f"The parameters inference.{family}.model_name/alias name {asked}, but the catalog entry "
            f"{family}_champion loaded {champion.info['model_uri']}: change both conf/*/parameters_inference.yml "
            f"and conf/*/catalog_inference.yml, or override both with --params inference.{family}.alias=<alias>."
        )


def check_input(data: Any, champion: Any, model_name: str, alias: str) -> Any:
    """``data`` checked against ``champion``'s input signature before any scoring, in the model's form.

    ``champion`` is a ``dlflow.model_registry.champion.LoadedModel``; ``model_name``
    and ``alias`` are the parameters it must match. Tensor signatures (the CNN)
    check the shape and give the model's dtype; column signatures (the RNN)
    check that the named columns are present and filled, and keep only those.
    """
    _check_selection(champion, model_name, alias)
    where = f"{champion.info['model_name']} version {champion.info['model_version']}"
    if len(data) == 0:
        raise ValueError(f"The input is empty: nothing for {where} to score.")
    schema = champion.input_schema
    if schema is None:
        logger.warning("%s has no signature: the input is not checked", where)
        return data
    if schema.is_tensor_spec():
        return _check_tensor(data, schema.inputs[0], where)
    return _check_columns(data, schema, where)


def _batches(champion: Any, data: Any, batch_size: int) -> list:
    """``champion``'s answers for ``data`` in batches; a refused batch is named by its rows in ``data``."""
    answers = []
    for start in range(0, len(data), batch_size):
        try:
            answers.append(champion.predict(data[start : start + batch_size]))
        except ValueError as error:
            end = min(start + batch_size, len(data)) - 1
            raise ValueError(f"The model refused input rows {start}-{end} (numbered from 0 within them: {error})") from None
    return answers


def predict_images(images: np.ndarray, champion: Any, batch_size: int) -> pd.DataFrame:
    """One row per image: ``prediction`` (class index), ``label_name``, ``probability`` and the model columns.

    ``images`` are raw pixel values 0-255, checked by ``check_input``; the registered model names its classes.
    """
    answers = pd.concat(_batches(champion, images, batch_size), ignore_index=True)
    return answers[["prediction", "label_name", "probability"]].assign(**_model_columns(champion.info))


def predict_sentences(sentences: pd.DataFrame, champion: Any, batch_size: int) -> pd.DataFrame:
    """One row per sentence: ``sentence``, ``label`` (class name), ``probability`` and the model columns."""
    answers = pd.concat(_batches(champion, sentences, batch_size), ignore_index=True)
    return pd.DataFrame(
        {
            "sentence": sentences["sentence"].astype(str),
            "label": answers["label"],
            "probability": answers["probability"],
        }
    ).assign(**_model_columns(champion.info))


def _model_columns(model_info: dict[str, Any]) -> dict[str, Any]:
    return {key: model_info[key] for key in ("model_name", "model_version", "model_run_id")}
