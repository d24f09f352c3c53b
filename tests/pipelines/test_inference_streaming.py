"""Batch inference's stages overlapping: reading and checking on one thread, scoring on another, writing on a
third (``dlflow.pipelines.inference.nodes._scored`` into ``dlflow.io.ChunkedParquetDataset``), a chunk apart.

The model is a real MLflow pyfunc model (saved and loaded from a local folder) that classifies small grey images
by their mean, says which thread scored each row and when, and refuses any image whose first pixel is 13.
"""

from __future__ import annotations

import gzip
import json
import os
import struct
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

from dlflow.io import ChunkedParquetDataset, ImagesFileDataset
from dlflow.io.inference_inputs import ChunkedInput, InputChunk, InputRefused
from dlflow.model_registry.champion import LoadedModel
from dlflow.pipelines.inference.nodes import score_images
from dlflow.sources.idx import write_idx
from tests.conftest import REPO_ROOT

PARAMS = {"model_name": "mean", "alias": "champion", "chunk_size": 3, "batch_size": 2}
UNMONITORED = {"enabled": False}
MARK = 13  # an image whose first pixel is this is refused by the model


class MeanShade(mlflow.pyfunc.PythonModel):
    """``dark``/``light`` by an image's mean; ``scored_by``/``scored_at``: the thread and time of the call
    (after ``delay`` seconds: scoring takes a while, as a network's does)."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay

    def predict(self, context, model_input, params=None):
        pixels = np.asarray(model_input, dtype=np.float64)
        marked = np.flatnonzero(pixels.reshape(len(pixels), -1)[:, 0] == MARK)
        if marked.size:
            raise MlflowException(f"Invalid input: row {marked[0]} is marked", INVALID_PARAMETER_VALUE)
        time.sleep(self.delay)
        light = pixels.reshape(len(pixels), -1).mean(axis=1) / 255.0
        best = (light >= 0.5).astype(np.int64)
        return pd.DataFrame(
            {
                "prediction": best,
                "label_name": np.array(["dark", "light"])[best],
                "p_light": light,
                "scored_by": threading.current_thread().name,
                "scored_at": time.monotonic(),
            }
        )


def champion(folder: Path, delay: float = 0.0) -> LoadedModel:
    """``MeanShade`` saved as an MLflow model in ``folder``, loaded back as the pipeline's champion."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no type hints, no signature: the test model needs neither
        mlflow.pyfunc.save_model(str(folder), python_model=MeanShade(delay), pip_requirements=[])  # none to infer
    info = {"model_name": "mean", "model_version": 1, "model_run_id": "run", "model_uri": "models:/mean@champion"}
    return LoadedModel(info, "cnn", None, mlflow.pyfunc.load_model(str(folder)))


def shades(count: int) -> np.ndarray:
    """``count`` 4x4 images, image ``i`` all of shade ``7 * i % 250`` (never the mark)."""
    values = np.array([7 * i % 250 for i in range(count)], np.uint8)
    values[values == MARK] += 1
    return np.repeat(values, 16).reshape(count, 4, 4)


def recorded(source: ChunkedInput, log: list[tuple]) -> ChunkedInput:
    """``source`` whose chunks note in ``log`` the thread and time each was read, and when the reading was closed."""

    def chunks(size: int) -> Iterator[InputChunk]:
        try:
            for chunk in source.chunks(size):
                log.append(("read", threading.current_thread().name, time.monotonic(), int(chunk.ids["row"].iloc[0])))
                yield chunk
        finally:
            log.append(("closed", threading.current_thread().name, time.monotonic(), None))

    return ChunkedInput(source.source, source.what, source.total, chunks)


def score(source: ChunkedInput, model: LoadedModel, output: Path) -> pd.DataFrame:
    chunks, observations = score_images(source, model, PARAMS, UNMONITORED)
    dataset = ChunkedParquetDataset(filepath=str(output))
    dataset.save(chunks)
    assert observations.finished and observations.records == len(dataset.load())
    return dataset.load()


def background_threads() -> list[str]:
    return [thread.name for thread in threading.enumerate() if thread.name.startswith("dlflow-")]


