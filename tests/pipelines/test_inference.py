"""``kedro run --pipeline inference_cnn|inference_rnn`` against models the test pipelines registered.

``registered_project`` runs ``kedro run --pipeline cnn --env test`` and
``--pipeline rnn --env test`` once per session (tests/test_serving.py shares
it) and points each test at that project and its MLflow store.
"""

from __future__ import annotations

from pathlib import Path

import mlflow.tracking._tracking_service.utils as mlflow_tracking
import numpy as np
import pandas as pd
import pytest
from kedro.framework.startup import bootstrap_project
from kedro.io import DatasetError
from mlflow.tracking import MlflowClient

from dlflow.io import ImagesFileDataset, SentencesFileDataset
from dlflow.sources.idx import read_idx, write_idx
from tests.conftest import commit_project, copy_project, run_pipeline
from tests.mlflow_queries import pipeline_filter

pytestmark = pytest.mark.e2e

CNN_MODEL, RNN_MODEL = "dlflow-cnn-fashion_mnist-test", "dlflow-rnn-mr-test"
CNN_PREDICTIONS = Path("data/07_model_output/inference/cnn_predictions.parquet")
RNN_PREDICTIONS = Path("data/07_model_output/inference/rnn_predictions.parquet")
MODEL_COLUMNS = ["model_name", "model_version", "model_run_id"]
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


def test_cnn_champion_scores_an_idx_file_and_the_test_table(registered_project: Path, data_mirror: Path) -> None:
    champion = MlflowClient().get_model_version_by_alias(CNN_MODEL, "champion")

    images = write_test_images(registered_project / "images.gz", data_mirror, 8)
    run_pipeline("inference_cnn", images_path=str(registered_project / "images.gz"))
    predictions = pd.read_parquet(CNN_PREDICTIONS)
    assert list(predictions.columns) == ["prediction", "label_name", "probability", *MODEL_COLUMNS]
    assert len(predictions) == len(images) and predictions["prediction"].dtype == np.int64
    assert predictions["probability"].between(0.1, 1.0).all()
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
    assert predictions["label_name"].iloc[0] in (
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    )


def test_rnn_champion_scores_a_text_file_and_a_sentence_table(registered_project: Path) -> None:
    champion = MlflowClient().get_model_version_by_alias(RNN_MODEL, "champion")

    (registered_project / "reviews.txt").write_text("\n".join(SENTENCES) + "\n\n")
    run_pipeline("inference_rnn", sentences_path=str(registered_project / "reviews.txt"))
    predictions = pd.read_parquet(RNN_PREDICTIONS)
    assert list(predictions.columns) == ["sentence", "label", "probability", *MODEL_COLUMNS]
    assert predictions["sentence"].tolist() == SENTENCES  # the blank line is not a sentence
    assert set(predictions["label"]) <= {"negative", "positive"}
    assert predictions["probability"].between(0.5, 1.0).all()
    assert set(predictions["model_version"]) == {int(champion.version)}
    assert latest_run("inference_rnn").data.tags["inference.rnn.model_run_id"] == champion.run_id

    # a parquet `sentence` table: the same answers as the out-of-fold predictions of the training run
    out_of_fold = pd.read_parquet("data/07_model_output/rnn/out_of_fold_predictions.parquet").head(40)
    sentences = pd.read_parquet("data/02_intermediate/mr/sentences.parquet").iloc[out_of_fold["row"]]
    sentences.to_parquet(registered_project / "sentences.parquet")
    run_pipeline("inference_rnn", sentences_path=str(registered_project / "sentences.parquet"))
    predictions = pd.read_parquet(RNN_PREDICTIONS)
    assert predictions["label"].tolist() == [["negative", "positive"][i] for i in out_of_fold["prediction"]]


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
    changed = original.replace("dlflow-rnn-mr-test\n    alias: champion", "dlflow-rnn-mr-test\n    alias: challenger")
    assert changed != original
    parameters.write_text(changed)
    try:
        with pytest.raises(ValueError, match=r"name models:/dlflow-rnn-mr-test@challenger, but the catalog entry rnn_champion"):
            run_pipeline("inference_rnn")
    finally:
        parameters.write_text(original)


