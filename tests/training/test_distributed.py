"""DistributedDataParallel in the shared loop: sharding, spawned workers, torchrun, the CNN pipeline.

Every multi-process test runs 2 CPU processes with gloo; a spawn costs a few
seconds (each worker imports torch), so the models are tiny except in the
end-to-end pipeline test.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from dlflow.training import Callback, TensorDataset, TrainConfig, config_key, fit
from dlflow.training.checkpoint import LAST_CHECKPOINT
from dlflow.training.distributed import World, shard
from tests.conftest import run_pipeline

FAST = dict(device="cpu", progress=False, num_threads=1)


def separable(n: int, seed: int) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    return TensorDataset((x,), (x @ torch.linspace(-1, 1, 8) > 0).long())


TRAIN, VAL = separable(300, seed=1), separable(101, seed=2)  # 300 = 9 batches of 32 + 12; odd val size


def mlp(dropout: float = 0.0) -> nn.Module:
    torch.manual_seed(0)
    # no bias before BatchNorm: its gradient is rounding noise, which Adam would blow up into different runs
    return nn.Sequential(nn.Linear(8, 16, bias=False), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(dropout), nn.Linear(16, 2))


def recipe(**overrides) -> TrainConfig:
    settings = dict(epochs=3, batch_size=32, optimizer="adamw", lr=1e-2, schedule="onecycle", label_smoothing=0.1, **FAST)
    return TrainConfig(**settings | overrides)


def comparable(history):
    return [
        {k: v for k, v in dataclasses.asdict(r).items() if k not in ("epoch_seconds", "samples_per_second")}
        for r in history
    ]


class Recorder(Callback):
    def __init__(self):
        self.starts, self.records, self.weights, self.results = [], [], [], []

    def on_train_start(self, config, start_epoch):
        self.starts.append(start_epoch)

    def on_epoch_end(self, record, model):
        self.records.append(record)
        self.weights.append({k: v.clone() for k, v in model.state_dict().items()})

    def on_train_end(self, result):
        self.results.append(result)


def fail_on_rank_1(features, generator):
    """A train_transform that breaks in one worker only."""
    if torch.distributed.get_rank() == 1:
        raise ValueError("boom on rank 1")
    return features


def stop_in_epoch_2(features, generator):
    """A train_transform that crashes rank 0 (once it has checkpointed epoch 1) when ``DLFLOW_TEST_STOP`` is set."""
    stop_in_epoch_2.calls = getattr(stop_in_epoch_2, "calls", 0) + 1
    if os.environ.get("DLFLOW_TEST_STOP") and stop_in_epoch_2.calls > 10 and torch.distributed.get_rank() == 0:
        raise RuntimeError("stopped in epoch 2")  # 10 batches per epoch
    return features


# --------------------------------------------------------------------------- sharding and configuration


@pytest.mark.parametrize("world_size", [2, 3])
def test_shards_of_the_same_batches_cover_every_sample_once(world_size):
    data = TensorDataset((torch.arange(103),), torch.arange(103))
    seen = []
    for rank in range(world_size):  # each rank draws the batches from its own, identically seeded generator
        generator = torch.Generator().manual_seed(7)
        for features, targets in data.batches(16, shuffle=True, generator=generator):
            (ids,), part = shard(features, rank, world_size), shard([targets], rank, world_size)[0]
            assert torch.equal(ids, part)
            assert abs(len(part) - len(targets) / world_size) < 1  # parts differ by at most one sample
            seen += part.tolist()
    assert sorted(seen) == list(range(103))


def test_a_world_of_one_changes_nothing():
    world = World()
    x = torch.arange(5)
    assert world.is_main and world.shard([x])[0] is x and world.wrap(model := mlp()) is model
    assert world.sum(torch.tensor(1.5), torch.tensor(3), 4) == [1.5, 3.0, 4.0]
    assert world.broadcast_object("x") == "x" and world.gather_object("x") == ["x"]


def test_processes_are_part_of_the_checkpoint_key():  # their checks: tests/training/test_config.py
    key = config_key(recipe(), mlp(), TRAIN, VAL)
    assert config_key(recipe(processes=2), mlp(), TRAIN, VAL) != key


def test_a_launcher_world_needs_matching_processes(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match="TrainConfig.processes is 1"):
        fit(mlp(), TRAIN, VAL, recipe())


# --------------------------------------------------------------------------- spawned workers


def test_two_spawned_processes_train_like_one(tmp_path):
    single = fit(mlp(), TRAIN, VAL, recipe())
    recorder, model = Recorder(), mlp()
    double = fit(model, TRAIN, VAL, recipe(processes=2, checkpoint_dir=str(tmp_path)), callbacks=[recorder])

    # the same global batches, the same averaged gradients: the same run up to float rounding
    assert double.model is model and not model.training
    for a, b in zip(comparable(single.history), comparable(double.history), strict=True):
        assert a == pytest.approx(b, rel=1e-4, abs=1e-6)
    for name, value in single.model.state_dict().items():
        torch.testing.assert_close(model.state_dict()[name], value, rtol=1e-4, atol=1e-5)

    # callbacks ran here, live, with the caller's model holding each epoch's weights
    assert recorder.starts == [0] and [r.epoch for r in recorder.records] == [1, 2, 3]
    assert recorder.results == [double] and double.history == recorder.records
    assert all(torch.equal(recorder.weights[-1][k], v) for k, v in model.state_dict().items())

    # rank 0 wrote one checkpoint, with both processes' RNG states; a rerun resumes from it
    (checkpoint,) = tmp_path.glob(f"*/{LAST_CHECKPOINT}")
    assert len(torch.load(checkpoint, weights_only=True)["rank_rng"]) == 2
    again = Recorder()
    finished = fit(mlp(), TRAIN, VAL, recipe(processes=2, checkpoint_dir=str(tmp_path)), callbacks=[again])
    assert finished.resumed_from_epoch == 3 and again.starts == [3] and again.records == []
    assert comparable(finished.history) == comparable(double.history)


def test_a_failing_worker_fails_fit_with_its_error_and_leaves_no_process():
    with pytest.raises(RuntimeError, match="boom on rank 1") as error:
        fit(mlp(), TRAIN, VAL, recipe(processes=2), train_transform=fail_on_rank_1)
    assert "training process 1 of 2 failed" in str(error.value) and "Traceback" in str(error.value)
    assert multiprocessing.active_children() == []


def test_an_interrupted_two_process_run_resumes_bit_identically(tmp_path, monkeypatch):
    config = recipe(processes=2, checkpoint_dir=str(tmp_path / "a"))
    uninterrupted = fit(mlp(dropout=0.3), TRAIN, VAL, config, train_transform=stop_in_epoch_2)

    config = recipe(processes=2, checkpoint_dir=str(tmp_path / "b"))
    monkeypatch.setenv("DLFLOW_TEST_STOP", "1")
    with pytest.raises(RuntimeError, match="stopped in epoch 2"):
        fit(mlp(dropout=0.3), TRAIN, VAL, config, train_transform=stop_in_epoch_2)
    monkeypatch.delenv("DLFLOW_TEST_STOP")
    resumed = fit(mlp(dropout=0.3), TRAIN, VAL, config, train_transform=stop_in_epoch_2)

    assert resumed.resumed_from_epoch == 1
    assert comparable(resumed.history) == comparable(uninterrupted.history)
    for name, value in uninterrupted.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[name], value), name


# --------------------------------------------------------------------------- torchrun


TORCHRUN_SCRIPT = """
import json, os, sys
from pathlib import Path

