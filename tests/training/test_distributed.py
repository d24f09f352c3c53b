"""DistributedDataParallel in the shared loop: sharding, the launched world, torchrun, the CNN pipeline.

``fit`` trains with several processes only under ``torchrun``; it starts no
processes itself. The multi-process tests launch 2 CPU processes (gloo) with
``python -m torch.distributed.run``; a launch costs a few seconds (every
process imports torch), so the models are tiny except in the end-to-end test.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from dlflow.training import TensorDataset, TrainConfig, config_key, fit
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
    return [{k: v for k, v in dataclasses.asdict(r).items() if k not in ("epoch_seconds", "samples_per_second")} for r in history]


# --------------------------------------------------------------------------- sharding and the world


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
    (features,), targets, weight = world.local_batch((x,), x)
    assert features is x and targets is x and weight == 1.0
    assert world.skipped_samples(301, 32) == 0


def test_local_batches_weight_the_mean_losses_to_the_global_mean_and_skip_a_batch_smaller_than_the_world():
    ids = torch.arange(10)
    parts = [World(rank=rank, size=3).local_batch((ids,), ids) for rank in range(3)]
    assert sorted(torch.cat([targets for _, targets, _ in parts]).tolist()) == list(range(10))
    # DDP averages the 3 gradients: the weights must average to 1, each proportional to its slice
    assert sum(weight for _, _, weight in parts) == pytest.approx(3.0)
    assert [weight for _, _, weight in parts] == pytest.approx([len(t) * 3 / 10 for _, t, _ in parts])
    assert World(rank=0, size=3).local_batch((ids[:2],), ids[:2]) is None
    assert World(size=3).skipped_samples(98, 32) == 2  # 3 x 32 + 2
    assert World(size=3).skipped_samples(99, 32) == 0  # 3 x 32 + 3: every process gets one


def test_processes_are_part_of_the_checkpoint_key():
    key = config_key(recipe(), mlp(), TRAIN, VAL)
    assert config_key(recipe(processes=2), mlp(), TRAIN, VAL) != key


def test_several_processes_need_torchrun(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with pytest.raises(ValueError, match=r"TrainConfig\.processes is 2: launch the program with `torchrun --nproc_per_node=2"):
        fit(mlp(), TRAIN, VAL, recipe(processes=2))


def test_a_launcher_world_needs_matching_processes(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match="TrainConfig.processes is 1"):
        fit(mlp(), TRAIN, VAL, recipe())


# --------------------------------------------------------------------------- torchrun


TORCHRUN_SCRIPT = """
import json, os, sys
from pathlib import Path

from dlflow.training import Callback, TensorDataset, fit
from tests.training.test_distributed import TRAIN, VAL, comparable, mlp, recipe


class Recorder(Callback):
    def __init__(self):
        self.events = []

    def on_train_start(self, config, start_epoch):
        self.events.append(f"start {start_epoch}")

    def on_epoch_end(self, record, model):
        self.events.append(f"epoch {record.epoch}")

    def on_train_end(self, result):
        self.events.append("end")


def stop_in_epoch_2(features, generator):
    # every process stops at the same batch, as a crash would stop the whole run
    stop_in_epoch_2.calls = getattr(stop_in_epoch_2, "calls", 0) + 1
    if os.environ.get("DLFLOW_TEST_STOP") and stop_in_epoch_2.calls > 10:  # 10 batches per epoch (300 or 289 samples)
        raise RuntimeError("stopped in epoch 2")
    return features


out, dropout, train_size = Path(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
recorder = Recorder()
config = recipe(processes=2, checkpoint_dir=str(out / "checkpoints"))
train = TensorDataset((TRAIN.features[0][:train_size],), TRAIN.targets[:train_size])
result = fit(mlp(dropout), train, VAL, config, callbacks=[recorder], train_transform=stop_in_epoch_2)
report = {
    "events": recorder.events,
    "history": comparable(result.history),
    "resumed_from_epoch": result.resumed_from_epoch,
    "weights": {k: v.tolist() for k, v in result.model.state_dict().items()},
}
(out / f"rank{os.environ['RANK']}.json").write_text(json.dumps(report))
"""


def torchrun(tmp_path: Path, out: Path, *, dropout: float = 0.0, train_size: int = 300, stop: bool = False):
    """Run ``TORCHRUN_SCRIPT`` in 2 processes; the completed process and each rank's report (when it finished)."""
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(TORCHRUN_SCRIPT))
    out.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        str(script), str(out), str(dropout), str(train_size),
    ]  # fmt: skip
    repo = Path(__file__).resolve().parents[2]
    env = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [str(repo), os.environ.get("PYTHONPATH")]))}
    env = env | {"DLFLOW_TEST_STOP": "1"} if stop else env
    completed = subprocess.run(command, capture_output=True, text=True, timeout=180, env=env)
    reports = [json.loads(p.read_text()) if (p := out / f"rank{r}.json").exists() else None for r in (0, 1)]
    return completed, reports


