"""End to end: ``kedro run --pipeline cnn --env test`` on the offline mirror, through a KedroSession.

Asserts what a user would look for in MLflow afterwards: the run, its live
per-epoch metrics, test metrics, artifacts, lineage, a registered model version
and where the promotion gate put the ``champion`` alias.
"""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from dlflow.model_registry.store import alias_history
from dlflow.serving.packaging import png_base64
from dlflow.sources.image_table import table_images
from tests.conftest import REPO_ROOT, commit_project, run_pipeline

pytestmark = pytest.mark.e2e

MODEL_NAME = "dlflow-cnn-fashion_mnist-test"


def run_cnn(project: Path, **overrides) -> None:
    run_pipeline("cnn", project=project, **overrides)


def artifact_paths(client: MlflowClient, run_id: str, path: str = "") -> set[str]:
    found = set()
    for item in client.list_artifacts(run_id, path):
        found |= artifact_paths(client, run_id, item.path) if item.is_dir else {item.path}
    return found


def test_cnn_pipeline_tracks_registers_and_gates(kedro_project: Path) -> None:
    commit = commit_project(kedro_project)
    run_cnn(kedro_project)

    client = MlflowClient()
    experiment = client.get_experiment_by_name("dlflow/cnn")  # the family's own experiment
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"

    # a run a person can tell apart: named after its family and settings, described, with readable tags
    assert run.info.run_name == "cnn fast fashion_mnist 2ep [test]"
    description = run.data.tags["mlflow.note.content"]
    assert "fast CNN trained on fashion_mnist (2000 training images, 2 epochs" in description
    assert "**Result:** test_accuracy" in description and f"{MODEL_NAME} v1, gate decision: promoted" in description
    assert run.data.tags["runner"] == "dlflow.caching.runner.SkipUnchangedRunner"
    assert not {key: value for key, value in run.data.tags.items() if " object at 0x" in value}
    assert "run_id" not in run.data.tags and run.data.tags["kedro_session_id"]  # Kedro's session id, renamed
    assert run.data.tags["git_commit"] == commit

    # live per-epoch curves (step = epoch) and the test metrics
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train_loss")] == [1, 2]
    assert len(client.get_metric_history(run.info.run_id, "val_accuracy")) == 2
    accuracy = run.data.metrics["test_accuracy"]
    assert 0.6 < accuracy <= 1.0, accuracy
    assert "test_macro_f1" in run.data.metrics
    assert "test_f1_T-shirt_top" in run.data.metrics

    # parameters, lineage and git state
    assert run.data.params["cnn.training.epochs"] == "2"
    inputs = {i.dataset.name: i.dataset.digest for i in run.inputs.dataset_inputs}
    assert {"image_train_intermediate", "cnn_train_split", "cnn_test_split"} <= set(inputs)
    assert all(len(digest) == 16 for digest in inputs.values())

    # artifacts: data summary, plots, reports and the model
    artifacts = artifact_paths(client, run.info.run_id)
    for expected in (
        "data/data_summary.json",
        "data/class_distribution.png",
        "preprocessing/normalisation.json",
        "training/training_history.json",
        "evaluation/metrics.json",
        "evaluation/confusion_matrix.png",
        "evaluation/learning_curves.png",
        "evaluation/misclassified.png",
        "registration/cnn/registration.json",
        "registration/cnn/evaluation.json",
        "registration/cnn/champion_vs_challenger.html",
    ):
        assert expected in artifacts, (expected, sorted(artifacts))
    summary = json.loads(Path("data/08_reporting/fashion_mnist/data_summary.json").read_text())
    assert summary["num_train"] == 60000 and sum(summary["test_class_counts"].values()) == 10000

    # a registered version, champion, tagged with run, metric and data digest
    champion = client.get_model_version_by_alias(MODEL_NAME, "champion")
    assert str(champion.version) == "1"
    assert champion.run_id == run.info.run_id
    assert champion.tags["test_data_digest"] == inputs["cnn_test_split"]
    assert float(champion.tags["metric_value"]) == pytest.approx(accuracy, abs=1e-6)
    class_names = json.loads(Path("data/02_intermediate/fashion_mnist/class_names.json").read_text())

    # ... and explaining itself: commit, run, data digests, classes, headline metrics, what the input must be
    assert champion.tags["git_commit"] == commit and champion.tags["run_id"] == run.info.run_id
    assert json.loads(champion.tags["class_names"]) == class_names
    training_data = json.loads(champion.tags["training_data"])
    assert {"cnn_train_split", "cnn_val_split"} <= set(training_data) and "cnn_test_split" not in training_data
    assert all(inputs[name] == digest for name, digest in training_data.items())
    assert len(champion.tags["training_data_digest"]) == 16
    for needle in (f"test_accuracy {accuracy:.4f}", run.info.run_id, commit, inputs["cnn_test_split"], "0: T-shirt/top",
                   "raw pixel values 0-255", "`label_name`", "Champion-vs-challenger report]("):  # fmt: skip
        assert needle in champion.description, (needle, champion.description)
    registered = client.get_registered_model(MODEL_NAME)
    assert "Image classifier (fast CNN)" in registered.description and "9: Ankle boot" in registered.description
    assert mlflow.models.get_model_info(f"models:/{MODEL_NAME}/1").metadata["class_names"] == class_names

    # the registered model takes raw pixels and agrees with the pipeline's accuracy
    model = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}@champion")
    test = pd.read_parquet("data/05_model_input/cnn/test.parquet")
    pixels = table_images(test).astype(np.float32)
    assert pixels.shape[1:] == (28, 28, 1)
    answers = model.predict(pixels)
    assert list(answers.columns) == ["prediction", "label_name", "probability", *(f"p_{c}" for c in class_names)]
    assert answers["label_name"].tolist() == [class_names[i] for i in answers["prediction"]]
    served_accuracy = float((answers["prediction"].to_numpy() == test["label"].to_numpy()).mean())
    assert served_accuracy == pytest.approx(accuracy, abs=1e-9)
    pd.testing.assert_frame_equal(model.predict(pixels[..., 0]), answers)  # (N, 28, 28) as before
    # ... and encoded image files (base64 PNG), with the same answers; its signature lets both through
    files = pd.DataFrame({"image": [png_base64(image) for image in table_images(test.head(20))]})
    pd.testing.assert_frame_equal(model.predict(files), model.predict(pixels[:20]))
    info = mlflow.models.get_model_info(f"models:/{MODEL_NAME}/1")
    assert info.signature.inputs is None and info.metadata["image_shape"] == [28, 28, 1]
    # Fashion-MNIST keeps its flips (cnn.augmentation.* null: on for fashion_mnist)
    version_files = Path(mlflow.artifacts.download_artifacts(f"models:/{MODEL_NAME}/1"))
    config = json.loads((version_files / "artifacts" / "config.json").read_text())
    assert config["flip_test_time"] is True

    # A much worse model (learning rate 1e-6) must not take the champion alias.
    run_cnn(kedro_project, **{"cnn.training.lr": 1e-6})
    worse = client.get_model_version(MODEL_NAME, "2")
    assert float(worse.tags["metric_value"]) < accuracy
    assert str(client.get_model_version_by_alias(MODEL_NAME, "champion").version) == "1"
    assert str(client.get_model_version_by_alias(MODEL_NAME, "challenger").version) == "2"
    assert worse.tags["gate_decision"] == "not_promoted" and worse.tags["gate_rule"] == "min_improvement"
    assert "not promoted" in worse.tags["gate_reason"]
    assert client.get_model_version(MODEL_NAME, "1").tags["gate_decision"] == "promoted"  # history, not state

    # the champion-vs-challenger report, logged to the run and attached to the version
    first_report = mlflow.artifacts.load_text(champion.tags["promotion_report"])
    assert "No champion yet" in first_report
    report_uri = worse.tags["promotion_report"]
    assert report_uri.endswith("registration/cnn/champion_vs_challenger.html") and worse.run_id in report_uri
    assert report_uri in worse.description and "**not_promoted**" in worse.description
    report = mlflow.artifacts.load_text(report_uri)
    assert "champion v1" in report and "candidate v2" in report and "Not promoted" in report
    assert f"{accuracy:.4f}" in report and f"{float(worse.tags['metric_value']):.4f}" in report
    assert 'id="confusion_candidate"' in report and 'id="confusion_champion"' in report
    assert "T-shirt/top" in report and "learning curves" in report and "max_class_drop" in report

    # every alias move is on record
    moves = [(m.alias, m.from_version, m.to_version) for m in alias_history(client, MODEL_NAME)]
    assert moves == [("champion", None, "1"), ("challenger", None, "2")]

    # the comparison notebook reads these runs and the registry back
    notebook = json.loads((REPO_ROOT / "notebooks" / "compare_runs.ipynb").read_text())
    namespace: dict = {}
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            exec("".join(cell["source"]), namespace)
    registry = pd.DataFrame(namespace["rows"]).sort_values("version")
    assert registry[["version", "alias"]].values.tolist() == [[1, "champion"], [2, "challenger"]]
    assert len(namespace["cnn"]) == 2


def test_bad_parameter_stops_the_run_before_any_work(kedro_project: Path) -> None:
    with pytest.raises(ValueError, match=r"cnn\.training\.lr"):
        run_cnn(kedro_project, **{"cnn.training.lr": -0.5})
    assert not any(Path("data").rglob("*.parquet"))
    assert not Path("data/01_raw").exists() or not any(Path("data/01_raw").iterdir())
    experiment = MlflowClient().get_experiment_by_name("dlflow/cnn")
    assert experiment is None or not MlflowClient().search_runs([experiment.experiment_id])
