"""A folder of your own colour images through the whole stack: ingestion (a corrupt file skipped),
training (``--env test``), evaluation, registration as ``dlflow-cnn-<folder>-test``,
``mlflow models serve`` answering a base64 PNG with the folder's class names, and batch inference
on a folder of new files."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageDraw

from tests.conftest import run_pipeline
from tests.test_serving import _serve, invoke

CLASSES = {"circles": "ellipse", "squares": "rectangle", "triangles": "polygon"}


def _shape_image(kind: str, size: int, rng: np.random.Generator) -> Image.Image:
    """A coloured shape on a coloured background, drawn by Pillow: the class is the shape, not the colour."""
    image = Image.new("RGB", (size, size), tuple(int(v) for v in rng.integers(0, 120, 3)))
    draw = ImageDraw.Draw(image)
    colour = tuple(int(v) for v in rng.integers(130, 256, 3))
    low, high = int(size * rng.uniform(0.1, 0.25)), int(size * rng.uniform(0.75, 0.9))
    if kind == "polygon":
        draw.polygon([(low, high), (high, high), ((low + high) // 2, low)], fill=colour)
    else:
        getattr(draw, kind)([low, low, high, high], fill=colour)
    return image


def _write_folder(root: Path, per_class: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for name, kind in CLASSES.items():
        (root / name).mkdir(parents=True)
        for index in range(per_class):
            image = _shape_image(kind, int(rng.choice([24, 32, 40])), rng)  # mixed sizes
            if index % 2:
                image.save(root / name / f"{index}.png")
            else:
                image.save(root / name / f"{index}.jpg", quality=95)


@pytest.mark.e2e
def test_a_folder_of_colour_images_goes_from_kedro_run_to_a_served_model_and_batch_inference(
    kedro_project: Path, tmp_path: Path
) -> None:
    import mlflow

    photos = tmp_path / "Shop Shapes"
    _write_folder(photos, per_class=40, seed=0)
    (photos / "circles" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")  # a corrupt file, skipped
    params = {"image_source": "folder", "images_dir": str(photos), "images.on_bad_file": "skip", "images.image_size": 32}
    run_pipeline("cnn", **params)

    client = mlflow.MlflowClient()
    version = client.get_model_version_by_alias("dlflow-cnn-shop-shapes-test", "champion")
    run = client.get_run(version.run_id)
    assert run.data.metrics["data_skipped_files"] == 1
    assert run.data.metrics["test_accuracy"] > 0  # evaluated on the held-out images

    new = tmp_path / "incoming"
    _write_folder(new, per_class=3, seed=1)
    run_pipeline("inference_cnn", **params, images_path=str(new))
    predictions = pd.read_parquet("data/07_model_output/inference/cnn_predictions.parquet")
    assert len(predictions) == 9 and set(predictions["path"].str.split("/").str[0]) == set(CLASSES)
    assert {f"p_{name}" for name in CLASSES} <= set(predictions.columns)
    assert set(predictions["label_name"]) <= set(CLASSES)

    first = sorted(new.rglob("*.png"))[0]
    png = io.BytesIO()
    Image.open(first).save(png, format="PNG")
    for url in _serve("dlflow-cnn-shop-shapes-test", tmp_path, tmp_path / "serve.log", recommended=False):  # one request
        (answer,) = invoke(
            url, {"dataframe_split": {"columns": ["image"], "data": [[base64.b64encode(png.getvalue()).decode()]]}}
        )
        expected = predictions[predictions["path"] == first.relative_to(new).as_posix()].iloc[0]
        assert answer["label_name"] == expected["label_name"] in CLASSES
        assert answer["probability"] == pytest.approx(expected["probability"], abs=1e-5)
