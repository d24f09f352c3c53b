"""Many machines: two ``torchrun`` nodes joined by a c10d rendezvous train like one process, and
TorchElastic restarts a killed worker, which resumes from the last checkpoint instead of from scratch.

Two ``torchrun`` node processes on this machine stand in for two hosts (``--nnodes=2
--nproc-per-node=1 --rdzv-backend=c10d``, each pinned to its own core with ``taskset`` where the
machine has two, as two one-core hosts would be). Each runs this module as its training script
(``python -m tests.training.test_multinode``, see ``train``), which trains the CNN recipe of the
``cnn`` pipeline (``conf/base/parameters_cnn.yml``, through ``dlflow.training.cnn.fit_cnn``, what the
``train_cnn`` node calls) on a few hundred real Fashion-MNIST images from the mirror. The
checkpoint folder is shared by both nodes, as a network volume would be on real hosts.

The data source is a parameter (``SOURCES``): each source hands ``fit_cnn`` the training and
validation splits it would receive in the pipeline: the images in memory, or the same images as
parquet shards that the loop streams (each rank preparing only its slice of every global batch).
A launch costs 20-60 s on a 2-core machine: every agent and every worker imports torch.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from dlflow.sources.sharded_table import ShardedTable

REPO = Path(__file__).resolve().parents[2]
MIRROR = Path(os.environ.get("DLFLOW_DATA_MIRROR", REPO.parent / "shared" / "data")).resolve()
CLASSES = [str(i) for i in range(10)]
pytestmark = pytest.mark.e2e  # torchrun launches: training processes of their own

LAUNCH_TIMEOUT = 240  # seconds for one whole launch, restarts included
STEPS_PER_EPOCH = 8  # 500 training images at batch 64: 7 full batches and one of 52
KILL_RANK, KILL_AT_STEP = 1, STEPS_PER_EPOCH + 4  # in the middle of epoch 2, after epoch 1's checkpoint
#: Every agent's environment: the workers' process group gets its own store each rendezvous round, not the
#: agents' shared one, in which a restarted worker can read the previous round's addresses and fail to connect
#: (torch 2.13; pytorch/pytorch#135712). Set it wherever TorchElastic may restart (docs/distributed.md).
RESTARTABLE = {"TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1"}


# --------------------------------------------------------------------------- the training script


def fashion_mnist_in_memory(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """1,500 stratified Fashion-MNIST training images split by the ``cnn`` pipeline's node: 500 to train on,
    1,000 to validate on (many, so that one image is a tenth of a point of accuracy)."""
    from dlflow.pipelines.cnn.nodes import split_train_validation
    from dlflow.sources.idx import read_idx
    from dlflow.sources.image_table import image_table
    from dlflow.sources.sharded_table import frame

    images = read_idx(MIRROR / "fashion-mnist" / "train-images-idx3-ubyte.gz")[:10_000]
    labels = read_idx(MIRROR / "fashion-mnist" / "train-labels-idx1-ubyte.gz")[:10_000]
    data = {"validation_fraction": 2 / 3, "split_seed": 42, "max_train_samples": 1500}
    train, validation = split_train_validation(image_table(images, labels), image_table(images[:0], labels[:0]), data)
    return frame(train), validation


def fashion_mnist_shards(folder: Path) -> tuple[ShardedTable, pd.DataFrame]:
    """The same training images as 4 parquet shards (written once, atomically, by whichever process comes
    first), streamed by the loop (``dlflow.training.streaming.ShardStream``): each rank prepares its slice."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    train, val = fashion_mnist_in_memory(folder)
    parts = []
    for index, rows in enumerate(np.array_split(np.arange(len(train)), 4)):
        part = folder / "shards" / f"part-{index:05d}.parquet"
        if not part.exists():
            part.parent.mkdir(parents=True, exist_ok=True)
            temporary = part.with_name(f".{part.name}.{os.getpid()}")
            pq.write_table(pa.Table.from_pandas(train.iloc[rows], preserve_index=False), temporary)
            os.replace(temporary, part)
        parts.append(part)
    return ShardedTable.from_parts(parts), val


#: Where the training and validation splits come from: ``name -> (folder -> (train, validation))``.
SOURCES: dict[str, Callable[[Path], tuple[pd.DataFrame | ShardedTable, pd.DataFrame]]] = {
    "memory": fashion_mnist_in_memory,
    "shards": fashion_mnist_shards,
}