def test_bad_input_or_parameters_stop_before_scoring(registered_project: Path) -> None:
    for predictions in (CNN_PREDICTIONS, RNN_PREDICTIONS):
        predictions.unlink(missing_ok=True)
    with pytest.raises(ValueError, match=r"inference\.cnn\.batch_size"):
        run_pipeline("inference_cnn", **{"inference.cnn.batch_size": 0})
    with pytest.raises(DatasetError, match=r"No images file at .*missing\.idx: name one with --params images_path="):
        run_pipeline("inference_cnn", images_path="missing.idx")
    write_idx(np.zeros((3, 32, 32), np.uint8), registered_project / "big.idx")
    wrong_shape = (
        r"shape \(3, 32, 32\) does not match dlflow-cnn-fashion_mnist-test version 1, "
        r"which takes \(N, 28, 28\)"
    )
    with pytest.raises(ValueError, match=wrong_shape):
        run_pipeline("inference_cnn", images_path=str(registered_project / "big.idx"))
    pd.DataFrame({"text": SENTENCES}).to_parquet(registered_project / "no_sentence.parquet")
    with pytest.raises(DatasetError, match=r"no_sentence\.parquet has no 'sentence' column"):
        run_pipeline("inference_rnn", sentences_path=str(registered_project / "no_sentence.parquet"))
    pd.DataFrame({"sentence": ["fine .", "good .", ""]}).to_parquet(registered_project / "gap.parquet")
    with pytest.raises(DatasetError, match=r"gap\.parquet: row 2 has the sentence ''; every row needs a non-empty string"):
        run_pipeline("inference_rnn", sentences_path=str(registered_project / "gap.parquet"))
    pixels = [np.full(784, 7.0)] * 3
    pixels[1] = np.r_[np.full(783, 7.0), np.nan]
    pd.DataFrame({"pixels": pixels}).to_parquet(registered_project / "nan.parquet")
    with pytest.raises(DatasetError, match=r"nan\.parquet: 'pixels' row 1 has the value nan at position 783: .* 0-255"):
        run_pipeline("inference_cnn", images_path=str(registered_project / "nan.parquet"))
    (registered_project / "blank.txt").write_text("\n  \n")
    with pytest.raises(ValueError, match=r"The input is empty: nothing for dlflow-rnn-mr-test version 1 to score"):
        run_pipeline("inference_rnn", sentences_path=str(registered_project / "blank.txt"))
    assert not CNN_PREDICTIONS.exists() and not RNN_PREDICTIONS.exists()


def test_input_datasets_read_idx_parquet_and_text(tmp_path: Path) -> None:
    write_idx(np.zeros((2, 28, 28), np.uint8), tmp_path / "images.idx")
    assert ImagesFileDataset(filepath=str(tmp_path / "images.idx")).load().shape == (2, 28, 28)
    pd.DataFrame({"pixels": [np.zeros(784, np.uint8)] * 3}).to_parquet(tmp_path / "square.parquet")
    assert ImagesFileDataset(filepath=str(tmp_path / "square.parquet")).load().shape == (3, 28, 28)
    pd.DataFrame({"pixels": [np.zeros(10, np.uint8)] * 3}).to_parquet(tmp_path / "flat.parquet")
    assert ImagesFileDataset(filepath=str(tmp_path / "flat.parquet")).load().shape == (3, 10)
    pd.DataFrame({"pixels": [np.zeros(4, np.uint8), np.zeros(9, np.uint8)]}).to_parquet(tmp_path / "ragged.parquet")
    with pytest.raises(DatasetError, match="differ in length"):
        ImagesFileDataset(filepath=str(tmp_path / "ragged.parquet")).load()
    for bad, row, shown in (([-5.0], 0, "-5"), ([300.0], 0, "300"), ([1.5], 0, "1.5"), ([np.inf], 0, "inf")):
        pd.DataFrame({"pixels": [np.r_[np.zeros(3), bad]]}).to_parquet(tmp_path / "bad.parquet")
        with pytest.raises(DatasetError, match=rf"bad\.parquet: 'pixels' row {row} has the value {shown} at position 3"):
            ImagesFileDataset(filepath=str(tmp_path / "bad.parquet")).load()
    pd.DataFrame({"pixels": [["1", "2"], ["a", "b"]]}).to_parquet(tmp_path / "text.parquet")
    with pytest.raises(DatasetError, match=r"'pixels' row 1 is not numbers"):
        ImagesFileDataset(filepath=str(tmp_path / "text.parquet")).load()
    pd.DataFrame({"label": [1]}).to_parquet(tmp_path / "labels.parquet")
    with pytest.raises(DatasetError, match="no 'pixels' column"):
        ImagesFileDataset(filepath=str(tmp_path / "labels.parquet")).load()

    (tmp_path / "reviews.txt").write_text(" good .\n\nbad .\n", encoding="utf-8")
    sentences = SentencesFileDataset(filepath=str(tmp_path / "reviews.txt")).load()
    assert sentences["sentence"].tolist() == ["good .", "bad ."]
    with pytest.raises(DatasetError, match="read-only"):
        SentencesFileDataset(filepath=str(tmp_path / "reviews.txt")).save(pd.DataFrame())
