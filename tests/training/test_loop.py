"""The training loop: learning, resume, early stopping, callbacks, MLflow logging, runtime helpers."""

from __future__ import annotations

import dataclasses
import logging
import math

import mlflow
import pytest
import torch
from mlflow.tracking import MlflowClient
from torch import nn

from dlflow.models import ClassicCNN
from dlflow.training import (
    Callback,
    MlflowEpochLogger,
    TensorDataset,
    TrainConfig,
    config_key,
    fit,
    predict,
    select_device,
)
from dlflow.training.runtime import rng_state, set_rng_state

FAST = dict(device="cpu", progress=False, num_threads=1)
KERAS = dict(optimizer="adam", lr=1e-3)  # the Keras tutorial's optimizer


def separable(n: int, seed: int, flip_labels: bool = False) -> TensorDataset:
    """``n`` points in 8-D labelled by the side of a fixed hyperplane."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    y = (x @ torch.linspace(-1, 1, 8) > 0).long()
    return TensorDataset((x,), 1 - y if flip_labels else y)


def mlp() -> nn.Module:
    """A tiny classifier with dropout, so resume must restore the global torch RNG too."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 2))


def jitter(features, generator):
    """A train_transform drawing from the loop's generator, so resume must restore it."""
    (x,) = features
    return (x + 0.05 * torch.randn(x.shape, generator=generator),)


TRAIN, VAL = separable(256, seed=1), separable(128, seed=2)


class Recorder(Callback):
    def __init__(self):
        self.starts, self.records, self.results = [], [], []

    def on_train_start(self, config, start_epoch):
        self.starts.append(start_epoch)

    def on_epoch_end(self, record, model):
        self.records.append(record)

    def on_train_end(self, result):
        self.results.append(result)


class Interrupt(Exception):
    pass


class InterruptAfter(Callback):
    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_epoch_end(self, record, model):
        if record.epoch == self.epoch:
            raise Interrupt


def resumable_config(checkpoint_dir, **overrides) -> TrainConfig:
    """A recipe exercising every piece of saved state: AdamW moments, OneCycle, best weights."""
    settings = dict(
        epochs=3, batch_size=32, optimizer="adamw", lr=1e-2, weight_decay=0.01,
        schedule="onecycle", label_smoothing=0.1, max_grad_norm=1.0,
        early_stopping_patience=5, checkpoint_dir=str(checkpoint_dir), **FAST,
    )  # fmt: skip
    return TrainConfig(**{**settings, **overrides})


def comparable(history):
    """History without the timing fields, which differ between runs."""
    return [{k: v for k, v in dataclasses.asdict(r).items() if k not in ("epoch_seconds", "samples_per_second")} for r in history]


def assert_same_weights(a: nn.Module, b: nn.Module):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


# --------------------------------------------------------------------------- learning


def test_loss_goes_down_on_separable_data():
    result = fit(mlp(), TRAIN, VAL, TrainConfig(epochs=5, batch_size=32, lr=1e-2, **FAST))
    assert len(result.history) == 5
    assert result.history[-1].train_loss < result.history[0].train_loss
    assert result.history[-1].val_accuracy > 0.9
    assert not result.model.training


