"""Training the CNN from parquet shards against the same images in memory: speed, accuracy, peak memory.

    DLFLOW_DATA_MIRROR=../shared/data python3 benchmarks/streaming_benchmark.py [--epochs 4] [--scale 4]

Side by side in one invocation, each variant a process of its own (its peak resident set,
``VmHWM``, is the whole process's):

* **speed and accuracy**: the project's CNN recipe (``dlflow.training.cnn.fit_cnn``, the
  default ``conf/base/parameters_cnn.yml`` model and training) on the mirror's Fashion-MNIST,
  54,000 training / 6,000 validation images, ``cnn.streaming.mode`` ``memory`` against
  ``shards`` (8 MiB shards as the catalog writes them, a 32,768-row shuffle buffer); samples/s
  of the training epochs and test accuracy (10,000 images);
* **memory at two sizes**: one epoch from shards at 1x (54,000) and ``--scale`` x the images
  (the training images repeated, each copy in its own shards: the same images, so say so),
  and the same two sizes loaded in memory.

Prints the CPU model and whether bf16 was native; writes ``benchmarks/results/streaming_benchmark.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from harness import REPO, describe_machine, print_machine, write_results

RESULTS = REPO / "benchmarks" / "results" / "streaming_benchmark.json"

TRAIN = """
import json, sys, time
from pathlib import Path

import numpy as np
import yaml
from dlflow.config import AugmentationParams, CnnModelParams, StreamingParams, TrainingParams
from dlflow.io import ParquetShardsDataset
from dlflow.training.cnn import fit_cnn, predict_cnn