def recipe(processes: int) -> tuple[dict, dict, dict]:
    """The ``cnn`` pipeline's model, training and augmentation parameters, made small and exactly comparable.

    3 epochs at batch 64, float32 (bf16 only where native would make runs depend on the CPU), no
    dropout (each process draws its own masks, so two processes could not match one), one thread
    per process (two "hosts" share this machine's cores).
    """
    import yaml

    params = yaml.safe_load((REPO / "conf" / "base" / "parameters_cnn.yml").read_text())["cnn"]
    model = params["model"] | {"options": params["model"]["options"] | {"bf16": False, "dropout": 0.0}}
    training = params["training"] | {
        "epochs": 3, "batch_size": 64, "min_steps": None, "device": "cpu", "num_threads": 1,
        "progress": False, "processes": processes,
    }  # fmt: skip
    augmentation = params["augmentation"] | {"horizontal_flip": True}
    return model, training, augmentation


def _kill_once_at(rank: int, step: int, marker: Path) -> None:
    """Make this process SIGKILL itself at its ``step``-th training step if it is ``rank`` and ``marker`` does
    not exist yet (it is written first): a crash that happens once, whichever node the rank runs on."""
    if int(os.environ.get("RANK", 0)) != rank or marker.exists():
        return
    steps = 0

    def count_steps(module: torch.nn.Module, inputs) -> None:
        nonlocal steps
        if module.training and type(module).__name__ == "FastCNN":  # the network itself, in a training step
            steps += 1
            if steps == step:
                marker.write_text(f"rank {rank} killed at training step {step}\n")
                print(f"rank {rank}: killing myself at training step {step}", file=sys.stderr, flush=True)
                os.kill(os.getpid(), signal.SIGKILL)

    torch.nn.modules.module.register_module_forward_pre_hook(count_steps)


@contextmanager
def first_step_recorded() -> Iterator[dict]:
    """The first training step's logits (this rank's slice of the global batch) and the gradients the optimizer
    then steps with (averaged over the ranks by DDP), recorded by global hooks that are removed on exit."""
    from torch.optim.optimizer import register_optimizer_step_pre_hook

    first: dict = {}

    def logits(module: torch.nn.Module, inputs, output: torch.Tensor) -> None:
        if module.training and type(module).__name__ == "FastCNN" and "logits" not in first:
            first["logits"] = output.detach().clone()

    def gradients(optimizer: torch.optim.Optimizer, args, kwargs) -> None:
        if "gradients" not in first:
            first["gradients"] = [p.grad.detach().clone() for group in optimizer.param_groups for p in group["params"]]

    handles = [
        torch.nn.modules.module.register_module_forward_hook(logits),
        register_optimizer_step_pre_hook(gradients),
    ]
    try:
        yield first
    finally:
        for handle in handles:
            handle.remove()


def train(out: Path, source: str) -> None:
    """Train once (in this process, or as one of ``torchrun``'s) and save this rank's result to ``out/rank<r>.pt``.

    ``$DLFLOW_TEST_KILL`` = ``<rank>:<step>`` kills that rank once at that training step.
    """
    from dlflow.config import AugmentationParams, CnnModelParams, StreamingParams, TrainingParams
    from dlflow.pipelines.cnn.nodes import compute_normalisation
    from dlflow.training.cnn import fit_cnn

    logging.basicConfig(level=logging.INFO, format="%(name)s %(levelname)s %(message)s")
    if kill := os.environ.get("DLFLOW_TEST_KILL"):
        _kill_once_at(*map(int, kill.split(":")), marker=out / "killed")
    train_split, val_split = SOURCES[source](out)
    model, training, augmentation = recipe(processes=int(os.environ.get("WORLD_SIZE", 1)))
    streamed = isinstance(train_split, ShardedTable)
    normalisation = compute_normalisation(train_split)  # as the pipeline's node
    with first_step_recorded() as first:
        result = fit_cnn(
            train_split, val_split, normalisation, CLASSES,
            CnnModelParams.model_validate(model), TrainingParams.model_validate(training),
            AugmentationParams.model_validate(augmentation), callbacks=[], checkpoint_dir=str(out / "checkpoints"),
            streaming=StreamingParams(mode="shards" if streamed else "memory", shuffle_buffer_rows=256),
        )  # fmt: skip
    report = {
        "weights": result.model.state_dict(),
        "first_step": first,  # empty in a run resumed after the first epoch
        "train_loss": [record.train_loss for record in result.history],
        "val_accuracy": [record.val_accuracy for record in result.history],
        "resumed_from_epoch": result.resumed_from_epoch,
        "restart_count": int(os.environ.get("TORCHELASTIC_RESTART_COUNT", 0)),
        "group_rank": int(os.environ.get("GROUP_RANK", 0)),
    }
    torch.save(report, out / f"rank{os.environ.get('RANK', 0)}.pt")


