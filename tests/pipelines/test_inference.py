"""Batch inference: its nodes against a real registered pyfunc model, and ``kedro run --pipeline
inference_cnn|inference_rnn`` (e2e) against models the test pipelines registered.

``registered_project`` runs ``kedro run --pipeline cnn --env test`` and
``--pipeline rnn --env test`` once per session (tests/test_serving.py shares
it) and points each test at that project and its MLflow store. conf/test reads
inputs in chunks of 5 and scores batches of 3, so every run crosses chunk boundaries.
"""

from __future__ import annotations

import base64
import warnings
from collections.abc import Iterator
from pathlib import Path

import mlflow
import mlflow.tracking._tracking_service.utils as mlflow_tracking
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from kedro.framework.startup import bootstrap_project
from kedro.io import DatasetError
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.tracking import MlflowClient
from mlflow.types import Schema, TensorSpec
from PIL import Image

from dlflow.io import ChunkedParquetDataset, ImagesFileDataset
from dlflow.io.inference_inputs import InputRefused
from dlflow.model_registry.champion import LoadedModel, RegisteredModelDataset
from dlflow.pipelines.inference.nodes import score_images
from dlflow.sources.idx import read_idx, write_idx
from dlflow.sources.image_files import decode_image
from tests.conftest import commit_project, copy_project, run_pipeline
from tests.mlflow_queries import pipeline_filter

CNN_MODEL, RNN_MODEL = "dlflow-cnn-fashion_mnist-test", "dlflow-rnn-mr-test"
CNN_PREDICTIONS = Path("data/07_model_output/inference/cnn_predictions.parquet")
RNN_PREDICTIONS = Path("data/07_model_output/inference/rnn_predictions.parquet")
MODEL_COLUMNS = ["model_name", "model_version", "model_run_id"]
FASHION = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
CLASSES = [f"p_{name}" for name in FASHION]  # a probability column for every class
SENTENCES = ["a gripping , beautifully acted film .", "dull , lifeless and far too long .", "it is a movie ."]

# Accuracy does not matter here: a smaller subset and network than --env test alone.
SMALLER = {"cnn.data.max_train_samples": 600, "cnn.training.epochs": 1, "rnn.max_length": 20, "rnn.model.hidden_size": 16}

_built: dict[str, Path] = {}  # one project per session, whichever module asks first


def _use_project(patch: pytest.MonkeyPatch, root: Path, mirror: Path) -> Path:
    """Work in ``root/project`` with the MLflow store in ``root/mlruns`` (as ``kedro_project`` does).

    kedro-mlflow sets MLflow's process-wide tracking URI; ``patch`` puts the
    previous one back afterwards, so later tests' clients do not follow ours.
    """
    patch.setattr(mlflow_tracking, "_tracking_uri", None)
    patch.chdir(root / "project")
    patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlruns' / 'mlflow.db'}")
    patch.setenv("DLFLOW_DATA_MIRROR", str(mirror))
    bootstrap_project(root / "project")
    return root / "project"


def _build_registered_project(tmp_path_factory: pytest.TempPathFactory, mirror: Path) -> Path:
    if "root" not in _built:
        root = tmp_path_factory.mktemp("registered")
        copy_project(root / "project")
        commit_project(root / "project")  # registered versions then carry a real commit
        (root / "mlruns").mkdir()
        with pytest.MonkeyPatch.context() as patch:
            _use_project(patch, root, mirror)
            run_pipeline("cnn", **SMALLER)
            run_pipeline("rnn", **SMALLER)
        _built["root"] = root
    return _built["root"]


