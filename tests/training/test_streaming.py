"""Training from parquet shards (``ShardStream``): the epoch's order, each process's slice, memory, resume, torchrun.

Real images: scikit-learn's bundled 8x8 digits (1,797) for the loop, and the mirror's
Fashion-MNIST training set (60,000) for the memory test, written as image-table shards
by the project's own ``ParquetShardsDataset``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import torch
from sklearn.datasets import load_digits

from dlflow.io import ParquetShardsDataset
from dlflow.sources.image_table import image_table
from dlflow.sources.sharded_table import ShardedTable
from dlflow.training import fit
from dlflow.training.cnn import Normalise, image_rows, image_tensors
from dlflow.training.config import TrainConfig
from dlflow.training.streaming import ShardStream

REPO = Path(__file__).resolve().parents[2]
NORMALISATION = {"mean": 0.3, "std": 0.3}
COLUMNS = ("label", "pixels", "height", "width", "channels")


def digits_table() -> pd.DataFrame:
    digits = load_digits()
    return image_table((digits.images * 16).clip(0, 255).astype(np.uint8), digits.target.astype(np.uint16))


def write_shards(table: pd.DataFrame, folder: Path, part_bytes: int) -> ShardedTable:
    ParquetShardsDataset(filepath=str(folder), part_bytes=part_bytes).save(table)
    loaded = ParquetShardsDataset(filepath=str(folder), lazy=True).load()
    assert isinstance(loaded, ShardedTable)
    return loaded


def row_ids(rows: pa.Table) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
    """Decode a row as its ``row`` id (which rows a batch holds) and its label."""
    ids = torch.from_numpy(rows.column("row").to_numpy().astype(np.int64))
    return (ids,), torch.from_numpy(rows.column("label").to_numpy().astype(np.int64))


@pytest.fixture(scope="module")
def numbered(tmp_path_factory) -> ShardedTable:
    """1,000 rows in 8 parts (``row`` 0-999, ``label`` row % 10)."""
    table = pd.DataFrame({"row": np.arange(1000), "label": np.arange(1000) % 10})
    return write_shards(table, tmp_path_factory.mktemp("numbered"), part_bytes=2000)


def epoch(stream: ShardStream, seed: int, batch_size: int = 64) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    return [(features[0], targets) for features, targets in stream.batches(batch_size, shuffle=True, generator=generator)]


def test_an_epoch_reads_every_row_once_in_an_order_drawn_from_the_generator(numbered):
    assert len(numbered.parts) == 8 and len(numbered) == 1000
    stream = ShardStream(numbered, row_ids, columns=("row", "label"), buffer_rows=300)
    batches = epoch(stream, seed=1)
    rows = torch.cat([ids for ids, _ in batches])
    assert sorted(rows.tolist()) == list(range(1000))
    assert [len(ids) for ids, _ in batches] == [64] * 15 + [40]  # global batches across the windows, the last one short
    assert torch.equal(torch.cat([t for _, t in batches]), rows % 10)  # targets travel with their rows
    assert torch.equal(torch.cat([ids for ids, _ in epoch(stream, seed=1)]), rows)  # seeded
    assert not torch.equal(torch.cat([ids for ids, _ in epoch(stream, seed=2)]), rows)
    # shuffled beyond one part: the first batch draws from the several parts of its window
    assert len({int(i) // 125 for i in batches[0][0]}) > 1
    in_order = [ids for (ids,), _ in stream.batches(64, shuffle=False)]
    assert torch.equal(torch.cat(in_order), torch.arange(1000))


class CountingPrepare:
    def __init__(self):
        self.rows = 0

    def __call__(self, features):
        self.rows += len(features[0])
        return features


@pytest.mark.parametrize("world_size", [2, 3])
def test_each_process_gets_the_same_global_batches_and_prepares_only_its_slice(numbered, world_size):
    whole = epoch(ShardStream(numbered, row_ids, columns=("row", "label"), buffer_rows=300), seed=5, batch_size=50)
    prepared = 0
    for rank in range(world_size):
        prepare = CountingPrepare()
        stream = ShardStream(numbered, row_ids, columns=("row", "label"), prepare=prepare, buffer_rows=300)
        stream = stream.for_rank(rank, world_size)
        for (ids, targets), (all_ids, all_targets) in zip(epoch(stream, seed=5, batch_size=50), whole, strict=True):
            assert torch.equal(targets, all_targets)
            mine = torch.zeros(len(all_ids), dtype=torch.bool)
            mine[torch.arange(len(all_ids)).tensor_split(world_size)[rank]] = True  # training.distributed.shard's cut
            assert torch.equal(ids[mine], all_ids[mine]) and not ids[~mine].any()
        prepared += prepare.rows
    assert prepared == 1000  # together the processes prepared every row once


def test_a_sharded_table_trains_as_well_as_the_same_images_in_memory(tmp_path):
    table = digits_table()
    train_table, val_table = table.iloc[:1400], table.iloc[1400:].reset_index(drop=True)
    shards = write_shards(train_table, tmp_path / "train", part_bytes=20_000)
    assert len(shards.parts) > 3
    config = TrainConfig(epochs=6, batch_size=64, lr=0.003, seed=0, progress=False, channels_last=False, device="cpu")
    val = image_tensors(val_table, NORMALISATION)
    stream = ShardStream(shards, image_rows, columns=COLUMNS, prepare=Normalise(NORMALISATION), buffer_rows=400)
    streamed = fit(small_cnn(), stream, val, config)
    in_memory = fit(small_cnn(), image_tensors(train_table, NORMALISATION), val, config)
    assert streamed.history[-1].val_accuracy > 0.9
    assert abs(streamed.history[-1].val_accuracy - in_memory.history[-1].val_accuracy) < 0.05


def small_cnn() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(8 * 64, 10)
    )


def test_a_bad_part_is_refused_by_name(tmp_path):
    (tmp_path / "part-00000.parquet").write_bytes(b"not parquet")
    with pytest.raises(Exception, match=r"part-00000\.parquet: not a readable parquet part"):
        ParquetShardsDataset(filepath=str(tmp_path), lazy=True).load()


# --------------------------------------------------------------------------- subprocesses: memory, kill and resume, torchrun

TRAIN_SCRIPT = """
import json, os, signal, sys
from pathlib import Path

