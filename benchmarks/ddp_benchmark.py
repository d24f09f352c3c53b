"""Side-by-side benchmark: the shared training loop in 1 process, in N processes on one node, and on two nodes.

Trains the default CNN recipe (``conf/base/parameters_cnn.yml``: FastCNN,
AdamW + OneCycle, horizontal flips) on the Fashion-MNIST training images
(90 % train / 10 % validation, as the pipeline splits them) once per variant,
in this one invocation, and evaluates each model on the test images with the
recipe's test-time flip. Every variant is a child process (or two), so each
wall time includes starting Python and torch and loading the data:

``1``     one process: ``python benchmarks/ddp_benchmark.py --worker``;
``N``     N processes on one node: the same under ``torchrun --standalone --nproc_per_node=N``;
``2n``    two nodes of one process each: two ``torchrun --nnodes=2 --rdzv-backend=c10d`` agents that meet
          at a loopback rendezvous, as two hosts would, each pinned to its own core (``taskset``) like
          two one-core machines. On a 2-core machine they share what one process already keeps busy,
          so it shows that two nodes train the same model, not a speedup.

gloo on CPU, NCCL on GPU; the global batch is the recipe's in every variant.

    DLFLOW_DATA_MIRROR=../shared/data python benchmarks/ddp_benchmark.py [--variants 1,2n] [--epochs 4] [--max-train-samples N]

Prints the CPU model and whether bf16 is native, a table, and writes
``benchmarks/results/ddp_benchmark.json`` (``--output`` elsewhere).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from harness import REPO, describe_machine, print_machine, timed

RESULTS = REPO / "benchmarks" / "results" / "ddp_benchmark.json"
VARIANTS = {
    "1": "one process, all cores",
    "2": "torchrun --standalone --nproc_per_node=2 (one node)",
    "2n": "two torchrun nodes x 1 process, c10d rendezvous on loopback, one core each (taskset)",
}


def recipe(epochs: int | None) -> tuple[dict, dict]:
    """The ``cnn`` parameters and the training recipe benchmarked (no checkpoints, no progress bar)."""
    import yaml

    params = yaml.safe_load((REPO / "conf" / "base" / "parameters_cnn.yml").read_text())["cnn"]
    training = {k: v for k, v in params["training"].items() if k not in ("checkpoint_dir", "processes")}
    return params, training | {"progress": False, "epochs": epochs or training["epochs"]}


def worker(args: argparse.Namespace) -> None:
    """Train once, in this process or as one of torchrun's; rank 0 writes the report to ``args.report``."""
    import numpy as np
    import torch

    from dlflow.models import build_cnn, hflip, random_hflip
    from dlflow.sources.idx import read_idx
    from dlflow.training import (
        TensorDataset,
        TrainConfig,
        fit,
        predict,
        seed_everything,
    )

    def load(prefix: str) -> tuple[np.ndarray, np.ndarray]:
        folder = Path(os.environ.get("DLFLOW_DATA_MIRROR", REPO.parent / "shared" / "data")).resolve() / "fashion-mnist"
        return read_idx(folder / f"{prefix}-images-idx3-ubyte.gz"), read_idx(folder / f"{prefix}-labels-idx1-ubyte.gz")

    def tensors(images: np.ndarray, labels: np.ndarray) -> TensorDataset:
        x = (torch.from_numpy(images).float().div_(255.0).unsqueeze(1) - mean) / std
        return TensorDataset((x,), torch.from_numpy(labels.astype(np.int64)))

    params, training = recipe(args.epochs)
    processes = int(os.environ.get("WORLD_SIZE", 1))
    images, labels = load("train")
    test_images, test_labels = load("t10k")
    order = np.random.default_rng(params["data"]["split_seed"]).permutation(len(labels))[: args.max_train_samples]
    n_val = int(len(order) * params["data"]["validation_fraction"])
    train_idx, val_idx = order[n_val:], order[:n_val]
    scaled = images[train_idx].astype(np.float64) / 255.0
    mean, std = float(scaled.mean()), float(scaled.std())
    train, val = tensors(images[train_idx], labels[train_idx]), tensors(images[val_idx], labels[val_idx])
    test = tensors(test_images[: args.max_test_samples], test_labels[: args.max_test_samples])

    seed_everything(training["seed"], training["deterministic"])
    model = build_cnn(params["model"]["architecture"], num_classes=10, **params["model"]["options"])
    result = fit(model, train, val, TrainConfig(**training, processes=processes), train_transform=random_hflip)
    if int(os.environ.get("RANK", 0)) != 0:
        return
    probabilities = predict(model, test.features, device="cpu", transform_tta=hflip)
    report = {
        "train_seconds": result.train_seconds,  # the epochs (training and validation)
        "samples_per_second": len(train) * len(result.history) / result.train_seconds,
        "test_accuracy": float((probabilities.argmax(dim=1) == test.targets).float().mean()),
        "final_val_accuracy": result.history[-1].val_accuracy,
        "setup": {"train": len(train), "val": len(val), "test": len(test), "recipe": training},
    }
    Path(args.report).write_text(json.dumps(report))