shards, val_path, test_path, mode, epochs, out = sys.argv[1:7]
started = time.perf_counter()
params = yaml.safe_load((Path(sys.argv[7]) / "conf/base/parameters_cnn.yml").read_text())["cnn"]
train = ParquetShardsDataset(filepath=shards, lazy=True).load()
val = ParquetShardsDataset(filepath=val_path).load()
test = ParquetShardsDataset(filepath=test_path).load()
normalisation = {"mean": 0.2860, "std": 0.3530}
training = TrainingParams.model_validate(params["training"] | {"epochs": int(epochs), "progress": False, "resume": False})
result = fit_cnn(
    train, val, normalisation, [str(i) for i in range(10)], CnnModelParams.model_validate(params["model"]), training,
    AugmentationParams.model_validate(params["augmentation"]).resolved("fashion_mnist"),
    callbacks=[], checkpoint_dir=None, streaming=StreamingParams(mode=mode),
)
predictions = predict_cnn(result.model, test, normalisation, training.eval_batch_size, None)
hwm = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmHWM:"))
Path(out).write_text(json.dumps({
    "mode": mode,
    "train_images": len(train),
    "samples_per_second": float(np.mean([r.samples_per_second for r in result.history])),
    "epoch_seconds": [round(r.epoch_seconds, 2) for r in result.history],
    "test_accuracy": float((predictions["prediction"] == predictions["label"]).mean()),
    "peak_rss_mb": int(hwm.split()[1]) / 1024,
    "wall_seconds": time.perf_counter() - started,
}))
"""


def prepare(workdir: Path, mirror: Path, scale: int) -> dict[str, Path]:
    """The Fashion-MNIST split as the pipeline makes it, written as shards (train at 1x and ``scale`` x, val,
    test), and the training script each variant runs."""
    sys.path.insert(0, str(REPO / "src"))
    import pandas as pd

    from dlflow.io import ParquetShardsDataset
    from dlflow.sources.idx import read_idx
    from dlflow.sources.image_table import image_table
    from dlflow.sources.splits import stratified_indices

    def table(kind: str):
        images = read_idx(mirror / "fashion-mnist" / f"{kind}-images-idx3-ubyte.gz")
        labels = read_idx(mirror / "fashion-mnist" / f"{kind}-labels-idx1-ubyte.gz")
        return image_table(images, labels.astype("uint16"))

    train_all, test = table("train"), table("t10k")
    val_rows, train_rows = stratified_indices(train_all["label"].to_numpy(), 6000, 42)
    train, val = train_all.iloc[train_rows].reset_index(drop=True), train_all.iloc[val_rows].reset_index(drop=True)
    paths = {name: workdir / name for name in ("train_1x", f"train_{scale}x", "val", "test")}
    ParquetShardsDataset(filepath=str(paths["train_1x"]), part_bytes=8 << 20).save(train)
    ParquetShardsDataset(filepath=str(paths[f"train_{scale}x"]), part_bytes=8 << 20).save(
        pd.concat([train] * scale, ignore_index=True)
    )
    ParquetShardsDataset(filepath=str(paths["val"])).save(val)
    ParquetShardsDataset(filepath=str(paths["test"])).save(test)
    (workdir / "train.py").write_text(textwrap.dedent(TRAIN))
    return paths


def run(paths: dict[str, Path], train: str, mode: str, epochs: int, workdir: Path) -> dict:
    script = workdir / "train.py"  # written by prepare()
    out = workdir / f"{train}_{mode}_{epochs}.json"
    env = os.environ | {"KEDRO_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1"}
    command = [
        sys.executable,
        str(script),
        str(paths[train]),
        str(paths["val"]),
        str(paths["test"]),
        mode,
        str(epochs),
        str(out),
        str(REPO),
    ]
    started = time.time()
    completed = subprocess.run(command, capture_output=True, text=True, env=env)
    if completed.returncode != 0:
        raise RuntimeError(f"{train} {mode} failed:\n{completed.stderr[-3000:]}")
    found = json.loads(out.read_text()) | {"train": train, "load_average": os.getloadavg()[0], "ended": started}
    print(
        f"  {train:>9} {mode:>7} {epochs} epoch(s): {found['samples_per_second']:7.0f} samples/s  "
        f"test acc {found['test_accuracy']:.4f}  peak {found['peak_rss_mb']:6.0f} MB  ({found['wall_seconds']:.0f} s)",
        flush=True,
    )
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--epochs", type=int, default=4, help="epochs of the speed and accuracy comparison (the default recipe's 4)"
    )
    parser.add_argument("--scale", type=int, default=4, help="the larger data size, in multiples of the training images")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    mirror = Path(os.environ.get("DLFLOW_DATA_MIRROR", REPO.parent / "shared" / "data"))
    machine = describe_machine()
    print_machine(machine)
    with tempfile.TemporaryDirectory(prefix="dlflow-streaming-") as temporary:
        workdir = args.workdir or Path(temporary)
        workdir.mkdir(parents=True, exist_ok=True)
        paths = prepare(workdir, mirror, args.scale)
        big = f"train_{args.scale}x"
        print(f"speed and accuracy, {args.epochs} epochs (memory, shards, memory again):", flush=True)
        speed = [run(paths, "train_1x", mode, args.epochs, workdir) for mode in ("memory", "shards", "memory")]
        print(f"peak memory, 1 epoch at 1x and {args.scale}x:", flush=True)
        memory = [run(paths, train, mode, 1, workdir) for train in ("train_1x", big) for mode in ("shards", "memory")]
    in_memory = [r for r in speed if r["mode"] == "memory"]
    streamed = next(r for r in speed if r["mode"] == "shards")
    memory_speed = sum(r["samples_per_second"] for r in in_memory) / len(in_memory)
    memory_accuracy = sum(r["test_accuracy"] for r in in_memory) / len(in_memory)
    peak = {(r["train"], r["mode"]): r["peak_rss_mb"] for r in memory}
    summary = {
        "shards_vs_memory_samples_per_second": round(streamed["samples_per_second"] / memory_speed, 3),
        "accuracy_points_shards_minus_memory": round(100 * (streamed["test_accuracy"] - memory_accuracy), 2),
        f"shards_peak_ratio_{args.scale}x_vs_1x": round(peak[(big, "shards")] / peak[("train_1x", "shards")], 3),
        f"memory_peak_ratio_{args.scale}x_vs_1x": round(peak[(big, "memory")] / peak[("train_1x", "memory")], 3),
    }
    print("summary:", json.dumps(summary, indent=2))
    results = {"machine": machine, "epochs": args.epochs, "scale": args.scale, "speed": speed, "memory": memory}
    write_results(RESULTS, results | {"summary": summary})


if __name__ == "__main__":
    main()