import torch
from dlflow.io import ParquetShardsDataset
from dlflow.training import Callback, fit
from dlflow.training.cnn import Normalise, image_rows, image_tensors
from dlflow.training.config import TrainConfig
from dlflow.training.streaming import ShardStream

shards, mode, out = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
epochs, kill_after = int(sys.argv[4]), int(sys.argv[5])
NORMALISATION = {"mean": 0.3, "std": 0.3}
COLUMNS = ("label", "pixels", "height", "width", "channels")


def peak_mb():
    # VmHWM: this process's peak resident set since exec (ru_maxrss would carry the forking parent's)
    line = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


class KillAfter(Callback):
    def on_epoch_end(self, record, model):
        if record.epoch == kill_after:
            os.kill(os.getpid(), signal.SIGKILL)  # after the epoch's checkpoint, as a crash would


table = ParquetShardsDataset(filepath=str(shards), lazy=True).load()
height = int(table.read_part(0, ["height"]).column(0)[0].as_py())
if mode == "memory":
    train = image_tensors(table.read(), NORMALISATION)
else:
    train = ShardStream(table, image_rows, columns=COLUMNS, prepare=Normalise(NORMALISATION), buffer_rows=600)
val = image_tensors(table.read_part(0).slice(0, 200).to_pandas(), NORMALISATION)
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(height * height, 10))
config = TrainConfig(
    epochs=epochs, batch_size=256, lr=0.003, seed=0, progress=False, channels_last=False, device="cpu",
    num_threads=1, checkpoint_dir=str(out / "checkpoints"), processes=2 if mode == "shards-2" else 1,
)
result = fit(model, train, val, config, callbacks=[KillAfter()])
world = os.environ.get("RANK", "0")
(out / f"report{world}.json").write_text(json.dumps({
    "peak_mb": peak_mb(),
    "resumed_from_epoch": result.resumed_from_epoch,
    "weights": {k: v.tolist() for k, v in result.model.state_dict().items()},
    "val_accuracy": [r.val_accuracy for r in result.history],
}))
"""


def train_in_subprocess(tmp_path: Path, shards: Path, mode: str, out: Path, *, epochs: int = 1, kill_after: int = 0, launcher=()):
    script = tmp_path / "train_from_shards.py"
    script.write_text(textwrap.dedent(TRAIN_SCRIPT))
    out.mkdir(parents=True, exist_ok=True)
    env = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, *launcher, str(script), str(shards), mode, str(out), str(epochs), str(kill_after)]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)


@pytest.fixture(scope="module")
def fashion_shards(tmp_path_factory, data_mirror: Path) -> Path:
    """The mirror's 60,000 Fashion-MNIST training images as image-table shards of about 4 MiB."""
    from dlflow.sources.idx import read_idx

    folder = tmp_path_factory.mktemp("fashion") / "train"
    images = read_idx(data_mirror / "fashion-mnist" / "train-images-idx3-ubyte.gz")
    labels = read_idx(data_mirror / "fashion-mnist" / "train-labels-idx1-ubyte.gz")
    write_shards(image_table(images, labels.astype(np.uint16)), folder, part_bytes=4 << 20)
    return folder


