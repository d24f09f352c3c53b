"""``RegisteredModelDataset`` against a real MLflow registry (SQLite store in tmp_path) holding a tiny
pyfunc model in two versions, and the project's ``<family>_champion`` catalog entries built on it."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd
import pytest
from kedro.config import OmegaConfigLoader
from kedro.io import DataCatalog, DatasetError
from mlflow.models import ModelSignature
from mlflow.tracking import MlflowClient
from mlflow.types import ColSpec, Schema

from dlflow.model_registry.champion import LoadedModel, RegisteredModelDataset
from dlflow.settings import CONFIG_LOADER_ARGS

# the tiny test model needs neither type hints nor an input example
pytestmark = pytest.mark.filterwarnings("ignore:.*(type hints|input example).*:UserWarning")

NAME = "champion-test"
CONF = Path(__file__).resolve().parents[2] / "conf"


class Answer(mlflow.pyfunc.PythonModel):
    """Answers every sentence with its version's number, so a test can tell which version scored."""

    def __init__(self, answer: int) -> None:
        self.answer = answer

    def predict(self, context, model_input, params=None):
        return pd.DataFrame({"answer": [self.answer] * len(model_input)})


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> MlflowClient:
    """``NAME`` versions 1 and 2 (answering 1 and 2), ``champion`` on version 1; their training run ids in ``runs``."""
    monkeypatch.chdir(tmp_path)
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_experiment(experiment_id=mlflow.create_experiment("champion-tests", (tmp_path / "artifacts").as_uri()))
    signature = ModelSignature(inputs=Schema([ColSpec("string", "sentence")]))
    client = MlflowClient()
    client.runs = {}
    for answer in (1, 2):
        with mlflow.start_run() as run:
            mlflow.pyfunc.log_model(
                name="model",
                python_model=Answer(answer),
                signature=signature,
                registered_model_name=NAME,
                pip_requirements=["mlflow"],
            )
        client.runs[answer] = run.info.run_id
    client.set_registered_model_alias(NAME, "champion", "1")
    yield client
    mlflow.set_tracking_uri(previous)


def answers(model: LoadedModel) -> list[int]:
    return model.predict(pd.DataFrame({"sentence": ["fine .", "dull ."]}))["answer"].tolist()


def test_the_alias_is_resolved_to_a_version_that_the_run_records(registry: MlflowClient) -> None:
    with mlflow.start_run() as run:
        model = RegisteredModelDataset(family="rnn", model_name=NAME).load()
    assert model.info == {
        "model_name": NAME,
        "model_version": 1,
        "model_run_id": registry.runs[1],
        "model_uri": f"models:/{NAME}@champion",
    }
    assert model.family == "rnn" and model.input_schema.input_names() == ["sentence"]
    assert answers(model) == [1, 1]
    tags = registry.get_run(run.info.run_id).data.tags
    assert tags["inference.rnn.model_name"] == NAME and tags["inference.rnn.model_version"] == "1"
    assert tags["inference.rnn.model_run_id"] == registry.runs[1]
    assert tags["inference.rnn.model_uri"] == f"models:/{NAME}@champion"

    registry.set_registered_model_alias(NAME, "challenger", "2")
    assert RegisteredModelDataset(family="rnn", model_name=NAME, alias="challenger").load().info["model_version"] == 2


def test_an_alias_moved_after_loading_does_not_change_the_loaded_model(registry: MlflowClient) -> None:
    dataset = RegisteredModelDataset(family="cnn", model_name=NAME)
    model = dataset.load()
    registry.set_registered_model_alias(NAME, "champion", "2")
    assert answers(model) == [1, 1] and model.info["model_version"] == 1
    assert answers(dataset.load()) == [2, 2]  # a new load() follows the alias


def test_unknown_model_or_alias_says_how_to_fix_it(registry: MlflowClient) -> None:
    dataset = RegisteredModelDataset(family="cnn", model_name="nope")
    with pytest.raises(LookupError, match=r"No registered model 'nope'.*kedro run --pipeline cnn.*inference\.cnn\.model_name="):
        dataset.load()
    assert not dataset.exists()
    dataset = RegisteredModelDataset(family="rnn", model_name=NAME, alias="gold")
    no_alias = rf"'{NAME}' has no alias 'gold' \(its aliases: champion \(version 1\)\)"
    with pytest.raises(DatasetError, match=no_alias + r".*kedro run --pipeline rnn.*inference\.rnn\.alias=<alias>"):
        dataset.load()
    assert not dataset.exists() and RegisteredModelDataset(family="rnn", model_name=NAME).exists()