def test_min_steps_raises_the_epochs_of_a_small_data_set_only():
    config = TrainConfig(epochs=2, batch_size=32, lr=1e-2, min_steps=20, **FAST)
    assert config.epochs_for(len(TRAIN)) == max(2, -(-20 // -(-len(TRAIN) // 32)))
    assert config.epochs_for(32 * 20) == 2  # 20 steps an epoch already: as configured
    result = fit(mlp(), TRAIN, VAL, config)
    assert len(result.history) == config.epochs_for(len(TRAIN)) > 2
    assert TrainConfig(epochs=2, batch_size=32, lr=1e-2, **FAST).epochs_for(len(TRAIN)) == 2  # min_steps unset


def test_classic_cnn_learns_on_small_images():
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 10, (128,), generator=g)
    templates = torch.randn(10, 1, 28, 28, generator=g)
    images = templates[labels] + 0.5 * torch.randn(128, 1, 28, 28, generator=g)
    data = TensorDataset((images,), labels)
    torch.manual_seed(0)
    result = fit(ClassicCNN(), data, data, TrainConfig(epochs=3, batch_size=16, channels_last=True, **KERAS, **FAST))
    assert result.history[-1].train_loss < result.history[0].train_loss


def test_predict_returns_probabilities_and_restores_the_mode():
    model = mlp().train()
    probs = predict(model, TRAIN.features, batch_size=100, device="cpu")
    assert probs.shape == (256, 2)
    torch.testing.assert_close(probs.sum(dim=1), torch.ones(256))
    assert model.training
    same = predict(model, TRAIN.features, batch_size=64, device="cpu", transform_tta=lambda f: f)
    torch.testing.assert_close(same, probs)


# --------------------------------------------------------------------------- checkpoint and resume


def test_resume_after_interruption_is_bit_identical(tmp_path):
    uninterrupted = fit(mlp(), TRAIN, VAL, resumable_config(tmp_path / "a"), train_transform=jitter)

    config = resumable_config(tmp_path / "b")
    with pytest.raises(Interrupt):
        fit(mlp(), TRAIN, VAL, config, train_transform=jitter, callbacks=[InterruptAfter(1)])
    torch.manual_seed(123)  # the restarted process's RNG is elsewhere; resume must not care
    resumed = fit(mlp(), TRAIN, VAL, config, train_transform=jitter)

    assert resumed.resumed_from_epoch == 1
    assert [r.epoch for r in resumed.history] == [1, 2, 3]
    assert comparable(resumed.history) == comparable(uninterrupted.history)
    assert_same_weights(resumed.model, uninterrupted.model)


def test_finished_run_is_not_retrained(tmp_path):
    config = resumable_config(tmp_path)
    first = fit(mlp(), TRAIN, VAL, config)
    recorder = Recorder()
    again = fit(nn.Sequential(*mlp()), TRAIN, VAL, config, callbacks=[recorder])  # fresh weights
    assert again.resumed_from_epoch == 3
    assert recorder.starts == [3] and recorder.records == [] and len(recorder.results) == 1
    assert comparable(again.history) == comparable(first.history)
    assert again.best_epoch == first.best_epoch
    assert_same_weights(again.model, first.model)


def test_changed_config_does_not_resume_from_another_runs_checkpoint(tmp_path):
    config = resumable_config(tmp_path)
    key = config_key(config, mlp(), TRAIN, VAL)
    assert config_key(config.model_copy(update={"lr": 2e-2}), mlp(), TRAIN, VAL) != key
    assert config_key(config, mlp(), TRAIN, separable(128, seed=3)) != key
    # where and how progress is shown does not change the result, nor the key
    unchanged = config.model_copy(update=dict(progress=True, num_threads=2, resume=False, checkpoint_dir="x"))
    assert config_key(unchanged, mlp(), TRAIN, VAL) == key

    fit(mlp(), TRAIN, VAL, config)
    other = fit(mlp(), TRAIN, VAL, config.model_copy(update={"lr": 2e-2}))
    assert other.resumed_from_epoch == 0
    assert len(list(tmp_path.iterdir())) == 2


def test_explicit_run_key_and_resume_false(tmp_path):
    config = resumable_config(tmp_path, epochs=1)
    fit(mlp(), TRAIN, VAL, config, run_key="mine")
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["last.pt"]  # no temp files left behind
    fresh = fit(mlp(), TRAIN, VAL, config.model_copy(update={"resume": False}), run_key="mine")
    assert fresh.resumed_from_epoch == 0


# --------------------------------------------------------------------------- early stopping


def test_early_stopping_stops_and_restores_the_best_weights(tmp_path):
    """Validation labels are the opposite of training labels: val loss rises as training learns."""
    snapshots = {}

    class Snapshot(Callback):
        def on_epoch_end(self, record, model):
            snapshots[record.epoch] = {k: v.clone() for k, v in model.state_dict().items()}

    val = separable(128, seed=2, flip_labels=True)
    config = TrainConfig(epochs=20, batch_size=32, lr=1e-2, early_stopping_patience=2, **FAST)
    result = fit(mlp(), TRAIN, val, config, callbacks=[Snapshot()])

    val_losses = [r.val_loss for r in result.history]
    assert result.stopped_early
    assert result.best_epoch == 1 + val_losses.index(min(val_losses))
    assert len(result.history) == result.best_epoch + 2 < 20
    best = snapshots[result.best_epoch]
    assert all(torch.equal(v, best[k]) for k, v in result.model.state_dict().items())


# --------------------------------------------------------------------------- callbacks and MLflow


def test_callbacks_get_one_complete_record_per_epoch():
    recorder = Recorder()
    result = fit(mlp(), TRAIN, VAL, TrainConfig(epochs=3, batch_size=64, **KERAS, **FAST), callbacks=[recorder])
    assert recorder.starts == [0]
    assert [r.epoch for r in recorder.records] == [1, 2, 3]
    for record in recorder.records:
        assert all(math.isfinite(v) for v in dataclasses.asdict(record).values())
        assert 0 <= record.train_accuracy <= 1 and 0 <= record.val_accuracy <= 1
        assert record.lr == pytest.approx(1e-3) and record.samples_per_second > 0
    assert recorder.results == [result] and result.history == recorder.records
    assert result.train_seconds == pytest.approx(sum(r.epoch_seconds for r in result.history))


@pytest.fixture
def mlflow_sqlite(tmp_path, monkeypatch):
    """A real MLflow SQLite store in tmp_path; the previous tracking URI comes back afterwards."""
    previous = mlflow.get_tracking_uri()
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # monkeypatch restores the environment
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("training-tests")  # an experiment id set by an earlier test means nothing here
    yield uri
    mlflow.set_tracking_uri(previous)


def test_mlflow_epoch_logger_logs_each_epoch_live(mlflow_sqlite):
    with mlflow.start_run() as run:
        fit(mlp(), TRAIN, VAL, TrainConfig(epochs=2, batch_size=64, **KERAS, **FAST), callbacks=[MlflowEpochLogger("cnn_")])
    client = MlflowClient()
    names = ["train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "epoch_seconds", "samples_per_second"]
    for name in names:
        history = client.get_metric_history(run.info.run_id, f"cnn_{name}")
        assert sorted(m.step for m in history) == [1, 2], name


def test_a_resumed_run_logs_the_checkpointed_epoch_its_killed_process_had_not_logged(mlflow_sqlite, tmp_path):
    class Killed(Exception):
        pass

    class KillAfterCheckpoint(Callback):  # dies between epoch 1's checkpoint and its MLflow points
        def on_epoch_end(self, record, model):
            raise Killed

    config = TrainConfig(epochs=2, batch_size=64, checkpoint_dir=str(tmp_path / "checkpoints"), **KERAS, **FAST)
    with mlflow.start_run() as run:
        with pytest.raises(Killed):
            fit(mlp(), TRAIN, VAL, config, callbacks=[KillAfterCheckpoint(), MlflowEpochLogger()])
        assert MlflowClient().get_metric_history(run.info.run_id, "val_loss") == []
        result = fit(mlp(), TRAIN, VAL, config, callbacks=[MlflowEpochLogger()])
    assert result.resumed_from_epoch == 1
    history = MlflowClient().get_metric_history(run.info.run_id, "val_loss")
    assert [(m.step, m.value) for m in history] == [(r.epoch, pytest.approx(r.val_loss)) for r in result.history]


def test_mlflow_epoch_logger_without_a_run_warns_once(caplog):
    assert mlflow.active_run() is None
    with caplog.at_level(logging.WARNING, logger="dlflow.training"):
        fit(mlp(), TRAIN, VAL, TrainConfig(epochs=2, batch_size=64, **KERAS, **FAST), callbacks=[MlflowEpochLogger()])
    assert sum("no active MLflow run" in r.getMessage() for r in caplog.records) == 1


# --------------------------------------------------------------------------- data and runtime


def test_tensor_dataset_checks_lengths_and_shuffles_every_sample_once():
    with pytest.raises(ValueError, match="first dimension"):
        TensorDataset((torch.zeros(3, 2), torch.zeros(4)), torch.zeros(3))
    data = TensorDataset((torch.arange(10), torch.arange(10) * 2), torch.arange(10))
    batches = list(data.batches(4, shuffle=True, generator=torch.Generator().manual_seed(0)))
    assert [len(t) for _, t in batches] == [4, 4, 2]
    assert sorted(torch.cat([t for _, t in batches]).tolist()) == list(range(10))
    assert all(torch.equal(ids * 2, doubled) for (ids, doubled), _ in batches)


def test_rng_state_round_trip():
    state = rng_state()
    first = torch.rand(3)
    set_rng_state(state)
    assert torch.equal(torch.rand(3), first)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_asking_for_missing_cuda_is_a_clear_error():
    assert select_device("auto") == torch.device("cpu")
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        select_device("cuda")
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        select_device("cuda:1")


def test_select_device_takes_names_and_devices():
    assert select_device("cpu") == select_device(torch.device("cpu")) == torch.device("cpu")
    with pytest.raises(ValueError, match="device must be"):
        select_device("tpu")


def test_bucketed_batches_cover_every_sample_once_with_similar_lengths():
    lengths = torch.randint(1, 60, (1000,), generator=torch.Generator().manual_seed(0))
    data = TensorDataset(features=(torch.arange(1000), lengths), targets=torch.zeros(1000, dtype=torch.long))
    generator = torch.Generator().manual_seed(1)
    batches = list(data.batches(20, shuffle=True, generator=generator, bucket_by=1))
    seen = torch.cat([features[0] for features, _ in batches])
    assert sorted(seen.tolist()) == list(range(1000))
    spread = sum(int(f[1].max() - f[1].min()) for f, _ in batches) / len(batches)
    assert spread < 5  # random batches would span most of 1..59
    first_lengths = [int(f[1][0]) for f, _ in batches[:10]]
    assert first_lengths != sorted(first_lengths)  # the batch order is shuffled