import torch
from torch import nn

from dlflow.training import Callback, TensorDataset, TrainConfig, fit


class Recorder(Callback):
    def __init__(self):
        self.events = []

    def on_train_start(self, config, start_epoch):
        self.events.append("start")

    def on_epoch_end(self, record, model):
        self.events.append(f"epoch {record.epoch}")

    def on_train_end(self, result):
        self.events.append("end")


out = Path(sys.argv[1])
g = torch.Generator().manual_seed(1)
x = torch.randn(300, 8, generator=g)
data = TensorDataset((x,), (x @ torch.linspace(-1, 1, 8) > 0).long())
torch.manual_seed(0)
model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
recorder = Recorder()
config = TrainConfig(epochs=2, batch_size=32, lr=1e-3, processes=2, device="cpu", progress=False, checkpoint_dir=str(out / "checkpoints"))
result = fit(model, data, data, config, callbacks=[recorder])
weights = torch.cat([p.detach().flatten() for p in result.model.parameters()])
report = {"events": recorder.events, "val_loss": [r.val_loss for r in result.history], "weights": weights.tolist()}
(out / f"rank{os.environ['RANK']}.json").write_text(json.dumps(report))
"""


def test_torchrun_processes_train_together_and_only_rank_0_reports(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(TORCHRUN_SCRIPT))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script), str(tmp_path)]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert completed.returncode == 0, completed.stderr[-3000:]

    rank0, rank1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert rank0["events"] == ["start", "epoch 1", "epoch 2", "end"] and rank1["events"] == []
    assert rank0["val_loss"] == rank1["val_loss"] and rank0["weights"] == rank1["weights"]
    assert len(list((tmp_path / "checkpoints").glob(f"*/{LAST_CHECKPOINT}"))) == 1


# --------------------------------------------------------------------------- the CNN pipeline


@pytest.mark.e2e
def test_cnn_pipeline_with_two_processes_reaches_the_single_process_accuracy(kedro_project: Path):
    """``--env test`` recipe on 12,000 training images (10 % for validation), 3 epochs, all 10,000 test images."""
    from mlflow.tracking import MlflowClient  # here: the spawned workers import this module, keep it light

    subset = {"cnn.data.max_train_samples": 12000, "cnn.data.max_test_samples": None, "cnn.training.epochs": 3}
    run_pipeline("cnn", project=kedro_project, **subset)
    run_pipeline("cnn", project=kedro_project, **subset, **{"cnn.training.processes": 2})

    client = MlflowClient()
    experiment = client.get_experiment_by_name("dlflow")
    runs = {r.data.params["cnn.training.processes"]: r for r in client.search_runs([experiment.experiment_id])}
    single, double = runs["1"], runs["2"]
    assert double.info.status == "FINISHED"
    for name in ("train_loss", "val_accuracy", "samples_per_second"):  # logged live, by rank 0 alone
        assert sorted(m.step for m in client.get_metric_history(double.info.run_id, name)) == [1, 2, 3], name

    # the same computation: epoch 1's training loss agrees to 0.5 % (then dropout masks, drawn per
    # process, and rounding make the runs drift apart), and the same quality at the end
    first = [min(client.get_metric_history(r.info.run_id, "train_loss"), key=lambda m: m.step).value for r in (single, double)]
    assert first[1] == pytest.approx(first[0], rel=5e-3)
    assert abs(double.data.metrics["test_accuracy"] - single.data.metrics["test_accuracy"]) <= 0.005


@pytest.mark.e2e
def test_kedro_run_under_torchrun_tracks_and_registers_from_rank_0_only(kedro_project: Path, data_mirror: Path):
    """``torchrun --standalone --nproc_per_node=2 -m kedro run ...``: one run, one model version, each epoch once."""
    from mlflow.tracking import MlflowClient

    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", "kedro", "run", "--pipeline", "cnn", "--env", "test", "--params", "cnn.training.processes=2",
    ]  # fmt: skip
    env = os.environ | {"DLFLOW_DATA_MIRROR": str(data_mirror), "KEDRO_DISABLE_TELEMETRY": "true"}
    result = subprocess.run(command, cwd=kedro_project, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]

    client = MlflowClient()
    (run,) = client.search_runs([client.get_experiment_by_name("dlflow").experiment_id])
    assert run.info.status == "FINISHED" and run.data.params["cnn.training.processes"] == "2"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_loss")] == [1, 2]
    (version,) = client.search_model_versions("name = 'dlflow-cnn-fashion_mnist-test'")
    assert version.run_id == run.info.run_id
    assert (kedro_project / "data/08_reporting/cnn/metrics.json").is_file()