def test_refused_input_is_a_value_error_and_the_dataset_is_read_only(registry: MlflowClient) -> None:
    dataset = RegisteredModelDataset(family="rnn", model_name=NAME)
    assert "champion-test" in repr(dataset) and "champion" in str(dataset._describe())
    model = dataset.load()
    with pytest.raises(ValueError, match="sentence"):
        model.predict(pd.DataFrame({"text": ["no sentence column"]}))
    with pytest.raises(DatasetError, match=rf"models:/{NAME}@champion is read-only"):
        dataset.save(model)


def catalog_config(env: str, runtime_params: dict | None = None) -> tuple[dict, dict]:
    """The project's resolved ``catalog`` and ``parameters`` for ``env``, as ``kedro run --env <env> --params ...``
    (with the project's resolvers, ``dlflow.dataset_name`` among them)."""
    loader = OmegaConfigLoader(
        str(CONF),
        base_env="base",
        default_run_env="local",
        env=env,
        runtime_params=runtime_params,
        custom_resolvers=CONFIG_LOADER_ARGS["custom_resolvers"],
    )
    return loader["catalog"], loader["parameters"]


YOUR_DATA = {
    "image_source": "folder",
    "images_dir": "/data/Product Photos/",
    "text_source": "table",
    "labelled_text": "/x/Tickets 2024.csv",
}


@pytest.mark.parametrize("env", ["local", "test"])
@pytest.mark.parametrize(
    "overrides",
    [
        None,
        {"image_source": "mnist"},
        YOUR_DATA,
        YOUR_DATA | {"dataset_name": "Spring Catalogue"},
        {"inference": {"cnn": {"alias": "challenger"}, "rnn": {"model_name": "other"}}},
    ],
)
def test_the_catalog_loads_the_model_that_the_parameters_name(env: str, overrides: dict | None) -> None:
    catalog, params = catalog_config(env, overrides)
    for family in ("cnn", "rnn"):
        entry = catalog[f"{family}_champion"]["dataset"]
        assert (entry["model_name"], entry["alias"]) == (
            params["inference"][family]["model_name"],
            params["inference"][family]["alias"],
        )
    suffix = "-test" if env == "test" else ""
    cnn, rnn = catalog["cnn_champion"]["dataset"], catalog["rnn_champion"]["dataset"]
    if overrides and "inference" in overrides:  # --params inference.cnn.alias=challenger,inference.rnn.model_name=other
        assert (cnn["alias"], rnn["model_name"]) == ("challenger", "other")
        return
    images, text = {None: ("fashion_mnist", "mr"), "mnist": ("mnist", "mr"), "folder": ("product-photos", "tickets-2024")}[
        (overrides or {}).get("image_source")
    ]
    if "dataset_name" in (overrides or {}):  # the images' name, given (as registration takes it)
        images = "spring-catalogue"
    assert (cnn["model_name"], rnn["model_name"]) == (f"dlflow-cnn-{images}{suffix}", f"dlflow-rnn-{text}{suffix}")
    # inference finds the model by the rule that registration names it by
    assert (cnn["model_name"], rnn["model_name"]) == (
        params["cnn"]["registration"]["model_name"],
        params["rnn"]["registration"]["model_name"],
    )


def test_the_project_entry_loads_once_per_run_and_takes_params_overrides(registry: MlflowClient) -> None:
    registry.set_registered_model_alias(NAME, "challenger", "2")
    catalog = DataCatalog.from_config(catalog_config("test", {"inference": {"rnn": {"model_name": NAME}}})[0])
    model = catalog.load("rnn_champion")
    registry.set_registered_model_alias(NAME, "champion", "2")
    assert catalog.load("rnn_champion") is model  # the second node scores with the version the first one checked
    catalog.release("rnn_champion")  # the runner's, after the last node that reads it
    assert catalog.load("rnn_champion").info["model_version"] == 2

    overridden = {"inference": {"rnn": {"model_name": NAME, "alias": "challenger"}}}
    catalog = DataCatalog.from_config(catalog_config("local", overridden)[0])
    assert catalog.load("rnn_champion").info["model_uri"] == f"models:/{NAME}@challenger"
