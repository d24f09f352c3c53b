"""``mlflow models serve -m models:/<name>@champion`` answers real HTTP requests like batch inference does.

The models come from ``kedro run --pipeline cnn|rnn --env test`` (the session's
``registered_project``, shared with tests/pipelines/test_inference.py); each
server is a subprocess on a free port of 127.0.0.1 and is always killed. The CNN
is served in the recommended configuration (``python -m dlflow.serving.server``:
two workers, one compute thread each, no access log), the RNN with MLflow's
defaults but one worker.
"""

from __future__ import annotations

import base64
import io
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from dlflow.serving.server import serving_command
from dlflow.sources.idx import read_idx
from tests.pipelines.test_inference import (
    CNN_MODEL,
    CNN_PREDICTIONS,
    RNN_MODEL,
    RNN_PREDICTIONS,
    SENTENCES,
    _build_registered_project,
    registered_project,  # noqa: F401 (a fixture, used by name below)
    run_pipeline,
    write_test_images,
)
from tests.serving.loopback import free_port, invoke, refusal, serving

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

CNN_WORKERS = 2


def _serve(model_name: str, root: Path, log: Path, recommended: bool) -> Iterator[str]:
    """``models:/<model_name>@champion`` against ``root``'s store, with ``dlflow.serving.server``'s configuration
    (``recommended``) or ``mlflow models serve -w 1``; yields its URL."""
    port, uri = free_port(), f"models:/{model_name}@champion"
    env = os.environ | {"MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlruns' / 'mlflow.db'}"}
    if recommended:
        command, env = serving_command(uri, host="127.0.0.1", port=port, workers=CNN_WORKERS, environment=env)
    else:
        command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", uri, "--env-manager", "local",
                   "-h", "127.0.0.1", "-p", str(port), "-w", "1"]  # fmt: skip
    workers = CNN_WORKERS if recommended else 1
    with serving(command, env, log, port, cwd=root / "project", workers=workers) as (url, _server):
        yield url


@pytest.fixture(scope="module")
def registry_root(tmp_path_factory, data_mirror: Path) -> Path:
    return _build_registered_project(tmp_path_factory, data_mirror)


@pytest.fixture(scope="module")
def cnn_server(registry_root: Path) -> Iterator[str]:
    yield from _serve(CNN_MODEL, registry_root, registry_root / "serve-cnn.log", recommended=True)


@pytest.fixture(scope="module")
def rnn_server(registry_root: Path) -> Iterator[str]:
    yield from _serve(RNN_MODEL, registry_root, registry_root / "serve-rnn.log", recommended=False)


def test_served_cnn_agrees_with_batch_inference(registered_project: Path, data_mirror: Path, cnn_server: str) -> None:  # noqa: F811 (the fixture)
    images = write_test_images(registered_project / "serve-images.gz", data_mirror, 16)
    run_pipeline("inference_cnn", images_path=str(registered_project / "serve-images.gz"))
    batch = pd.read_parquet(CNN_PREDICTIONS)

    answers = pd.DataFrame(invoke(cnn_server, {"inputs": images.tolist()}))
    assert len(answers) == 16 and len([c for c in answers.columns if c.startswith("p_")]) == 10
    assert answers["prediction"].tolist() == batch["prediction"].tolist()
    assert answers["label_name"].tolist() == batch["label_name"].tolist()
    assert answers["probability"].to_numpy() == pytest.approx(batch["probability"].to_numpy(), abs=1e-5)


def test_served_rnn_agrees_with_batch_inference(registered_project: Path, rnn_server: str) -> None:  # noqa: F811 (the fixture)
    (registered_project / "serve-reviews.txt").write_text("\n".join(SENTENCES))
    run_pipeline("inference_rnn", sentences_path=str(registered_project / "serve-reviews.txt"))
    batch = pd.read_parquet(RNN_PREDICTIONS)

    answers = pd.DataFrame(invoke(rnn_server, {"dataframe_records": [{"sentence": s} for s in SENTENCES]}))
    assert answers["label"].tolist() == batch["label"].tolist()
    assert answers["probability"].to_numpy() == pytest.approx(batch["probability"].to_numpy(), abs=1e-5)
    assert (answers["p_negative"] + answers["p_positive"]).to_numpy() == pytest.approx(1.0, abs=1e-5)


