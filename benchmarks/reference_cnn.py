"""The reference recipe as a plain, self-contained PyTorch script (no dlflow, no Kedro, no MLflow).

The Keras MNIST tutorial CNN (Conv32-3x3, MaxPool, Conv64-3x3, MaxPool,
Conv64-3x3, Dense64, Dense10; 93,322 parameters) trained on all 60,000
Fashion-MNIST training images with Adam (lr 1e-3), batch 64, 5 epochs, no
augmentation; then test accuracy on the 10,000 test images. Pixels are scaled
to 0-1, as in the tutorial.

    DLFLOW_DATA_MIRROR=../shared/data python benchmarks/reference_cnn.py

The last line printed is a JSON object (``test_accuracy``, ``train_seconds``)
that ``cnn_benchmark.py`` reads.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (gzip-compressed) as a uint8 array: (N,) labels or (N, 28, 28) images."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load(folder: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    images = read_idx(folder / f"{split}-images-idx3-ubyte.gz")
    labels = read_idx(folder / f"{split}-labels-idx1-ubyte.gz")
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
    return x, torch.from_numpy(labels.astype(np.int64))


def classic_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 64, 3), nn.ReLU(),
        nn.Flatten(), nn.Linear(576, 64), nn.ReLU(), nn.Linear(64, 10),
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mirror = Path(os.environ.get("DLFLOW_DATA_MIRROR", "../shared/data"))
    parser.add_argument("--data", type=Path, default=mirror / "fashion-mnist")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    x_train, y_train = load(args.data, "train")
    x_test, y_test = load(args.data, "t10k")
    model = classic_cnn()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    loss_fn = nn.CrossEntropyLoss()

    started = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        model.train()
        order = torch.randperm(len(x_train))
        loss_sum = 0.0
        for start in range(0, len(order), args.batch_size):
            index = order[start : start + args.batch_size]
            loss = loss_fn(model(x_train[index]), y_train[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * len(index)
        print(
            f"epoch {epoch}/{args.epochs}  train loss {loss_sum / len(order):.4f}  {time.perf_counter() - started:.1f} s",
            flush=True,
        )
    train_seconds = time.perf_counter() - started

    model.eval()
    with torch.inference_mode():
        predictions = torch.cat([model(x_test[i : i + 1000]).argmax(1) for i in range(0, len(x_test), 1000)])
    accuracy = (predictions == y_test).float().mean().item()
    print(f"test accuracy {accuracy:.4f}  training {train_seconds:.1f} s")
    print(json.dumps({"test_accuracy": accuracy, "train_seconds": train_seconds}))


if __name__ == "__main__":
    main()
