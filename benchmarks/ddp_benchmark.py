"""Side-by-side benchmark: the shared training loop with 1 process vs 2 DistributedDataParallel processes.

Trains the default CNN recipe (``conf/base/parameters_cnn.yml``: FastCNN,
AdamW + OneCycle, batch 256, horizontal flips) on the Fashion-MNIST training
images (90 % train / 10 % validation, as the pipeline splits them) once per
process count, in this one invocation, and evaluates each model on the test
images with the recipe's test-time flip. With 2 processes ``fit`` spawns the
workers itself (gloo on CPU, NCCL on GPU; on CPU each process gets half of
the cores, so a speedup needs the cores to be otherwise idle).

    DLFLOW_DATA_MIRROR=../shared/data python benchmarks/ddp_benchmark.py [--epochs 4] [--max-train-samples N]

Prints a table and writes ``benchmarks/results/ddp_benchmark.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from dlflow.ingest.idx import read_idx
from dlflow.models import build_cnn, hflip, random_hflip
from dlflow.training import TensorDataset, TrainConfig, fit, predict, seed_everything

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "ddp_benchmark.json"


def load(mirror: Path, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    folder = mirror / "fashion-mnist"
    return read_idx(folder / f"{prefix}-images-idx3-ubyte.gz"), read_idx(folder / f"{prefix}-labels-idx1-ubyte.gz")


def tensors(images: np.ndarray, labels: np.ndarray, mean: float, std: float) -> TensorDataset:
    x = (torch.from_numpy(images).float().div_(255.0).unsqueeze(1) - mean) / std
    return TensorDataset((x,), torch.from_numpy(labels.astype(np.int64)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", default="1,2", help="comma-separated process counts to compare")
    parser.add_argument("--epochs", type=int, default=None, help="default: the recipe's")
    parser.add_argument("--max-train-samples", type=int, default=None, help="default: all 60,000")
    parser.add_argument("--max-test-samples", type=int, default=None, help="default: all 10,000")
    args = parser.parse_args()
    mirror = Path(os.environ.get("DLFLOW_DATA_MIRROR", REPO.parent / "shared" / "data")).resolve()

    params = yaml.safe_load((REPO / "conf" / "base" / "parameters_cnn.yml").read_text())["cnn"]
    recipe = {k: v for k, v in params["training"].items() if k not in ("checkpoint_dir", "processes")}
    recipe.update(progress=False, epochs=args.epochs or recipe["epochs"])

    images, labels = load(mirror, "train")
    test_images, test_labels = load(mirror, "t10k")
    order = np.random.default_rng(params["data"]["split_seed"]).permutation(len(labels))[: args.max_train_samples]
    n_val = int(len(order) * params["data"]["validation_fraction"])
    train_idx, val_idx = order[n_val:], order[:n_val]
    scaled = images[train_idx].astype(np.float64) / 255.0
    mean, std = float(scaled.mean()), float(scaled.std())
    train = tensors(images[train_idx], labels[train_idx], mean, std)
    val = tensors(images[val_idx], labels[val_idx], mean, std)
    test = tensors(test_images[: args.max_test_samples], test_labels[: args.max_test_samples], mean, std)

    results: dict[str, dict] = {}
    for processes in map(int, args.processes.split(",")):
        print(f"training with {processes} process(es) ...", flush=True)
        seed_everything(recipe["seed"], recipe["deterministic"])
        model = build_cnn(params["model"]["architecture"], num_classes=10, **params["model"]["options"])
        started = time.perf_counter()
        result = fit(model, train, val, TrainConfig(**recipe, processes=processes), train_transform=random_hflip)
        wall = time.perf_counter() - started
        probabilities = predict(model, test.features, device="cpu", transform_tta=hflip)
        results[str(processes)] = {
            "wall_seconds": wall,  # includes starting the workers
            "train_seconds": result.train_seconds,  # the epochs (training and validation)
            "samples_per_second": len(train) * len(result.history) / result.train_seconds,
            "test_accuracy": float((probabilities.argmax(dim=1) == test.targets).float().mean()),
            "final_val_accuracy": result.history[-1].val_accuracy,
        }
        print(f"  {json.dumps(results[str(processes)])}", flush=True)

    print(f"\n{'processes':<11}{'wall s':>9}{'train s':>9}{'samples/s':>11}{'test acc':>10}")
    for name, r in results.items():
        print(f"{name:<11}{r['wall_seconds']:>9.1f}{r['train_seconds']:>9.1f}{r['samples_per_second']:>11.0f}{r['test_accuracy']:>10.2%}")
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
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "machine": {"cpus": os.cpu_count(), "cuda": torch.cuda.is_available(), "platform": platform.platform(), "python": platform.python_version()},
        "setup": {"train": len(train), "val": len(val), "test": len(test), "recipe": recipe},
        "results": results,
        "derived": derived,
    }, indent=2) + "\n")  # fmt: skip
    print(f"\nwritten {RESULTS.relative_to(REPO)}")


if __name__ == "__main__":
    main()