def test_served_cnn_refuses_garbage_with_400_saying_what_it_expects(cnn_server: str) -> None:
    image = np.full((1, 28, 28), 100.0)
    assert "shape" in refusal(cnn_server, {"inputs": np.zeros((2, 32, 32)).tolist()})
    nan = image.copy()
    nan[0, 3, 4] = np.nan
    message = refusal(cnn_server, json.dumps({"inputs": nan.tolist()}))  # NaN: Python's JSON extension, as clients send it
    assert "nan" in message and "row 3, column 4" in message and "0-255" in message
    for value, shown in ((1e30, "1e+30"), (-500.0, "-500"), (255.5, "255.5"), (np.inf, "inf")):
        bad = image.copy()
        bad[0, 0, 0] = value
        message = refusal(cnn_server, json.dumps({"inputs": bad.tolist()}))
        assert shown in message and "0-255" in message, message
    # strings that are not image files: the model says what it takes
    message = refusal(cnn_server, {"inputs": [[["a"] * 28] * 28]})
    assert "not numeric" in message and "base64-encoded image files" in message
    answers = invoke(cnn_server, {"inputs": image.astype(int).tolist()})  # integers are fine
    assert len(answers) == 1 and answers[0]["label_name"]


def png_base64(image: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(image.astype(np.uint8)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def test_served_cnn_answers_base64_png_files_as_it_answers_their_pixels(data_mirror: Path, cnn_server: str) -> None:
    images = read_idx(data_mirror / "fashion-mnist" / "t10k-images-idx3-ubyte.gz")[:4]
    pixels = pd.DataFrame(invoke(cnn_server, {"inputs": images.tolist()}))
    files = [png_base64(image) for image in images]
    for body in (
        {"dataframe_split": {"columns": ["image"], "data": [[f] for f in files]}},
        {"inputs": {"image": files}},
    ):
        answers = pd.DataFrame(invoke(cnn_server, body))
        assert answers["label_name"].tolist() == pixels["label_name"].tolist(), body.keys()
        assert answers["probability"].to_numpy() == pytest.approx(pixels["probability"].to_numpy(), abs=1e-6)

    # a photo-sized colour JPEG is decoded to the model's 28x28 grey input
    photo = np.asarray(Image.fromarray(images[0]).convert("RGB").resize((96, 96)))
    buffer = io.BytesIO()
    Image.fromarray(photo).save(buffer, format="JPEG")
    (answer,) = invoke(cnn_server, {"dataframe_records": [{"image": base64.b64encode(buffer.getvalue()).decode()}]})
    assert answer["label_name"] and 0.1 <= answer["probability"] <= 1.0

    # a corrupt file is refused with 400, naming its row and what is wrong
    truncated = base64.b64encode(base64.b64decode(files[1])[:60]).decode()
    message = refusal(cnn_server, {"dataframe_split": {"columns": ["image"], "data": [[files[0]], [truncated], ["%%%"]]}})
    assert "row 1: corrupt or truncated PNG data" in message and "row 2: not base64" in message, message
    assert "row 0" not in message


def test_served_rnn_refuses_empty_or_non_string_sentences_with_400(rnn_server: str) -> None:
    for records, needle in (
        ([{"sentence": "a fine film"}, {"sentence": "   "}], "row 1: the sentence is empty"),
        ([{"sentence": ""}], "row 0: the sentence is empty"),
        ([{"sentence": "good"}, {"sentence": None}], "sentence"),
        ([{"sentence": 42}], "sentence"),
        ([{"review": "no sentence column"}], "sentence"),
    ):
        message = refusal(rnn_server, {"dataframe_records": records})
        assert needle in message, (records, message)