# --------------------------------------------------------------------------- launching nodes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def kill_workers(run_id: str) -> None:
    """SIGKILL every worker of the TorchElastic run ``run_id`` still alive (Linux ``/proc``): torchrun starts each
    worker in a session of its own, so killing an agent's session leaves its workers running."""
    mark = f"TORCHELASTIC_RUN_ID={run_id}".encode()
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if mark in (entry / "environ").read_bytes().split(b"\0"):
                os.kill(int(entry.name), signal.SIGKILL)
        except (OSError, ValueError):
            continue  # gone meanwhile, or not ours to read


@dataclass
class Launch:
    """What a multi-node launch left: each node's exit status and output, and each rank's report."""

    returncodes: list[int]
    outputs: list[str]
    reports: dict[int, dict]

    @property
    def log(self) -> str:
        return "\n".join(
            f"----- node {n} (exit {rc})\n{out[-4000:]}" for n, (rc, out) in enumerate(zip(self.returncodes, self.outputs))
        )


def launch_nodes(out: Path, *, nodes: int = 2, source: str = "memory", max_restarts: int = 0, env: dict | None = None) -> Launch:
    """Start ``nodes`` ``torchrun`` agents that rendezvous over c10d at a free loopback port, as ``nodes``
    hosts would, each training ``train`` in one process; wait for all of them (``LAUNCH_TIMEOUT``).

    Each agent runs in its own session; every agent and every worker still alive is killed before returning.
    """
    out.mkdir(parents=True, exist_ok=True)
    endpoint, run_id = f"127.0.0.1:{free_port()}", f"dlflow-test-{uuid.uuid4().hex[:12]}"
    torchrun = [
        sys.executable, "-m", "torch.distributed.run", f"--nnodes={nodes}", "--nproc-per-node=1",
        "--rdzv-backend=c10d", f"--rdzv-endpoint={endpoint}", f"--rdzv-id={run_id}", f"--max-restarts={max_restarts}",
        "-m", "tests.training.test_multinode", str(out), source,
    ]  # fmt: skip
    cores = sorted(os.sched_getaffinity(0))
    pythonpath = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    environment = os.environ | {"PYTHONPATH": pythonpath, "OMP_NUM_THREADS": "1", **RESTARTABLE} | (env or {})
    logs = [out / f"node{n}.log" for n in range(nodes)]
    processes: list[subprocess.Popen] = []
    try:
        for node, log in enumerate(logs):
            pin = ["taskset", "-c", str(cores[node])] if len(cores) >= nodes and shutil.which("taskset") else []
            with log.open("w") as sink:
                processes.append(subprocess.Popen(
                    [*pin, *torchrun], cwd=REPO, env=environment, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
                ))  # fmt: skip
        deadline = time.monotonic() + LAUNCH_TIMEOUT
        for process in processes:
            process.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        for process in processes:  # the agents first, so that none restarts a worker killed below
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait()
        kill_workers(run_id)
    reports = {int(p.stem[4:]): torch.load(p, weights_only=True) for p in out.glob("rank*.pt")}
    return Launch([p.returncode for p in processes], [log.read_text() for log in logs], reports)


# --------------------------------------------------------------------------- tests


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, str], Launch | dict]:
    """``runs(kind, source)``, each made once for the module: ``"two nodes"``, an uninterrupted two-node run (a
    ``Launch``), or ``"one process"``, the same training in this process with the same global batch (rank 0's report)."""
    made: dict[tuple[str, str], Launch | dict] = {}

    def run(kind: str, source: str) -> Launch | dict:
        if (kind, source) not in made:
            out = tmp_path_factory.mktemp(f"{kind}-{source}".replace(" ", "-"))
            if kind == "two nodes":
                made[kind, source] = launch_nodes(out, source=source)
            else:
                threads = torch.get_num_threads()
                try:
                    train(out, source)
                finally:
                    torch.set_num_threads(threads)
                made[kind, source] = torch.load(out / "rank0.pt", weights_only=True)
        return made[kind, source]

    return run