@pytest.mark.e2e  # training processes of their own
def test_streaming_sixty_thousand_images_peaks_far_below_loading_them_whole(tmp_path, fashion_shards):
    """The peak resident memory of a whole process that trains one epoch: streamed vs loaded whole.

    Whole: the table (47 MB of pixels) and its decoded float tensors (188 MB). Streamed: a window
    of a few 4 MiB shards and one batch.
    """
    peaks = {}
    for mode in ("memory", "shards"):
        completed = train_in_subprocess(tmp_path, fashion_shards, mode, tmp_path / mode)
        assert completed.returncode == 0, completed.stderr[-3000:]
        peaks[mode] = json.loads((tmp_path / mode / "report0.json").read_text())["peak_mb"]
    assert peaks["shards"] < peaks["memory"] - 150, peaks


@pytest.mark.e2e  # training processes of their own
def test_a_run_killed_mid_training_resumes_from_its_last_checkpoint_and_ends_as_if_never_stopped(tmp_path, fashion_shards):
    small = tmp_path / "small"
    ParquetShardsDataset(filepath=str(small), part_bytes=200_000).save(
        ParquetShardsDataset(filepath=str(fashion_shards), lazy=True).load().read_part(0).slice(0, 1500).to_pandas()
    )
    whole = train_in_subprocess(tmp_path, small, "shards", tmp_path / "whole", epochs=3)
    assert whole.returncode == 0, whole.stderr[-3000:]
    killed = train_in_subprocess(tmp_path, small, "shards", tmp_path / "killed", epochs=3, kill_after=2)
    assert killed.returncode == -signal.SIGKILL and not (tmp_path / "killed" / "report0.json").exists()
    resumed = train_in_subprocess(tmp_path, small, "shards", tmp_path / "killed", epochs=3)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = (json.loads((tmp_path / run / "report0.json").read_text()) for run in ("whole", "killed"))
    assert b["resumed_from_epoch"] == 2 and a["resumed_from_epoch"] == 0
    assert a["weights"] == b["weights"]  # bit-identical on the CPU


@pytest.mark.e2e  # training processes of their own
def test_two_torchrun_processes_streaming_their_slices_train_like_one(tmp_path, fashion_shards):
    small = tmp_path / "small"
    ParquetShardsDataset(filepath=str(small), part_bytes=200_000).save(
        ParquetShardsDataset(filepath=str(fashion_shards), lazy=True).load().read_part(0).slice(0, 1024).to_pandas()
    )
    one = train_in_subprocess(tmp_path, small, "shards", tmp_path / "one", epochs=2)
    assert one.returncode == 0, one.stderr[-3000:]
    two = train_in_subprocess(
        tmp_path, small, "shards-2", tmp_path / "two", epochs=2,
        launcher=("-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"),
    )  # fmt: skip
    assert two.returncode == 0, two.stderr[-3000:]
    single = json.loads((tmp_path / "one" / "report0.json").read_text())
    ranks = [json.loads((tmp_path / "two" / f"report{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["weights"] == ranks[1]["weights"]
    for name, value in single["weights"].items():
        torch.testing.assert_close(torch.tensor(ranks[0]["weights"][name]), torch.tensor(value), rtol=1e-4, atol=1e-5)
