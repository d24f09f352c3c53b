"""The CNN recipe (``dlflow.training.cnn``) on images that are not 28x28 grey: real 8x8 digits and colour PNG/JPEG files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image, ImageDraw

from dlflow.config import AugmentationParams, CnnModelParams, TrainingParams
from dlflow.pipelines.cnn.nodes import compute_normalisation
from dlflow.sources.image_files import decode_image
from dlflow.sources.image_table import image_table, table_images
from dlflow.training.cnn import fit_cnn, image_tensors, predict_cnn

COLOURS = {"red": (220, 40, 40), "green": (40, 180, 60), "blue": (50, 70, 220)}
SHAPES = ("circle", "square", "triangle")
FAST = dict(device="cpu", progress=False, num_threads=1, validate_every=100)


def accuracy(predictions: pd.DataFrame) -> float:
    return float((predictions["prediction"].to_numpy() == predictions["label"].to_numpy()).mean())


def draw_shape(path: Path, shape: str, rng: np.random.Generator, size: int = 32) -> None:
    """A ``shape`` in a random colour at a random place on a noisy background, saved by Pillow (the suffix picks the format)."""
    background = rng.integers(0, 90, (size, size, 3), dtype=np.uint8)
    image = Image.fromarray(background)
    draw = ImageDraw.Draw(image)
    colour = tuple(int(c) for c in rng.integers(120, 256, 3))
    side = int(rng.integers(size // 3, size // 2 + 2))
    x, y = (int(v) for v in rng.integers(1, size - side - 1, 2))
    if shape == "circle":
        draw.ellipse((x, y, x + side, y + side), fill=colour)
    elif shape == "square":
        draw.rectangle((x, y, x + side, y + side), fill=colour)
    else:
        draw.polygon([(x, y + side), (x + side, y + side), (x + side // 2, y)], fill=colour)
    image.save(path)


def colour_table(folder: Path, per_class: int, seed: int, size: int = 32) -> pd.DataFrame:
    """Real PNG and JPEG files of three shapes written to ``folder``, decoded as ingestion decodes them."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for label, shape in enumerate(SHAPES):
        for i in range(per_class):
            path = folder / f"{shape}_{i}.{'png' if i % 2 else 'jpg'}"
            draw_shape(path, shape, rng, size)
            images.append(decode_image(path, (size, size), 3))
            labels.append(label)
    return image_table(np.stack(images), np.array(labels))


