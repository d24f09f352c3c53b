"""Side-by-side benchmark: the shared training loop in 1 process vs N DistributedDataParallel processes under torchrun.

Trains the default CNN recipe (``conf/base/parameters_cnn.yml``: FastCNN,
AdamW + OneCycle, horizontal flips) on the Fashion-MNIST training images
(90 % train / 10 % validation, as the pipeline splits them) once per process
count, in this one invocation, and evaluates each model on the test images
with the recipe's test-time flip. Every variant is a child process, so each
wall time includes starting Python and torch and loading the data: 1 process
runs ``python benchmarks/ddp_benchmark.py --worker``, N processes run the same
under ``torchrun --standalone --nproc_per_node=N`` (gloo on CPU, NCCL on GPU;
on CPU each process gets its share of the cores, so a speedup needs the cores
to be otherwise idle, or a machine per process).

    DLFLOW_DATA_MIRROR=../shared/data python benchmarks/ddp_benchmark.py [--epochs 4] [--max-train-samples N]

Prints the CPU model and whether bf16 is native, a table, and writes
``benchmarks/results/ddp_benchmark.json`` (``--output`` elsewhere).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from harness import REPO, describe_machine, print_machine, timed

RESULTS = REPO / "benchmarks" / "results" / "ddp_benchmark.json"


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", default="1,2", help="comma-separated process counts to compare")
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
        for processes in map(int, args.processes.split(",")):
            print(f"training with {processes} process(es) ...", flush=True)
            report = Path(folder) / f"{processes}.json"
            script = [str(Path(__file__).resolve()), "--worker", f"--report={report}", *options]
            launcher = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"] if processes > 1 else []
            timing = timed([sys.executable, *launcher, *script], REPO, dict(os.environ), Path(folder) / f"{processes}.log")
            found = json.loads(report.read_text())
            setup = found.pop("setup")
            results[str(processes)] = {"wall_seconds": timing["wall_seconds"], **found,  # wall: includes start-up
                                       "load_before": timing["load_before"], "load_after": timing["load_after"]}  # fmt: skip
            print(f"  {json.dumps(results[str(processes)])}", flush=True)

    print(f"\n{'processes':<11}{'wall s':>9}{'train s':>9}{'samples/s':>11}{'test acc':>10}")
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
                print(f"{name} (torchrun) vs 1 process: {derived[f'speedup_{name}_vs_1']:.2f}x wall, "
                      f"{derived[f'train_speedup_{name}_vs_1']:.2f}x training, "
                      f"{derived[f'accuracy_{name}_minus_1'] * 100:+.2f} points of test accuracy")  # fmt: skip
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(
        {"machine": machine, "launcher": "torchrun --standalone", "setup": setup, "results": results, "derived": derived},
        indent=2,
    ) + "\n")  # fmt: skip
    print(f"\nwritten {args.output}")


if __name__ == "__main__":
    main()