@pytest.mark.e2e  # training processes of their own (torchrun)
def test_two_torchrun_processes_train_like_one_and_only_rank_0_reports(tmp_path):
    completed, (rank0, rank1) = torchrun(tmp_path, tmp_path / "double")
    assert completed.returncode == 0, completed.stderr[-3000:]
    single = fit(mlp(), TRAIN, VAL, recipe())

    # the same global batches, the same averaged gradients: the same run up to float rounding
    for a, b in zip(comparable(single.history), rank0["history"], strict=True):
        assert a == pytest.approx(b, rel=1e-4, abs=1e-6)
    for name, value in single.model.state_dict().items():
        torch.testing.assert_close(torch.tensor(rank0["weights"][name], dtype=value.dtype), value, rtol=1e-4, atol=1e-5)

    # every process ends with the same result; rank 0 alone calls the callbacks and writes the checkpoint
    assert rank0["history"] == rank1["history"] and rank0["weights"] == rank1["weights"]
    assert rank0["events"] == ["start 0", "epoch 1", "epoch 2", "epoch 3", "end"] and rank1["events"] == []
    (checkpoint,) = (tmp_path / "double" / "checkpoints").glob(f"*/{LAST_CHECKPOINT}")
    assert len(torch.load(checkpoint, weights_only=True)["rank_rng"]) == 2


@pytest.mark.e2e  # training processes of their own (torchrun)
def test_an_interrupted_torchrun_run_resumes_bit_identically_and_a_too_small_last_batch_is_skipped_aloud(tmp_path):
    """With dropout (each process draws its own masks): resume must restore every process's RNG state.

    289 = 9 batches of 32 + 1 sample, too few for 2 processes: every epoch skips it, and rank 0 says so once.
    """
    completed, (uninterrupted, rank1) = torchrun(tmp_path, tmp_path / "a", dropout=0.3, train_size=289)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert uninterrupted["weights"] == rank1["weights"]
    assert completed.stderr.count("the last batch of every epoch holds 1 samples, fewer than the 2 processes") == 1
    assert "each epoch trains on 288 of 289 samples" in completed.stderr

    completed, reports = torchrun(tmp_path, tmp_path / "b", dropout=0.3, train_size=289, stop=True)
    assert completed.returncode != 0 and "stopped in epoch 2" in completed.stderr and reports == [None, None]
    completed, (resumed, _) = torchrun(tmp_path, tmp_path / "b", dropout=0.3, train_size=289)
    assert completed.returncode == 0, completed.stderr[-3000:]

    assert resumed["resumed_from_epoch"] == 1 and resumed["events"][0] == "start 1"
    assert resumed["history"] == uninterrupted["history"]
    assert resumed["weights"] == uninterrupted["weights"]


# --------------------------------------------------------------------------- the CNN pipeline


@pytest.mark.e2e
def test_kedro_run_under_torchrun_matches_one_process_and_tracks_from_rank_0_only(kedro_project: Path, data_mirror: Path):
    """``torchrun --standalone --nproc_per_node=2 -m kedro run ...`` against ``kedro run``, on the ``--env test``
    recipe with 6,000 training images (10 % for validation), 3 epochs and all 10,000 test images:
    one MLflow run and one model version per run, each epoch logged once, the same test accuracy."""
    from mlflow.tracking import MlflowClient

    subset = {"cnn.data.max_train_samples": 6000, "cnn.data.max_test_samples": None, "cnn.training.epochs": 3}
    run_pipeline("cnn", project=kedro_project, **subset)
    params = ",".join(f"{k}={'null' if v is None else v}" for k, v in subset.items()) + ",cnn.training.processes=2"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", "kedro", "run", "--pipeline", "cnn", "--env", "test", "--params", params,
    ]  # fmt: skip
    env = os.environ | {"DLFLOW_DATA_MIRROR": str(data_mirror), "KEDRO_DISABLE_TELEMETRY": "true"}
    result = subprocess.run(command, cwd=kedro_project, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]

    client = MlflowClient()
    runs = client.search_runs([client.get_experiment_by_name("dlflow/cnn").experiment_id])
    by_processes = {r.data.params["cnn.training.processes"]: r for r in runs}
    assert len(runs) == 2 and set(by_processes) == {"1", "2"}  # rank 1 tracked nothing here
    single, double = by_processes["1"], by_processes["2"]
    assert double.info.status == "FINISHED"
    for name in ("train_loss", "val_accuracy", "samples_per_second"):  # logged live, by rank 0 alone
        assert sorted(m.step for m in client.get_metric_history(double.info.run_id, name)) == [1, 2, 3], name
    versions = client.search_model_versions("name = 'dlflow-cnn-fashion_mnist-test'")
    assert sorted(v.run_id for v in versions) == sorted([single.info.run_id, double.info.run_id])
    assert (kedro_project / "data/08_reporting/cnn/metrics.json").is_file()

    # the same computation: epoch 1's training loss agrees to 0.5 % (then dropout masks, drawn per
    # process, and rounding make the runs drift apart), and the same quality at the end
    first = [min(client.get_metric_history(r.info.run_id, "train_loss"), key=lambda m: m.step).value for r in (single, double)]
    assert first[1] == pytest.approx(first[0], rel=5e-3)
    assert abs(double.data.metrics["test_accuracy"] - single.data.metrics["test_accuracy"]) <= 0.005
