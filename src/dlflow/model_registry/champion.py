"""``models:/<name>@<alias>`` as a read-only Kedro dataset, so that batch inference never imports MLflow.

``load()`` resolves the alias once to a concrete version (the alias cannot move
between resolving and loading), loads that version as a pyfunc model, records
it on the active MLflow run as tags ``inference.<family>.model_name`` /
``model_version`` / ``model_run_id`` / ``model_uri``, and returns a
:class:`LoadedModel`: what the version is (``info``), what it takes
(``input_schema``), ``predict``, which refuses bad input with a plain
``ValueError``, and the reference profile it was registered with (``profile``:
the artifact its tag ``monitoring.profile`` names, or None for a version
registered before monitoring, ``profile_note`` saying so). Example catalog entry (``conf/base/catalog_inference.yml``)::

    cnn_champion:
      type: CachedDataset        # loaded once per run: every node scores with the same version
      copy_mode: assign
      dataset:
        type: dlflow.model_registry.champion.RegisteredModelDataset
        family: cnn
        model_name: ${runtime_params:inference.cnn.model_name,dlflow-cnn-fashion_mnist}
        alias: ${runtime_params:inference.cnn.alias,champion}
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import mlflow
from kedro.io import AbstractDataset, DatasetError
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.models.signature import Schema
    from mlflow.pyfunc import PyFuncModel

    from dlflow.monitoring.profile import ReferenceProfile

logger = logging.getLogger(__name__)


class RegisteredModelNotFound(DatasetError, LookupError):
    """No such registered model, or no such alias on it; the message says how to fix it."""


@dataclass(frozen=True)
class LoadedModel:
    """One registered model version, loaded for scoring.

    ``info``: ``model_name``, ``model_version`` (int), ``model_run_id`` and
    ``model_uri`` (``models:/<name>@<alias>``, as asked for); ``family``: the
    ``inference.<family>`` it was loaded for; ``input_schema``: its signature's
    inputs, or None when it was logged without a signature.
    """

    info: dict[str, Any]
    family: str
    input_schema: Schema | None
    pyfunc: PyFuncModel = field(repr=False)
    profile: ReferenceProfile | None = field(default=None, repr=False)
    profile_note: str = ""

    def predict(self, batch: Any, params: dict[str, Any] | None = None) -> Any:
        """The model's answers for ``batch`` (``params``: its ``predict`` options, e.g. ``{"monitoring": True}``);
        ``ValueError`` with MLflow's message when it refuses the input."""
        try:
            return self.pyfunc.predict(batch, params=params) if params else self.pyfunc.predict(batch)
        except MlflowException as error:
            raise ValueError(error.message) from None


PROFILE_TAG = "monitoring.profile"  # on a model version: the artifact URI of its reference profile


def _reference_profile(version: ModelVersion) -> tuple[ReferenceProfile | None, str]:
    """The profile version ``version`` was registered with, or None and why not."""
    from dlflow.monitoring.profile import ReferenceProfile

    where = version.tags.get(PROFILE_TAG)
    if not where:
        return None, (
            f"version {version.version} of {version.name} was registered without a reference profile (before "
            "monitoring): the batch is scored unmonitored; register a new version (kedro run --pipeline <family>) to monitor it"
        )
    try:
        local = mlflow.artifacts.download_artifacts(artifact_uri=where)
        return ReferenceProfile.load(local), f"reference profile {where}"
    except (MlflowException, OSError, ValueError) as error:
        return None, f"the reference profile {where} of version {version.version} could not be read ({error}): scored unmonitored"


def _resolve_version(client: MlflowClient, name: str, alias: str, family: str) -> ModelVersion:
    """The model version ``name@alias`` points at; ``RegisteredModelNotFound`` saying how to fix it otherwise."""
    try:
        registered = client.get_registered_model(name)
    except MlflowException as error:
        if error.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        raise RegisteredModelNotFound(
            f"No registered model {name!r} in the MLflow registry at {mlflow.get_registry_uri()}. "
            f"Train and register it first with `kedro run --pipeline {family}`, "
            f"or name another model with --params inference.{family}.model_name=<name>."
        ) from None
    if alias not in registered.aliases:
        known = ", ".join(f"{a} (version {v})" for a, v in sorted(registered.aliases.items())) or "none"
        raise RegisteredModelNotFound(
            f"Registered model {name!r} has no alias {alias!r} (its aliases: {known}). "
            f"Run `kedro run --pipeline {family}` until a version passes the promotion gate, "
            f"or pick an existing alias with --params inference.{family}.alias=<alias>."
        )
    return client.get_model_version(name, registered.aliases[alias])


class RegisteredModelDataset(AbstractDataset[None, LoadedModel]):
    """``models:/<model_name>@<alias>`` for ``inference.<family>``: read-only, one version per ``load()``."""

    def __init__(self, *, family: str, model_name: str, alias: str = "champion", metadata: dict[str, Any] | None = None) -> None:
        self._family, self._model_name, self._alias = family, model_name, alias
        self.metadata = metadata

    def load(self) -> LoadedModel:
        version = _resolve_version(MlflowClient(), self._model_name, self._alias, self._family)
        pyfunc = mlflow.pyfunc.load_model(f"models:/{self._model_name}/{version.version}")
        info = {
            "model_name": self._model_name,
            "model_version": int(version.version),
            "model_run_id": version.run_id,
            "model_uri": f"models:/{self._model_name}@{self._alias}",
        }
        logger.info("Scoring with %s = version %s (run %s)", info["model_uri"], version.version, version.run_id)
        if mlflow.active_run() is not None:
            mlflow.set_tags({f"inference.{self._family}.{key}": str(value) for key, value in info.items()})
        profile, note = _reference_profile(version)
        if profile is None:
            logger.warning("Monitoring: %s", note)
        return LoadedModel(info, self._family, pyfunc.metadata.get_input_schema(), pyfunc, profile, note)

    def save(self, data: LoadedModel) -> None:
        raise DatasetError(
            f"models:/{self._model_name}@{self._alias} is read-only here: {type(self).__name__} loads a registered "
            "model; models are registered by `kedro run --pipeline <family>` (the registration pipeline)."
        )

    def _exists(self) -> bool:
        try:
            _resolve_version(MlflowClient(), self._model_name, self._alias, self._family)
        except RegisteredModelNotFound:
            return False
        return True

    def _describe(self) -> dict[str, Any]:
        return {"family": self._family, "model_name": self._model_name, "alias": self._alias}