def test_reading_scoring_and_writing_overlap_in_order_a_bounded_distance_apart(tmp_path: Path) -> None:
    images = shades(23)  # chunks of 3: 8 chunks, the last of 2
    log: list[tuple] = []
    source = recorded(ImagesFileDataset(filepath=str(write_idx(images, tmp_path / "s.idx", gzip=True))).load(), log)
    table = score(source, champion(tmp_path / "model", delay=0.05), tmp_path / "out" / "predictions.parquet")

    assert table["row"].tolist() == list(range(23))  # order kept across three threads
    assert table["p_light"].to_numpy() == pytest.approx(images.reshape(23, -1).mean(axis=1) / 255)
    reads = [entry for entry in log if entry[0] == "read"]
    assert {name for _, name, _, _ in reads} == {"dlflow-read"} and log[-1][:2] == ("closed", "dlflow-read")
    assert set(table["scored_by"]) == {"dlflow-produce"}  # scoring: the output dataset's producer thread
    assert background_threads() == []

    read_at = [at for _, _, at, _ in reads]
    scored = table.groupby(table["row"] // 3)["scored_at"]
    started, ended = scored.min().tolist(), scored.max().tolist()
    # overlap: a chunk was read while the one before it was being scored
    assert any(read_at[k + 1] < ended[k] for k in range(7))
    # bounded: chunk k + 3 is read only once chunk k is scored (k + 1 waiting, k + 2 read and held)
    assert all(read_at[k + 3] > ended[k] for k in range(5))
    assert started == sorted(started)


def test_a_refusal_in_any_stage_mid_way_stops_every_thread_and_leaves_no_output(tmp_path: Path) -> None:
    output = tmp_path / "out" / "predictions.parquet"
    model = champion(tmp_path / "model")
    images = shades(40)
    images[10, 0, 0] = MARK  # chunk 3 (rows 9-11), its first batch of 2: rows 9-10
    log: list[tuple] = []
    source = recorded(ImagesFileDataset(filepath=str(write_idx(images, tmp_path / "marked.idx"))).load(), log)
    with pytest.raises(InputRefused, match=r"marked\.idx images 9-10: mean version 1 refused them .*row 1 is marked"):
        score(source, model, output)  # scoring: chunks 0-2 were scored and handed to the writer before
    assert background_threads() == [] and not output.exists() and list(output.parent.iterdir()) == []
    assert log[-1][:2] == ("closed", "dlflow-read")  # the reading was stopped and closed where it ran
    assert max(row for kind, _, _, row in log if kind == "read") <= 9 + 2 * 3  # at most two chunks read past it

    noise = np.random.default_rng(1).integers(0, 256, (40, 4, 4), dtype=np.uint8)
    noise[:, 0, 0] = 0  # none marked
    path = write_idx(noise, tmp_path / "truncated.idx", gzip=True)
    path.write_bytes(path.read_bytes()[:-60])  # the gzip stream ends inside the last images: found mid-way
    with pytest.raises(InputRefused, match=r"truncated\.idx is (a corrupt or )?truncated"):
        score(ImagesFileDataset(filepath=str(path)).load(), model, output)  # reading
    assert background_threads() == [] and list(output.parent.iterdir()) == []


PEAK = """
import json, sys
from pathlib import Path

import mlflow.pyfunc
from dlflow.io import ChunkedParquetDataset, ImagesFileDataset
from dlflow.model_registry.champion import LoadedModel
from dlflow.pipelines.inference.nodes import score_images

model, *inputs = sys.argv[1:]
info = {"model_name": "mean", "model_version": 1, "model_run_id": "run", "model_uri": "models:/mean@champion"}
champion = LoadedModel(info, "cnn", None, mlflow.pyfunc.load_model(model))
params = {"model_name": "mean", "alias": "champion", "chunk_size": 2000, "batch_size": 1000}
found = []
for images in inputs:  # smaller first: the peak after each
    chunks, observations = score_images(ImagesFileDataset(filepath=images).load(), champion, params, {"enabled": False})
    ChunkedParquetDataset(filepath=images + ".parquet").save(chunks)
    status = Path("/proc/self/status").read_text().splitlines()
    peak = int(next(line for line in status if line.startswith("VmHWM:")).split()[1]) / 1024
    found.append({"records": observations.records, "peak_mb": peak})
print(json.dumps(found))
"""


def write_gzip_idx(path: Path, pattern: np.ndarray, copies: int) -> Path:
    """``pattern`` (uint8 images) repeated ``copies`` times as a gzipped IDX file, written without holding it whole."""
    with gzip.open(path, "wb", compresslevel=1) as out:
        out.write(struct.pack(">4B3I", 0, 0, 0x08, 3, len(pattern) * copies, *pattern.shape[1:]))  # uint8, 3 dims
        for _ in range(copies):
            out.write(pattern.tobytes())
    return path


@pytest.mark.e2e  # batch inference in processes of their own, measured for their peak
def test_memory_does_not_grow_with_the_input(tmp_path: Path) -> None:
    """In a fresh process, its peak (``VmHWM``, this process alone) after scoring 10,000 images (28x28, gzip IDX)
    and again after 100,000: under 25 MB more, where holding the larger input alone would add 75 MB."""
    champion(tmp_path / "model")
    script = tmp_path / "peak.py"
    script.write_text(textwrap.dedent(PEAK))
    pattern = np.random.default_rng(0).integers(0, 256, (100, 28, 28), dtype=np.uint8)
    inputs = [write_gzip_idx(tmp_path / f"{count}.idx.gz", pattern, count // 100) for count in (10_000, 100_000)]
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "model"), *map(str, inputs)],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=300, env=os.environ | {"PYTHONPATH": str(REPO_ROOT)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    small, large = json.loads(done.stdout.strip().splitlines()[-1])
    assert (small["records"], large["records"]) == (10_000, 100_000)
    assert large["peak_mb"] - small["peak_mb"] < 25, (small, large)
