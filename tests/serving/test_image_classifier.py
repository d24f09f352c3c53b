"""The servable CNN (conftest.py) logged to a real SQLite MLflow store and loaded back: pixel arrays and base64 image files.

The JSON bodies go through MLflow's own request parsing (``infer_and_parse_data``,
what ``mlflow models serve`` does before ``predict``); tests/test_serving.py sends
them to a real server.
"""

from __future__ import annotations

import base64
import io
import json

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException
from mlflow.pyfunc.scoring_server import infer_and_parse_data
from PIL import Image

from dlflow.serving.packaging import png_base64
from dlflow.sources.image_table import table_images
from tests.training.test_cnn import SHAPES


def encoded(image: np.ndarray, format: str = "PNG") -> str:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=format)
    return base64.b64encode(buffer.getvalue()).decode()


@pytest.fixture(scope="module")
def served(logged):
    """The logged model (conftest.py) loaded back as a pyfunc, with MLflow pointed at its store."""
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(logged.tracking_uri)
    try:
        yield mlflow.pyfunc.load_model(logged.info.model_uri), table_images(logged.test), logged.info
    finally:
        mlflow.set_tracking_uri(previous)


def test_a_base64_png_and_its_pixel_array_get_the_same_answer(served):
    model, images, info = served
    pixels = model.predict(images.astype(np.float32))
    assert list(pixels.columns) == ["prediction", "label_name", "probability", *(f"p_{name}" for name in SHAPES)]
    files = model.predict(pd.DataFrame({"image": [encoded(image) for image in images]}))
    pd.testing.assert_frame_equal(files, pixels)
    flat = model.predict(images.reshape(len(images), -1))  # one flattened HWC image per row
    pd.testing.assert_frame_equal(flat, pixels)
    assert (pixels["label_name"] == [SHAPES[i] for i in pixels["prediction"]]).all()

    # the signature lets both forms through to predict; the metadata says what the model takes
    assert info.signature.inputs is None and "label_name" in info.signature.outputs.input_names()
    about = mlflow.models.get_model_info(info.model_uri).metadata
    assert about["image_shape"] == [32, 32, 3] and about["resize"] == "pad" and about["class_names"] == list(SHAPES)
    assert "32x32 RGB images, 3 classes" in about["summary"]
    assert "base64" in about["input"] and "raw pixel values 0-255" in about["input"]


def test_json_bodies_as_the_scoring_server_parses_them(served):
    model, images, _ = served
    expected = model.predict(images[:3])
    strings = [encoded(image) for image in images[:3]]
    for body in (
        {"dataframe_split": {"columns": ["image"], "data": [[s] for s in strings]}},
        {"dataframe_records": [{"image": s} for s in strings]},
        {"inputs": {"image": strings}},
        {"inputs": strings},
        {"instances": strings},
        {"inputs": images[:3].tolist()},
    ):
        parsed = infer_and_parse_data(json.loads(json.dumps(body)), schema=None)
        answers = model.predict(parsed)
        assert answers["prediction"].tolist() == expected["prediction"].tolist(), body.keys()
        assert answers["probability"].to_numpy() == pytest.approx(expected["probability"].to_numpy(), abs=1e-6)


def test_files_of_other_sizes_formats_and_modes_are_decoded_to_the_models_input(served):
    model, images, _ = served
    big = np.asarray(Image.fromarray(images[0]).resize((64, 48)))
    grey = np.asarray(Image.fromarray(images[1]).convert("L"))
    answers = model.predict(
        pd.DataFrame(
            {
                "image": [
                    encoded(big),  # another size: padded to 32x32 (the model's resize policy)
                    encoded(grey),  # grey: to RGB
                    encoded(images[2], "JPEG"),
                    "data:image/png;base64," + png_base64(images[3]),  # a data URL
                    encoded(images[4], "WEBP"),
                ]
            }
        )
    )
    assert len(answers) == 5 and answers["probability"].between(1 / 3, 1).all()
    assert answers[[f"p_{name}" for name in SHAPES]].sum(axis=1).to_numpy() == pytest.approx(np.ones(5), abs=1e-5)


def test_bad_files_are_refused_naming_each_row_and_the_reason(served):
    model, images, _ = served
    png = base64.b64decode(encoded(images[0]))
    column = [
        encoded(images[0]),
        base64.b64encode(png[: len(png) // 2]).decode(),  # truncated
        "this is not base64!",
        base64.b64encode(b"just some text, not an image").decode(),
        None,
    ]
    with pytest.raises(MlflowException) as refused:
        model.predict(pd.DataFrame({"image": column}))
    message = refused.value.message
    assert "row 0" not in message
    assert "row 1: corrupt or truncated PNG data" in message
    assert "row 2: not base64" in message
    assert "row 3: not an image" in message
    assert "row 4: got nothing" in message
    assert refused.value.error_code == "INVALID_PARAMETER_VALUE"  # HTTP 400 from mlflow models serve


def test_bad_pixel_arrays_are_refused_naming_the_row(served):
    model, images, _ = served
    bad = images[:3].astype(np.float64)
    bad[2, 5, 6, 1] = 300
    with pytest.raises(MlflowException, match=r"row 2: pixel value 300 at pixel row 5, column 6, channel 1"):
        model.predict(bad)
    with pytest.raises(MlflowException, match=r"shape \(2, 32, 32\).*\(N, 32, 32, 3\) or \(N, 3072\)"):
        model.predict(np.zeros((2, 32, 32)))  # grey pixels for a colour model
    with pytest.raises(MlflowException, match="not numeric"):
        model.predict(np.array([[["a"] * 32] * 32]))
    with pytest.raises(MlflowException, match="not `image`"):
        model.predict({"picture": ["x"]})