@pytest.fixture
def registered_project(tmp_path_factory, data_mirror: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project whose registry holds the test CNN and RNN, each with a ``champion``; cwd and MLflow point at it."""
    return _use_project(monkeypatch, _build_registered_project(tmp_path_factory, data_mirror), data_mirror)


def write_test_images(path: Path, mirror: Path, count: int) -> np.ndarray:
    """The first ``count`` Fashion-MNIST test images as a gzipped IDX file at ``path``."""
    images = read_idx(mirror / "fashion-mnist" / "t10k-images-idx3-ubyte.gz")[:count]
    write_idx(images, path, gzip=True)
    return images


def latest_run(pipeline: str):
    """The newest finished run of ``pipeline``, in the inference experiment."""
    client = MlflowClient()
    experiment = client.get_experiment_by_name("dlflow/inference")
    runs = client.search_runs(
        [experiment.experiment_id],
        pipeline_filter(pipeline) + " and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
    )
    return runs[0]


# --------------------------------------------------------------------------- the nodes, with a real registered model


class Brightness(mlflow.pyfunc.PythonModel):
    """Classifies 8x8 grey images as ``dark`` or ``light`` by their mean: pixel arrays or base64 image files, as
    the served CNN takes them. It refuses other sizes with MLflow's error, as a servable model does."""

    def predict(self, context, model_input, params=None):
        if isinstance(model_input, pd.DataFrame):
            pixels = np.stack([decode_image(base64.b64decode(v), (8, 8), 1) for v in model_input["image"]])[..., 0]
        else:
            pixels = np.asarray(model_input, dtype=np.float64)
        if pixels.shape[1:] != (8, 8):
            raise MlflowException(f"Invalid input: shape {pixels.shape}, expected (N, 8, 8)", INVALID_PARAMETER_VALUE)
        light = pixels.reshape(len(pixels), -1).mean(axis=1) / 255.0
        best = (light >= 0.5).astype(np.int64)
        return pd.DataFrame(
            {
                "prediction": best,
                "label_name": np.array(["dark", "light"])[best],
                "probability": np.maximum(light, 1 - light),
                "p_dark": 1 - light,
                "p_light": light,
            }
        )


@pytest.fixture(scope="module")
def brightness(tmp_path_factory) -> Iterator[dict[str, LoadedModel]]:
    """``brightness`` version 1 (``plain``: no signature, like the served CNN) and 2 (``tensor``: a float tensor
    signature (-1, 8, 8)),
    registered in an SQLite store and loaded by ``RegisteredModelDataset`` as the pipeline loads its champion."""
    root = tmp_path_factory.mktemp("brightness")
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    mlflow.set_experiment(experiment_id=mlflow.create_experiment("brightness", (root / "artifacts").as_uri()))
    tensor = ModelSignature(inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, 8, 8))]))
    client = MlflowClient()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no type hints, no input example: the test model needs neither
        for version, alias, signature in ((1, "plain", None), (2, "tensor", tensor)):
            with mlflow.start_run():
                mlflow.pyfunc.log_model(
                    name="model", python_model=Brightness(), signature=signature, registered_model_name="brightness"
                )
            client.set_registered_model_alias("brightness", alias, str(version))
    aliases = ("plain", "tensor")
    models = {alias: RegisteredModelDataset(family="cnn", model_name="brightness", alias=alias).load() for alias in aliases}
    mlflow.set_tracking_uri(previous)
    yield models


def score(path: Path, champion: LoadedModel, output: Path, chunk_size: int = 3) -> pd.DataFrame:
    """``path`` scored by the ``score_images`` node into ``output`` through the catalog's dataset type."""
    params = {"model_name": "brightness", "alias": champion.info["model_uri"].split("@")[1], "chunk_size": chunk_size}
    chunks, _ = score_images(ImagesFileDataset(filepath=str(path)).load(), champion, params | {"batch_size": 2}, {})
    dataset = ChunkedParquetDataset(filepath=str(output))
    dataset.save(chunks)
    return dataset.load()


