"""A small servable CNN shared by the serving tests: trained once on 32x32 colour PNG/JPEG files of three
shapes, packaged as the pipeline packages it, and logged to a real SQLite MLflow store of its own."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import mlflow
import pytest

from dlflow.config import AugmentationParams, CnnModelParams, TrainingParams
from dlflow.model_registry.model import log_model
from dlflow.pipelines.cnn.nodes import compute_normalisation
from dlflow.serving.packaging import image_classifier_package
from dlflow.training.cnn import fit_cnn
from tests.training.test_cnn import FAST, SHAPES, colour_table


class Logged(NamedTuple):
    """The logged model: its store (``tracking_uri``), ``info`` (``info.model_uri``) and test table."""

    tracking_uri: str
    info: object
    test: object


@pytest.fixture(scope="package")
def trained(tmp_path_factory) -> tuple:
    """A small CNN trained on 32x32 colour PNG/JPEG files of three shapes, its normalisation and test table."""
    folder = tmp_path_factory.mktemp("shapes")
    train, test = colour_table(folder, per_class=40, seed=1), colour_table(folder, per_class=4, seed=2)
    normalisation = compute_normalisation(train)
    model = CnnModelParams(architecture="fast", options={"channels": [8, 16, 32]})
    result = fit_cnn(
        train, test, normalisation, list(SHAPES), model, TrainingParams(epochs=3, batch_size=32, lr=0.005, **FAST),
        AugmentationParams(), callbacks=[], checkpoint_dir=None,
    )  # fmt: skip
    return result.model, normalisation, test, model


@pytest.fixture(scope="package")
def logged(trained, tmp_path_factory) -> Logged:
    """The packaged model (test-time flip, ``pad`` resize) logged to a SQLite store in a temporary folder."""
    network, normalisation, test, model = trained
    store = tmp_path_factory.mktemp("store")
    package = image_classifier_package(
        network, normalisation, list(SHAPES), test, architecture="fast", options=model.options, flip_test_time=True, resize="pad"
    )
    tracking_uri = f"sqlite:///{Path(store) / 'mlflow.db'}"
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(tracking_uri)
    try:
        mlflow.set_experiment("serving-tests")
        with mlflow.start_run():
            info = log_model(package)
    finally:
        mlflow.set_tracking_uri(previous)
    return Logged(tracking_uri, info, test)
