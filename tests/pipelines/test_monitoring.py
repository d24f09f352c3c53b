"""Monitoring end to end: the reference profile registered with each model, and the judgement of every batch.

Against the models that ``kedro run --pipeline cnn|rnn --env test`` registered
(``registered_project``, shared with test_inference.py), in that project's real
MLflow store: a clean batch passes, a shifted one raises the alert (and
``kedro run`` exits 3), a small one is not judged, a labelled one logs live
quality and is kept once as feedback, and a version without a profile is
scored unmonitored. Each batch is one step of the model's monitoring run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from dlflow.model_registry.champion import PROFILE_TAG, RegisteredModelDataset
from dlflow.sources.idx import read_idx, write_idx
from dlflow.sources.text import read_corpus
from tests.conftest import run_pipeline
from tests.pipelines import test_inference
from tests.pipelines.test_inference import (
    CNN_MODEL,
    RNN_MODEL,
    latest_run,
)

registered_project = test_inference.registered_project  # the session's registered test project (a fixture)

pytestmark = pytest.mark.e2e

#: Chunks and model calls of tens of records, not conf/test's 5 and 3 (test_inference.py crosses those boundaries
#: on purpose): every batch here still spans several chunks, in a fraction of the calls.
READS = {f"inference.{family}.{key}": size for family in ("cnn", "rnn") for key, size in (("chunk_size", 64), ("batch_size", 32))}


def _images(mirror: Path, start: int, count: int) -> np.ndarray:
    return read_idx(mirror / "fashion-mnist" / "t10k-images-idx3-ubyte.gz")[start : start + count]


def _artifacts(run_id: str, folder: str) -> set[str]:
    return {Path(a.path).name for a in MlflowClient().list_artifacts(run_id, folder)}


def _history(model_name: str, metric: str) -> list[float]:
    client = MlflowClient()
    experiment = client.get_experiment_by_name("dlflow/monitor")
    (run,) = client.search_runs([experiment.experiment_id], f"tags.`monitoring.model` = '{model_name}'")
    return [m.value for m in sorted(client.get_metric_history(run.info.run_id, metric), key=lambda m: m.step)]


def test_every_registered_version_carries_its_reference_profile(registered_project: Path) -> None:
    for name, family, inputs in ((CNN_MODEL, "cnn", ("brightness", "contrast", "edges", "dark_fraction")),
                                 (RNN_MODEL, "rnn", ("length", "oov_rate"))):  # fmt: skip
        version = MlflowClient().get_model_version_by_alias(name, "champion")
        assert version.tags[PROFILE_TAG] == f"runs:/{version.run_id}/monitoring/{family}/reference_profile.npz"
        profile = RegisteredModelDataset(family=family, model_name=name).load().profile
        observed = profile.observations
        assert profile.family == family and observed.input_names == inputs
        held_out = profile.about["held_out_records"]
        assert len(observed) == len(profile.rows) == len(profile.labels) == held_out // 2  # max_fraction 0.5
        assert len(set(profile.rows.tolist())) == len(profile.rows)
        assert observed.features.shape[1] > 8 and np.isfinite(observed.features).all()
        assert observed.probabilities.sum(axis=1) == pytest.approx(1.0, abs=1e-5)
        run = MlflowClient().get_run(version.run_id)
        if family == "cnn":  # the test quality is the run's own test accuracy, over all held-out images
            assert profile.test["accuracy"] == pytest.approx(run.data.metrics["test_accuracy"], abs=1e-6)
            assert profile.test["records"] == held_out
        assert 0.0 <= profile.test["ece"] <= 1.0


def test_a_clean_batch_passes_a_shifted_one_alerts_and_each_is_a_step_of_the_history(
    registered_project: Path, data_mirror: Path
) -> None:
    before = len(_history(CNN_MODEL, "drift_score")) if MlflowClient().get_experiment_by_name("dlflow/monitor") else 0
    clean = _images(data_mirror, 6000, 400)  # Fashion-MNIST test images: the profile holds 250 of a 500-image subset
    write_idx(clean, registered_project / "clean.gz", gzip=True)
    run_pipeline("inference_cnn", images_path=str(registered_project / "clean.gz"), **READS)
    run = latest_run("inference_cnn")
    assert run.data.metrics["drift_judged"] == 1 and run.data.metrics["drift_detected"] == 0
    assert run.data.metrics["drift_score"] <= run.data.metrics["drift_threshold"]
    assert run.data.metrics["batch_records"] == 400
    assert {"drift_feature_mmd_p_value", "drift_prediction_classes_p_value", "drift_input_brightness_p_value"} <= set(
        run.data.metrics
    )
    assert {"cnn_drift_report.html", "cnn_drift_checks.json"} <= _artifacts(run.info.run_id, "monitoring")

    write_idx((clean * 0.5).astype(np.uint8), registered_project / "dim.gz", gzip=True)  # brightness x0.5
    run_pipeline("inference_cnn", images_path=str(registered_project / "dim.gz"), **READS)
    run = latest_run("inference_cnn")
    assert run.data.metrics["drift_detected"] == 1
    assert run.data.metrics["drift_score"] > run.data.metrics["drift_threshold"]
    assert run.data.metrics["drift_input_brightness_p_value"] < 1e-6
    report = Path("data/08_reporting/monitoring/cnn_drift_report.html").read_text()
    assert "Drift detected." in report and "input.brightness" in report and report.count("data:image/png;base64,") == 3

    assert _history(CNN_MODEL, "drift_detected")[before:] == [0.0, 1.0]  # one step per batch, in order
    history_run = run.data.tags["monitoring.history_run"]
    assert "drift_history.png" in _artifacts(history_run, "")


def test_kedro_run_exits_3_on_an_alert_and_0_on_a_batch_too_small_to_judge(registered_project: Path, data_mirror: Path) -> None:
    digits = 255 - _images(data_mirror, 7000, 300)  # negatives: another kind of image altogether
    write_idx(digits, registered_project / "negative.gz", gzip=True)
    write_idx(_images(data_mirror, 7000, 50), registered_project / "few.gz", gzip=True)
    env = os.environ | {"KEDRO_DISABLE_TELEMETRY": "true"}
    command = [sys.executable, "-m", "kedro", "run", "--pipeline", "inference_cnn", "--env", "test", "--params"]

    def kedro_run(images: str) -> subprocess.CompletedProcess:  # stdout and stderr in the order they were written
        return subprocess.run(
            [*command, ",".join([f"images_path={images}", *(f"{key}={value}" for key, value in READS.items())])],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    alert = kedro_run(str(registered_project / "negative.gz"))
    assert alert.returncode == 3, alert.stdout[-3000:]
    assert "DRIFT DETECTED" in alert.stdout
    last = [line for line in alert.stdout.splitlines() if line.strip()][-1]  # the log ends with the run's summary
    assert "Run finished: inference_cnn | batch_records 300, drift_detected 1, drift_score" in last, alert.stdout[-2000:]
    assert f"scored with {CNN_MODEL} v" in last and "| MLflow: http://127.0.0.1:5000/#/experiments/" in last, last
    few = kedro_run(str(registered_project / "few.gz"))
    assert few.returncode == 0, few.stdout[-3000:]
    assert "batch of 50 records < min_batch_size 200: not judged" in few.stdout
    run = latest_run("inference_cnn")
    assert run.data.metrics["drift_judged"] == 0 and run.data.metrics["drift_detected"] == 0


def test_a_labelled_batch_logs_live_quality_and_is_kept_once_as_feedback(registered_project: Path) -> None:
    table = "data/05_model_input/cnn/test.parquet"  # the test split: pixels and labels
    kept_folder = Path("data/09_feedback/fashion_mnist/cnn")
    before = set(kept_folder.iterdir()) if kept_folder.is_dir() else set()  # other tests' labelled batches
    for _ in range(2):
        run_pipeline("inference_cnn", images_path=table, **READS)
    run = latest_run("inference_cnn")
    profile = RegisteredModelDataset(family="cnn", model_name=CNN_MODEL).load().profile
    labels = pd.read_parquet(table, columns=["label"])["label"].to_numpy()
    predictions = pd.read_parquet("data/07_model_output/inference/cnn_predictions.parquet")["prediction"].to_numpy()
    metrics = run.data.metrics
    assert metrics["live_labelled"] == len(labels)
    assert metrics["live_accuracy"] == pytest.approx((labels == predictions).mean())
    assert metrics["live_accuracy"] == pytest.approx(profile.test["accuracy"], abs=1e-6)  # the same images as the test
    assert metrics["live_accuracy_low"] < metrics["live_accuracy"] < metrics["live_accuracy_high"]
    assert metrics["live_drop_p_value"] > 0.05
    kept = [p for p in kept_folder.iterdir() if p.is_file() and p.read_bytes() == Path(table).read_bytes()]
    assert len(kept) == 1 and kept[0].suffix == ".parquet"  # scored twice (other tests too), kept once, by its digest
    assert set(kept_folder.iterdir()) - before <= set(kept)


def test_rnn_batches_from_another_corpus_alert_and_held_out_reviews_do_not(registered_project: Path, data_mirror: Path) -> None:
    sentences = pd.read_parquet("data/02_intermediate/mr/sentences.parquet")
    profile = RegisteredModelDataset(family="rnn", model_name=RNN_MODEL).load().profile
    fold = profile.about["test_fold"]
    held_out = sentences[sentences["fold"] == fold].drop(index=sentences.index[profile.rows])
    (registered_project / "reviews.txt").write_text("\n".join(held_out["sentence"]) + "\n")
    run_pipeline("inference_rnn", sentences_path=str(registered_project / "reviews.txt"), **READS)
    run = latest_run("inference_rnn")
    assert run.data.metrics["drift_judged"] == 1 and run.data.metrics["drift_detected"] == 0
    assert "drift_input_oov_rate_p_value" in run.data.metrics

    other = [s for s, _ in zip(read_corpus(data_mirror / "corpora" / "brown.zip"), range(400))]
    (registered_project / "brown.txt").write_text("\n".join(other) + "\n")
    run_pipeline("inference_rnn", sentences_path=str(registered_project / "brown.txt"), **READS)
    run = latest_run("inference_rnn")
    assert run.data.metrics["drift_detected"] == 1


def test_a_version_registered_without_a_profile_is_scored_unmonitored(registered_project: Path, data_mirror: Path) -> None:
    client = MlflowClient()
    version = client.get_model_version_by_alias(CNN_MODEL, "champion")
    client.delete_model_version_tag(CNN_MODEL, version.version, PROFILE_TAG)
    try:
        write_idx(_images(data_mirror, 0, 300), registered_project / "legacy.gz", gzip=True)
        run_pipeline("inference_cnn", images_path=str(registered_project / "legacy.gz"), **READS)
    finally:
        client.set_model_version_tag(CNN_MODEL, version.version, PROFILE_TAG, version.tags[PROFILE_TAG])
    run = latest_run("inference_cnn")
    assert run.data.metrics["drift_judged"] == 0 and run.data.metrics["drift_detected"] == 0
    assert len(pd.read_parquet("data/07_model_output/inference/cnn_predictions.parquet")) == 300
    checks = Path("data/08_reporting/monitoring/cnn_drift_checks.json").read_text()
    assert "registered without a reference profile" in checks