def digits_tables() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """scikit-learn's bundled 8x8 handwritten digits (0-16 scaled to 0-255): train / validation / test."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.round(digits.images * (255 / 16)).astype(np.uint8)
    order = np.random.default_rng(0).permutation(len(images))
    table = image_table(images[order], digits.target[order])
    return table.iloc[:1200].reset_index(drop=True), table.iloc[1200:1400].reset_index(drop=True), table.iloc[1400:]


def test_a_cnn_learns_real_8x8_digits_through_the_recipe():
    train, val, test = digits_tables()
    normalisation = compute_normalisation(train)
    assert set(normalisation) == {"mean", "std"} and isinstance(normalisation["mean"], float)  # grey: scalars, as always
    training = TrainingParams(epochs=4, batch_size=64, lr=0.01, schedule="onecycle", **FAST)
    augmentation = AugmentationParams().resolved("folder")  # digits: no flips
    result = fit_cnn(
        train, val, normalisation, [str(d) for d in range(10)], CnnModelParams(architecture="fast"), training, augmentation,
        callbacks=[], checkpoint_dir=None,
    )  # fmt: skip
    model = result.model
    assert model.features[0].in_channels == 1
    score = accuracy(predict_cnn(model, test, normalisation, 256, flip_test_time=False))
    assert score > 0.9, score


@pytest.mark.parametrize("architecture", ["fast", "classic"])
def test_a_cnn_learns_colour_png_and_jpeg_files_of_another_size(tmp_path: Path, architecture: str):
    train = colour_table(tmp_path, per_class=80, seed=1)
    test = colour_table(tmp_path, per_class=20, seed=2)
    normalisation = compute_normalisation(train)
    assert len(normalisation["mean"]) == len(normalisation["std"]) == 3
    pixels = table_images(train).reshape(-1, 3) / 255.0
    assert normalisation["mean"] == pytest.approx(pixels.mean(axis=0).tolist(), abs=1e-9)
    assert normalisation["std"] == pytest.approx(pixels.std(axis=0).tolist(), abs=1e-9)

    options = {"channels": [16, 32, 64]} if architecture == "fast" else {}
    training = TrainingParams(epochs=8, batch_size=32, lr=0.005 if architecture == "fast" else 0.002, optimizer="adamw", **FAST)
    result = fit_cnn(
        train, test, normalisation, list(SHAPES), CnnModelParams(architecture=architecture, options=options), training,
        AugmentationParams(horizontal_flip=True).resolved("folder"), callbacks=[], checkpoint_dir=None,
    )  # fmt: skip
    predictions = predict_cnn(result.model, test, normalisation, 64, flip_test_time=False)
    assert list(predictions.columns) == ["label", "prediction", "probabilities"]
    assert predictions["probabilities"].iloc[0].shape == (3,)
    score = accuracy(predictions)
    assert score > 0.8, (architecture, score)


def test_image_tensors_are_channels_first_and_normalised_per_channel():
    rng = np.random.default_rng(0)
    colour = rng.integers(0, 256, (5, 6, 7, 3), dtype=np.uint8)
    table = image_table(colour, np.arange(5) % 2)
    normalisation = {"mean": [0.1, 0.5, 0.9], "std": [0.5, 0.25, 2.0]}
    images = image_tensors(table, normalisation).features[0]
    assert images.shape == (5, 3, 6, 7)
    expected = (colour / 255.0 - np.array([0.1, 0.5, 0.9])) / np.array([0.5, 0.25, 2.0])
    assert images.permute(0, 2, 3, 1).numpy() == pytest.approx(expected, abs=1e-6)
    assert images.is_contiguous(memory_format=torch.channels_last)  # the layout the loop trains in

    grey = rng.integers(0, 256, (4, 9, 9), dtype=np.uint8)
    tensors = image_tensors(image_table(grey, np.zeros(4)), {"mean": 0.3, "std": 0.4})
    old_way = torch.from_numpy(grey.copy()).float().div_(255.0).unsqueeze(1).sub_(0.3).div_(0.4)
    assert tensors.features[0].stride() == old_way.stride() and torch.equal(tensors.features[0], old_way)
    with pytest.raises(ValueError, match="2 values for 3-channel"):
        image_tensors(table, {"mean": [0.1, 0.2], "std": [1.0, 1.0]})


def test_grey_normalisation_is_the_histogram_formula_it_always_was():
    rng = np.random.default_rng(3)
    grey = rng.integers(0, 256, (50, 28, 28), dtype=np.uint8)
    normalisation = compute_normalisation(image_table(grey, np.zeros(50)))
    values = grey.reshape(-1) / 255.0
    assert normalisation == {"mean": pytest.approx(values.mean(), abs=1e-12), "std": pytest.approx(values.std(), abs=1e-12)}


@pytest.mark.parametrize(
    ("source", "given", "expected"),
    [
        ("fashion_mnist", {}, (True, True)),
        ("mnist", {}, (False, False)),  # a flip turns one digit into another
        ("folder", {}, (False, False)),
        ("folder", {"horizontal_flip": True}, (True, False)),
        ("fashion_mnist", {"flip_test_time": False}, (True, False)),
    ],
)
def test_flips_default_to_on_for_fashion_mnist_only_and_explicit_values_win(source, given, expected):
    resolved = AugmentationParams(**given).resolved(source)
    assert (resolved.horizontal_flip, resolved.flip_test_time) == expected


def test_the_tables_must_share_one_shape():
    grey, colour = np.zeros((4, 8, 8), np.uint8), np.zeros((4, 8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="differ in shape.*8x8x1.*8x8x3"):
        fit_cnn(
            image_table(grey, np.arange(4) % 2), image_table(colour, np.arange(4) % 2), {"mean": 0.5, "std": 0.5}, ["a", "b"],
            CnnModelParams(architecture="fast"), TrainingParams(epochs=1, batch_size=2, lr=0.1, **FAST), AugmentationParams(),
            callbacks=[], checkpoint_dir=None,
        )  # fmt: skip


def test_options_may_not_set_what_the_data_decides():
    with pytest.raises(ValueError, match="in_channels come from the image table"):
        CnnModelParams(architecture="fast", options={"in_channels": 3})