def test_a_folder_is_read_checked_scored_and_written_chunk_by_chunk(brightness, tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    shades = {
        "a/black.png": 0,
        "a/b/grey.jpg": 90,
        "white.png": 255,
        "z/light.bmp": 200,
        "dim.png": 30,
        "x.webp": 240,
        "y.png": 10,
    }
    for name, shade in shades.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        mode, colour = ("RGB", (shade,) * 3) if name.endswith("jpg") else ("L", shade)
        Image.new(mode, (12 if name == "dim.png" else 8, 8), colour).save(folder / name)
    (folder / "notes.txt").write_text("not an image")

    table = score(folder, brightness["plain"], tmp_path / "out" / "predictions.parquet")
    assert list(table.columns) == ["path", "prediction", "label_name", "probability", "p_dark", "p_light", *MODEL_COLUMNS]
    assert table["path"].tolist() == sorted(shades, key=lambda name: Path(name).parts)
    expected = {name: "light" if shade >= 128 else "dark" for name, shade in shades.items()}
    assert dict(zip(table["path"], table["label_name"])) == expected
    assert (table["p_dark"] + table["p_light"]).to_numpy() == pytest.approx(1.0)
    assert (table["model_name"].unique().tolist(), table["model_version"].unique().tolist()) == (["brightness"], [1])
    assert pq.ParquetFile(tmp_path / "out" / "predictions.parquet").metadata.num_row_groups == 3  # 7 files, chunks of 3

    # an IDX file and a pixels table of the same images: the same answers, by row
    pixels = np.stack([np.full((8, 8), shade, np.uint8) for shade in (0, 90, 255, 200, 30)])
    by_row = score(write_idx(pixels, tmp_path / "shades.idx", gzip=True), brightness["tensor"], tmp_path / "idx.parquet")
    assert list(by_row.columns)[:2] == ["row", "prediction"] and by_row["row"].tolist() == [0, 1, 2, 3, 4]
    assert by_row["label_name"].tolist() == ["dark", "dark", "light", "light", "dark"]


def test_every_refusal_names_the_file_and_leaves_no_output(brightness, tmp_path: Path) -> None:
    output = tmp_path / "out" / "predictions.parquet"
    folder = tmp_path / "photos"
    folder.mkdir()
    for index in range(5):
        Image.fromarray(np.random.default_rng(index).integers(0, 256, (8, 8), dtype=np.uint8)).save(folder / f"{index}.png")
    data = (folder / "4.png").read_bytes()
    (folder / "4.png").write_bytes(data[: len(data) // 2])  # in the second chunk: the first was scored already
    with pytest.raises(InputRefused, match=rf"{folder / '4.png'}: corrupt or truncated PNG"):
        score(folder, brightness["plain"], output)
    assert not output.parent.exists() or list(output.parent.iterdir()) == []

    big = write_idx(np.zeros((7, 9, 9), np.uint8), tmp_path / "big.idx")
    with pytest.raises(InputRefused, match=r"big\.idx images 0-1: brightness version 1 refused them .*shape \(2, 9, 9\)"):
        score(big, brightness["plain"], output)  # no signature: the model's own refusal, named by file and rows
    with pytest.raises(InputRefused, match=r"big\.idx images 0-2: images of shape \(9, 9\) .* brightness version 2, "):
        score(big, brightness["tensor"], output)  # a tensor signature: checked before scoring
    (folder / "4.png").write_bytes(data)
    with pytest.raises(InputRefused, match=rf"{folder}: brightness version 2 takes pixel arrays shaped \(N, 8, 8\), not image"):
        score(folder, brightness["tensor"], output)
    assert not output.exists()

    with pytest.raises(ValueError, match=r"name models:/other@plain, but the catalog entry cnn_champion loaded"):
        score_images(
            ImagesFileDataset(filepath=str(big)).load(), brightness["plain"], {"model_name": "other", "alias": "plain"}, {}
        )


# --------------------------------------------------------------------------- kedro run


@pytest.mark.e2e
def test_cnn_champion_scores_an_idx_file_and_the_test_table(registered_project: Path, data_mirror: Path) -> None:
    champion = MlflowClient().get_model_version_by_alias(CNN_MODEL, "champion")

    images = write_test_images(registered_project / "images.gz", data_mirror, 8)  # chunks of 5 (conf/test)
    run_pipeline("inference_cnn", images_path=str(registered_project / "images.gz"))
    predictions = pd.read_parquet(CNN_PREDICTIONS)
    assert list(predictions.columns) == ["row", "prediction", "label_name", "probability", *CLASSES, *MODEL_COLUMNS]
    assert predictions["row"].tolist() == list(range(8)) and predictions["prediction"].dtype == np.int64
    assert len(predictions) == len(images) and predictions["probability"].between(0.1, 1.0).all()
    assert predictions[CLASSES].sum(axis=1).to_numpy() == pytest.approx(1.0, abs=1e-5)
    assert (predictions[CLASSES].max(axis=1) == predictions["probability"]).all()
    assert set(predictions["model_name"]) == {CNN_MODEL}
    assert set(predictions["model_version"]) == {int(champion.version)}
    assert set(predictions["model_run_id"]) == {champion.run_id}
    run = latest_run("inference_cnn")
    assert run.data.tags["inference.cnn.model_version"] == str(champion.version)
    assert run.data.tags["inference.cnn.model_run_id"] == champion.run_id
    assert run.data.params["inference.cnn.model_name"] == CNN_MODEL
    assert run.data.params["inference.cnn.alias"] == "champion"

    # a parquet `pixels` table: the same answers as the training run gave on its test split
    run_pipeline("inference_cnn", images_path="data/05_model_input/cnn/test.parquet")
    predictions = pd.read_parquet(CNN_PREDICTIONS)
    expected = pd.read_parquet("data/07_model_output/cnn/test_predictions.parquet")
    assert (predictions["prediction"].to_numpy() == expected["prediction"].to_numpy()).all()
    assert predictions["row"].tolist() == list(range(len(expected)))
    assert set(predictions["label_name"]) <= {column[2:] for column in CLASSES}


@pytest.mark.e2e
def test_cnn_champion_scores_a_folder_of_image_files(registered_project: Path, data_mirror: Path) -> None:
    """The first test images as PNG files in nested folders (grey, and grey saved as RGB) give the IDX file's answers."""
    images = write_test_images(registered_project / "folder-images.gz", data_mirror, 7)
    folder = registered_project / "new-photos"
    names = ["a/0.png", "a/b/1.png", "b/2.png", "c/3.png", "c/4.png", "c/5.png", "d/6.png"]
    for name, image in zip(names, images):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).convert("RGB" if name.startswith("c/") else "L").save(folder / name)
    (folder / "README.md").write_text("not an image")
    run_pipeline("inference_cnn", images_path=str(registered_project / "folder-images.gz"))
    from_idx = pd.read_parquet(CNN_PREDICTIONS)
    run_pipeline("inference_cnn", images_path=str(folder))
    from_files = pd.read_parquet(CNN_PREDICTIONS)
    assert list(from_files.columns) == ["path", "prediction", "label_name", "probability", *CLASSES, *MODEL_COLUMNS]
    assert from_files["path"].tolist() == names
    assert from_files["label_name"].tolist() == from_idx["label_name"].tolist()
    assert from_files[CLASSES].to_numpy() == pytest.approx(from_idx[CLASSES].to_numpy(), abs=1e-5)


@pytest.mark.e2e
def test_rnn_champion_scores_a_text_file_and_sentence_tables(registered_project: Path) -> None:
    champion = MlflowClient().get_model_version_by_alias(RNN_MODEL, "champion")

    (registered_project / "reviews.txt").write_text("\n".join(SENTENCES) + "\n\n")
    run_pipeline("inference_rnn", sentences_path=str(registered_project / "reviews.txt"))
    predictions = pd.read_parquet(RNN_PREDICTIONS)
    columns = ["row", "sentence", "label", "probability", "p_negative", "p_positive", *MODEL_COLUMNS]
    assert list(predictions.columns) == columns
    assert predictions["sentence"].tolist() == SENTENCES  # the blank line is not a sentence
    assert predictions["row"].tolist() == [0, 1, 2]
    assert set(predictions["label"]) <= {"negative", "positive"}
    assert predictions["probability"].between(0.5, 1.0).all()
    assert (predictions["p_negative"] + predictions["p_positive"]).to_numpy() == pytest.approx(1.0, abs=1e-5)
    assert set(predictions["model_version"]) == {int(champion.version)}
    assert latest_run("inference_rnn").data.tags["inference.rnn.model_run_id"] == champion.run_id

    # a parquet `sentence` table: the same answers as the out-of-fold predictions of the training run
    out_of_fold = pd.read_parquet("data/07_model_output/rnn/out_of_fold_predictions.parquet").head(12)
    sentences = pd.read_parquet("data/02_intermediate/mr/sentences.parquet").iloc[out_of_fold["row"]]
    sentences.to_parquet(registered_project / "sentences.parquet")
    run_pipeline("inference_rnn", sentences_path=str(registered_project / "sentences.parquet"))
    from_parquet = pd.read_parquet(RNN_PREDICTIONS)
    assert from_parquet["label"].tolist() == [["negative", "positive"][i] for i in out_of_fold["prediction"]]

    # a CSV export with the text in its own column (chunks of 5: 12 rows cross two boundaries)
    table = pd.DataFrame({"ticket": range(12), "review": sentences["sentence"].to_numpy(), "stars": 3})
    table.to_csv(registered_project / "Support Tickets.csv", index=False)
    run_pipeline(
        "inference_rnn",
        sentences_path=str(registered_project / "Support Tickets.csv"),
        **{"inference.rnn.text_column": "review"},
    )
    from_csv = pd.read_parquet(RNN_PREDICTIONS)
    assert from_csv["row"].tolist() == list(range(12)) and from_csv["sentence"].tolist() == table["review"].tolist()
    assert from_csv["label"].tolist() == from_parquet["label"].tolist()
    assert from_csv["p_positive"].to_numpy() == pytest.approx(from_parquet["p_positive"].to_numpy(), abs=1e-6)


@pytest.mark.e2e
def test_inference_scores_both_families_default_inputs(registered_project: Path) -> None:
    """``kedro run --pipeline inference``: the image data set's test table (part files) and the labelled sentences."""
    bigger = {f"inference.{family}.{key}": 4096 for family in ("cnn", "rnn") for key in ("chunk_size", "batch_size")}
    run_pipeline("inference", **bigger)
    images = pd.read_parquet("data/02_intermediate/fashion_mnist/test")
    sentences = pd.read_parquet("data/02_intermediate/mr/sentences.parquet")
    cnn, rnn = pd.read_parquet(CNN_PREDICTIONS), pd.read_parquet(RNN_PREDICTIONS)
    assert cnn["row"].tolist() == list(range(len(images))) and rnn["row"].tolist() == list(range(len(sentences)))
    assert rnn["sentence"].tolist() == sentences["sentence"].tolist()
    assert set(cnn["model_name"]) == {CNN_MODEL} and set(rnn["model_name"]) == {RNN_MODEL}


@pytest.mark.e2e
def test_missing_model_or_alias_says_how_to_fix_it(registered_project: Path) -> None:
    # the catalog entries cnn_champion / rnn_champion raise them; Kedro names the entry in a DatasetError
    with pytest.raises(DatasetError, match=r"cnn_champion: No registered model 'nope'.*kedro run --pipeline cnn") as error:
        run_pipeline("inference_cnn", **{"inference.cnn.model_name": "nope"})
    assert isinstance(error.value.__cause__, LookupError)
    no_alias = r"'dlflow-rnn-mr-test' has no alias 'gold' \(its aliases: champion \(version 1\)\)"
    with pytest.raises(DatasetError, match=no_alias + r".*kedro run --pipeline rnn.*inference\.rnn\.alias") as error:
        run_pipeline("inference_rnn", **{"inference.rnn.alias": "gold"})
    assert isinstance(error.value.__cause__, LookupError)

    # the alias set in one place only (the parameters, not the catalog entry rnn_champion): stopped, both named
    parameters = registered_project / "conf" / "test" / "parameters_inference.yml"
    original = parameters.read_text()
    changed = original.replace("alias: champion\n    chunk_size: 5\n    batch_size: 3\n    text_column", "alias: challenger\n"
                               "    chunk_size: 5\n    batch_size: 3\n    text_column")  # fmt: skip
    assert changed != original
    parameters.write_text(changed)
    try:
        with pytest.raises(ValueError, match=r"name models:/dlflow-rnn-mr-test@challenger, but the catalog entry rnn_champion"):
            run_pipeline("inference_rnn")
    finally:
        parameters.write_text(original)


@pytest.mark.e2e
def test_bad_input_or_parameters_stop_before_anything_is_written(registered_project: Path) -> None:
    for predictions in (CNN_PREDICTIONS, RNN_PREDICTIONS):
        predictions.unlink(missing_ok=True)
    with pytest.raises(ValueError, match=r"inference\.cnn\.batch_size"):
        run_pipeline("inference_cnn", **{"inference.cnn.batch_size": 0})
    with pytest.raises(ValueError, match=r"inference\.rnn\.chunk_size"):
        run_pipeline("inference_rnn", **{"inference.rnn.chunk_size": 0})
    with pytest.raises(DatasetError, match=r"No images file or folder at .*missing\.idx: name one with --params images_path="):
        run_pipeline("inference_cnn", images_path="missing.idx")
    # refused while the output is written: Kedro's catalog names the output data set, then the input file
    write_idx(np.zeros((3, 32, 32), np.uint8), registered_project / "big.idx")
    with pytest.raises(DatasetError, match=r"cnn_inference_predictions: .*big\.idx images 0-2: .*\(3, 32, 32\)") as error:
        run_pipeline("inference_cnn", images_path=str(registered_project / "big.idx"))
    assert isinstance(error.value.__cause__, InputRefused)
    pd.DataFrame({"text": SENTENCES}).to_parquet(registered_project / "no_sentence.parquet")
    with pytest.raises(DatasetError, match=r"no_sentence\.parquet has no column 'sentence'.*inference\.rnn\.text_column="):
        run_pipeline("inference_rnn", sentences_path=str(registered_project / "no_sentence.parquet"))
    pd.DataFrame({"sentence": ["fine .", "good .", ""]}).to_parquet(registered_project / "gap.parquet")
    with pytest.raises(DatasetError, match=r"gap\.parquet: row 2 has the sentence ''; every row needs a non-empty string"):
        run_pipeline("inference_rnn", sentences_path=str(registered_project / "gap.parquet"))
    (registered_project / "blank.txt").write_text("\n  \n")
    with pytest.raises(DatasetError, match=r"blank\.txt holds no sentences: every line is blank"):
        run_pipeline("inference_rnn", sentences_path=str(registered_project / "blank.txt"))
    # refused in the third chunk of five images: the two chunks scored before it are not written either
    pixels = [np.full(784, 7.0)] * 12
    pixels[11] = np.r_[np.full(783, 7.0), np.nan]
    pd.DataFrame({"pixels": pixels}).to_parquet(registered_project / "nan.parquet")
    with pytest.raises(DatasetError, match=r"nan\.parquet: 'pixels' row 11 has the value nan at position 783: .* 0-255"):
        run_pipeline("inference_cnn", images_path=str(registered_project / "nan.parquet"))
    assert not CNN_PREDICTIONS.exists() and not RNN_PREDICTIONS.exists()
    assert list(CNN_PREDICTIONS.parent.iterdir()) == []  # no temporary file either