def launch(variant: str, script: list[str], folder: Path) -> dict:
    """Run one variant to completion: its wall time (start to the last process's exit) and load averages."""
    log = folder / f"{variant}.log"
    if variant == "1":
        return timed([sys.executable, *script], REPO, dict(os.environ), log)
    if variant.isdigit():
        launcher = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={variant}"]
        return timed([sys.executable, *launcher, *script], REPO, dict(os.environ), log)
    if variant == "2n":
        return two_nodes(script, folder)
    raise SystemExit(f"unknown variant {variant!r}: 1, N (processes on one node) or 2n (two nodes)")


def two_nodes(script: list[str], folder: Path, timeout: float = 3600) -> dict:
    """Two torchrun agents on a c10d rendezvous at a free loopback port, each pinned to one core where there are two."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    run_id = f"ddp-benchmark-{uuid.uuid4().hex[:8]}"
    torchrun = [
        sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc-per-node=1", "--rdzv-backend=c10d",
        f"--rdzv-endpoint=127.0.0.1:{port}", f"--rdzv-id={run_id}", *script,
    ]  # fmt: skip
    cores = sorted(os.sched_getaffinity(0))
    env = dict(os.environ) | {"TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1"}
    load_before, processes = os.getloadavg()[0], []
    started = time.time()
    try:
        for node in range(2):
            pin = ["taskset", "-c", str(cores[node])] if len(cores) >= 2 and shutil.which("taskset") else []
            with (folder / f"2n-node{node}.log").open("w") as sink:
                processes.append(subprocess.Popen(
                    [*pin, *torchrun], cwd=REPO, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
                ))  # fmt: skip
        for process in processes:
            process.wait(timeout=max(1.0, started + timeout - time.time()))
        ended = time.time()
    finally:
        for process in processes:  # the agents first, then any worker left (torchrun gives each its own session)
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait()
        for entry in Path("/proc").glob("[0-9]*"):
            try:
                if f"TORCHELASTIC_RUN_ID={run_id}".encode() in (entry / "environ").read_bytes().split(b"\0"):
                    os.kill(int(entry.name), signal.SIGKILL)
            except (OSError, ValueError):
                continue
    if any(p.returncode for p in processes):
        tails = "".join((folder / f"2n-node{n}.log").read_text()[-3000:] for n in range(2))
        raise RuntimeError(f"two-node run failed ({[p.returncode for p in processes]}):\n{tails}")
    return {"wall_seconds": ended - started, "load_before": load_before, "load_after": os.getloadavg()[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default="1,2n", help="comma-separated: 1, N (processes on one node), 2n (two nodes)")
    parser.add_argument("--epochs", type=int, default=None, help="default: the recipe's")
    parser.add_argument("--max-train-samples", type=int, default=None, help="default: all 60,000")
    parser.add_argument("--max-test-samples", type=int, default=None, help="default: all 10,000")
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"default: {RESULTS.relative_to(REPO)}")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--report", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)

    machine = describe_machine()
    print_machine(machine)
    options = [f"--{name}={value}" for name in ("epochs", "max-train-samples", "max-test-samples")
               if (value := getattr(args, name.replace("-", "_"))) is not None]  # fmt: skip
    results: dict[str, dict] = {}
    setup: dict = {}
    with tempfile.TemporaryDirectory(prefix="dlflow-ddp-benchmark-") as folder:
        for variant in args.variants.split(","):
            print(f"training: variant {variant} ...", flush=True)
            report = Path(folder) / f"{variant}.json"
            script = [str(Path(__file__).resolve()), "--worker", f"--report={report}", *options]
            timing = launch(variant, script, Path(folder))
            found = json.loads(report.read_text())
            setup = found.pop("setup")
            results[variant] = {"wall_seconds": timing["wall_seconds"], **found,  # wall: includes start-up
                                "load_before": timing["load_before"], "load_after": timing["load_after"]}  # fmt: skip
            print(f"  {json.dumps(results[variant])}", flush=True)

    print(f"\n{'variant':<11}{'wall s':>9}{'train s':>9}{'samples/s':>11}{'test acc':>10}")
    for name, r in results.items():
        print(
            f"{name:<11}{r['wall_seconds']:>9.1f}{r['train_seconds']:>9.1f}{r['samples_per_second']:>11.0f}{r['test_accuracy']:>10.2%}"
        )
    derived = {}
    if "1" in results:
        for name, r in results.items():
            if name != "1":
                derived[f"speedup_{name}_vs_1"] = results["1"]["wall_seconds"] / r["wall_seconds"]
                derived[f"train_speedup_{name}_vs_1"] = results["1"]["train_seconds"] / r["train_seconds"]
                derived[f"accuracy_{name}_minus_1"] = r["test_accuracy"] - results["1"]["test_accuracy"]
                print(f"{name} vs 1 process: {derived[f'speedup_{name}_vs_1']:.2f}x wall, "
                      f"{derived[f'train_speedup_{name}_vs_1']:.2f}x training, "
                      f"{derived[f'accuracy_{name}_minus_1'] * 100:+.2f} points of test accuracy")  # fmt: skip
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(
        {"machine": machine, "variants": VARIANTS, "setup": setup, "results": results, "derived": derived},
        indent=2,
    ) + "\n")  # fmt: skip
    print(f"\nwritten {args.output}")


if __name__ == "__main__":
    main()