@pytest.mark.parametrize("source", ["shards"])  # the in-memory path under torchrun: tests/training/test_distributed.py
def test_two_torchrun_nodes_on_a_c10d_rendezvous_train_like_one_process(source, runs):
    """N ranks see the same global batches as one process, so they train the same model.

    Checked where it is exact: the first step's logits (the ranks' slices together) and the gradients it
    steps with equal one process's up to float rounding: 2e-5 of their norm for the linear head; below
    the last ReLU up to 1.6e-2, because a ReLU input or max-pool pair within rounding of a tie goes the
    other way and routes a whole gradient value differently (measured: BatchNorm biases differ where
    their weights do not, as a ReLU flip at init predicts; one process on 1 thread against 2 threads
    differs by as much, layer by layer). Not the final weights: in this CNN, rounding
    differences grow into weight differences of 1e-2 within 3 epochs (one process on 1 thread against 2
    threads drifts as far; Adam's first steps are about lr times the gradient's sign), so the end is
    checked by accuracy on 1,000 validation images.
    """
    launch, one_process = runs("two nodes", source), runs("one process", source)
    assert launch.returncodes == [0, 0], launch.log
    assert sorted(launch.reports) == [0, 1]  # one rank on each node
    assert sorted(r["group_rank"] for r in launch.reports.values()) == [0, 1]
    rank0, rank1 = launch.reports[0], launch.reports[1]
    for name, value in rank0["weights"].items():  # every rank ends with the same model
        assert torch.equal(rank1["weights"][name], value), name

    logits = torch.cat([rank0["first_step"]["logits"], rank1["first_step"]["logits"]])
    torch.testing.assert_close(logits, one_process["first_step"]["logits"], rtol=1e-4, atol=1e-4)
    gradients = zip(rank0["first_step"]["gradients"], one_process["first_step"]["gradients"], strict=True)
    errors = [float((two - one).norm() / one.norm()) for two, one in gradients]  # per parameter, by the model's order
    assert max(errors[-2:]) < 1e-3, errors  # the linear head's: 2e-5 measured (rounding)
    assert max(errors) < 5e-2, errors  # below it up to 1.6e-2: ReLU and max-pool near-ties that rounding tips over
    assert rank0["train_loss"] == pytest.approx(one_process["train_loss"], rel=2e-2)
    assert rank0["val_accuracy"] == pytest.approx(one_process["val_accuracy"], abs=0.02)
    assert one_process["val_accuracy"][-1] > 0.65  # it learned: 10 classes, 500 images, 3 epochs


def test_a_killed_worker_is_restarted_by_torchelastic_and_resumes_from_the_last_checkpoint(runs, tmp_path):
    """Training streamed from shards, rank 1 SIGKILLs itself in the middle of epoch 2. Its agent restarts it
    (``--max-restarts=1``), the other agent restarts its worker for the new rendezvous round, and both resume
    after epoch 1 (not from scratch), ending exactly as the uninterrupted run."""
    env = {"DLFLOW_TEST_KILL": f"{KILL_RANK}:{KILL_AT_STEP}"}
    launch = launch_nodes(tmp_path, source="shards", max_restarts=1, env=env)
    assert launch.returncodes == [0, 0], launch.log
    output = "\n".join(launch.outputs)
    assert f"rank {KILL_RANK}: killing myself at training step {KILL_AT_STEP}" in output, launch.log
    assert re.search(r"failed \(exitcode: -9\)", output), launch.log  # the agent saw the SIGKILL
    resumed = re.findall(r"resuming from (\S+) after epoch (\d+)", output)
    assert [epoch for _, epoch in resumed] == ["1"], launch.log  # rank 0 read epoch 1's checkpoint, once
    assert Path(resumed[0][0]).parent.parent == tmp_path / "checkpoints"

    assert sorted(launch.reports) == [0, 1]
    assert [report["resumed_from_epoch"] for report in launch.reports.values()] == [1, 1]
    # The killed node's agent counts its restart. The other agent restarts its worker for the new round, and counts
    # it too when that worker failed as well (a collective in flight when its peer died), else not: timing decides.
    counts = sorted(report["restart_count"] for report in launch.reports.values())
    assert counts in ([0, 1], [1, 1]), counts
    two_nodes = runs("two nodes", "shards")
    uninterrupted = two_nodes.reports[0]
    assert two_nodes.returncodes == [0, 0] and uninterrupted["resumed_from_epoch"] == 0
    assert launch.reports[0]["train_loss"][1:] == uninterrupted["train_loss"][1:]
    assert launch.reports[0]["val_accuracy"] == uninterrupted["val_accuracy"]
    for name, value in uninterrupted["weights"].items():  # resume is bit-identical
        assert torch.equal(launch.reports[0]["weights"][name], value), name


# --------------------------------------------------------------------------- the script torchrun runs


def main() -> None:
    parser = argparse.ArgumentParser(description="One rank of the multi-node tests' training (see the module's docstring).")
    parser.add_argument("out", type=Path, help="folder for the checkpoints and each rank's report (shared by the nodes)")
    parser.add_argument("source", choices=sorted(SOURCES), help="where the training images come from")
    args = parser.parse_args()
    train(args.out, args.source)


if __name__ == "__main__":
    main()
