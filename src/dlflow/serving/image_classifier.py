"""A registered image classifier that takes pixel arrays or encoded image files and answers with named classes.

It is logged as "models from code" (``image_classifier_entry.py``), not as a
pickled object: the version holds the network's weights (``weights.pt``) and a
JSON description of it (architecture, options, input shape, resize policy,
normalisation, class names), and loading it imports torch and ``dlflow.models``
and reads those two files.

Two input forms, each checked here in ``predict`` (the model is logged without
an input schema, because MLflow's schema enforcement refuses strings before
``predict`` runs when the signature is a float tensor):

* **Pixel arrays**, values 0-255 (any real dtype), channels last: ``(N, H, W)``
  for grey models, ``(N, H, W, C)``, or one flattened image per row
  ``(N, H*W*C)``. Served as ``{"inputs": [...]}`` (or ``instances``, or a
  ``dataframe_split`` of pixel columns).
* **Encoded image files** (PNG, JPEG, BMP, WebP, TIFF; any size and mode), as
  base64 strings (a ``data:`` URL prefix is allowed) in an ``image`` column, or
  raw bytes when called in process. Served as
  ``{"dataframe_split": {"columns": ["image"], "data": [["iVBORw0..."]]}}``,
  ``{"dataframe_records": [{"image": "iVBORw0..."}]}``,
  ``{"inputs": {"image": ["iVBORw0...", ...]}}`` or ``{"inputs": ["iVBORw0...", ...]}``;
  in process, a DataFrame with an ``image`` column. Each file is decoded by
  ``dlflow.sources.image_files.decode_image`` to the model's size, channels and
  resize policy, as ingestion decodes image folders.

Anything else (NaN, values outside 0-255, another shape, a string that is not
base64, a file that is not a whole image) is refused with an ``MlflowException``
(HTTP 400 from ``mlflow models serve``) that names the row and the reason.

Made for serving (``dlflow.serving.server``; docs/inference.md): loading puts the
network in channels-last memory format (what oneDNN's convolutions prefer; the
network was trained that way) and runs one warm-up forward pass, so the first
request does not pay for the kernels' set-up; an image and its mirror image go
through the network as one batch; inside MLflow's scoring server the answer is
the list of records the server would have made of the table, built without the
table (the same JSON, a fraction of the time).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
import torch
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

from dlflow.sources.image_files import IMAGE_EXTENSIONS, RESIZE_POLICIES, ImageDecodeError, decode_image

IMAGE_COLUMN = "image"  # the column (or key) of encoded image files


class ImageClassifierModel(mlflow.pyfunc.PythonModel):
    """Network, input normalisation, test-time flip, input shape and class names in one servable model.

    Input: pixel arrays or encoded image files (the module's docstring). Output:
    a table with ``prediction`` (class index), ``label_name``, ``probability``
    (of that class) and ``p_<class name>`` for every class. With
    ``flip_test_time`` the probabilities are averaged over each image and its
    mirror image, exactly as the pipeline evaluated the model.
    """

    ENTRY_POINT = Path(__file__).with_name("image_classifier_entry.py")

    def __init__(
        self,
        network: torch.nn.Module | None = None,
        *,
        architecture: str = "",
        options: dict[str, Any] | None = None,
        mean: float | Sequence[float] = 0.0,
        std: float | Sequence[float] = 1.0,
        class_names: Sequence[str] = (),
        flip_test_time: bool = False,
        image_shape: Sequence[int] = (28, 28, 1),
        resize: str = "stretch",
        batch_size: int = 1024,
    ) -> None:
        """In the pipeline: the trained ``network`` and how to rebuild it (``architecture`` and
        ``options`` of ``dlflow.models.build_cnn``), its input ``image_shape`` ``(height, width,
        channels)``, and the ``resize`` policy for encoded images of another size. Loaded from
        the registry: no arguments, then ``load_context``."""
        if resize not in RESIZE_POLICIES:
            raise ValueError(f"resize must be one of {RESIZE_POLICIES}, got {resize!r}")
        self.network = _for_inference(network.cpu()) if network is not None else None
        self.config = _complete(
            {
                "architecture": architecture,
                "options": dict(options or {}),
                "mean": _number_or_list(mean),
                "std": _number_or_list(std),
                "class_names": [str(name) for name in class_names],
                "flip_test_time": bool(flip_test_time),
                "image_shape": [int(side) for side in image_shape],
                "resize": resize,
                "batch_size": int(batch_size),
            }
        )

    def write_artifacts(self, directory: Path) -> dict[str, str]:
        """Write the weights and the description to ``directory``; the artifacts to log with the model."""
        torch.save(self.network.state_dict(), directory / "weights.pt")
        (directory / "config.json").write_text(json.dumps(self.config, indent=2))
        return {"weights": str(directory / "weights.pt"), "config": str(directory / "config.json")}

    def load_context(self, context) -> None:
        from dlflow.models import build_cnn

        self.config = _complete(json.loads(Path(context.artifacts["config"]).read_text()))
        height, width, channels = self.image_shape
        options = {k: v for k, v in self.config["options"].items() if k not in ("in_channels", "image_size")}
        network = build_cnn(
            self.config["architecture"],
            num_classes=len(self.class_names),
            in_channels=channels,
            image_size=(height, width),
            **options,
        )
        network.load_state_dict(torch.load(context.artifacts["weights"], map_location="cpu", weights_only=True))
        self.network = _for_inference(network)
        self.warm_up()

    def warm_up(self) -> None:
        """One forward pass of a blank image (and its mirror image): the convolution kernels are chosen and
        set up now, at load time, instead of in the first request."""
        height, width, channels = self.image_shape
        self._answers(np.zeros((1, channels, height, width), np.float32), features=False)

    def describe(self) -> dict[str, Any]:
        """What this model is, takes and answers: the registered model's metadata and description."""
        height, width, channels = self.image_shape
        kind = "greyscale" if channels == 1 else "RGB"
        shapes = f"(N, {height}, {width})" if channels == 1 else f"(N, {height}, {width}, {channels})"
        return {
            "summary": f"Image classifier ({self.config['architecture']} CNN) for {height}x{width} {kind} images, "
            f"{len(self.class_names)} classes",
            "input": f"raw pixel values 0-255 (finite; any integer or float dtype), one image per row, channels last, "
            f'shaped {shapes} or (N, {height * width * channels}), e.g. `{{"inputs": [...]}}`; '
            f"or encoded image files ({', '.join(e[1:] for e in IMAGE_EXTENSIONS)}; any size and mode), "
            f"base64 strings in an `{IMAGE_COLUMN}` column, e.g. "
            f'`{{"dataframe_split": {{"columns": ["{IMAGE_COLUMN}"], "data": [["iVBORw0..."]]}}}}` '
            f'or `{{"inputs": {{"{IMAGE_COLUMN}": ["iVBORw0..."]}}}}`, decoded to {height}x{width} {kind} '
            f"(resize: {self.config['resize']}); anything else is refused (HTTP 400) naming the row",
            "output": "a table: `prediction` (class index), `label_name`, `probability` (of that class), `p_<class name>` per class",
            "class_names": list(self.class_names),
            "image_shape": list(self.image_shape),  # height, width, channels
            "resize": self.config["resize"],
        }

    @property
    def class_names(self) -> list[str]:
        return self.config["class_names"]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(height, width, channels)`` of the network's input."""
        return tuple(self.config["image_shape"])

    def pixels(self, model_input) -> np.ndarray:
        """``model_input`` as float32 ``(N, channels, height, width)`` normalised images, or an
        ``MlflowException`` naming the row and saying why not."""
        return self.normalised(self.images(model_input))

    def images(self, model_input) -> np.ndarray:
        """``model_input`` as float64 ``(N, height, width, channels)`` pixel values 0-255 (encoded files decoded),
        or an ``MlflowException`` naming the row and saying why not."""
        encoded = _encoded_images(model_input)
        return self.decode(encoded) if encoded is not None else self._pixel_array(model_input)

    def normalised(self, images: np.ndarray) -> np.ndarray:
        """``(N, height, width, channels)`` pixel values 0-255 as the network's float32 ``(N, channels, height, width)``."""
        height, width, channels = self.image_shape
        if channels == 1:  # as it always was: scalar statistics, float64, then float32
            mean, std = _statistics(self.config["mean"], 1), _statistics(self.config["std"], 1)
            return ((images[..., 0] / 255.0 - mean) / std).astype(np.float32)[:, None]
        mean, std = _statistics(self.config["mean"], channels), _statistics(self.config["std"], channels)
        return ((images / 255.0 - mean) / std).astype(np.float32).transpose(0, 3, 1, 2)

    def decode(self, encoded: list) -> np.ndarray:
        """Encoded image files (base64 strings or bytes) as a float64 ``(N, height, width, channels)`` array."""
        height, width, channels = self.image_shape
        images = np.empty((len(encoded), height, width, channels), np.float64)
        refused: list[str] = []
        for row, value in enumerate(encoded):
            try:
                raw = _file_bytes(value, row)
                images[row] = decode_image(raw, (height, width), channels, self.config["resize"], name=f"row {row}")
            except (_NotAnImage, ImageDecodeError) as error:
                refused.append(str(error))
        if refused:
            shown = "; ".join(refused[:5]) + (f"; and {len(refused) - 5} more rows" if len(refused) > 5 else "")
            raise _bad_input(f"{shown}; expected base64-encoded image files ({_FORMATS})")
        return images

    def _pixel_array(self, model_input) -> np.ndarray:
        """Pixel values 0-255 as a float64 ``(N, height, width, channels)`` array."""
        height, width, channels = self.image_shape
        grey = f"(N, {height}, {width}), " if channels == 1 else ""
        expected = (
            f"raw pixel values 0-255 shaped {grey}(N, {height}, {width}, {channels}) or (N, {height * width * channels}), "
            f"or base64-encoded image files in an `{IMAGE_COLUMN}` column"
        )
        try:
            pixels = np.asarray(
                model_input.to_numpy() if isinstance(model_input, pd.DataFrame) else model_input, dtype=np.float64
            )
        except (TypeError, ValueError):
            raise _bad_input(f"the input is not numeric; expected {expected}") from None
        if pixels.ndim == 2 and pixels.shape[1] == height * width * channels:
            pixels = pixels.reshape(-1, height, width, channels)
        elif pixels.ndim == 3 and channels == 1 and pixels.shape[1:] == (height, width):
            pixels = pixels[..., None]
        if pixels.ndim != 4 or pixels.shape[1:] != (height, width, channels):
            raise _bad_input(f"the input has shape {pixels.shape}; expected {expected}")
        bad = ~np.isfinite(pixels) | (pixels < 0) | (pixels > 255)
        if bad.any():
            image, row, column, channel = (int(i) for i in np.argwhere(bad)[0])
            where = f"pixel row {row}, column {column}" + (f", channel {channel}" if channels > 1 else "")
            raise _bad_input(
                f"row {image}: pixel value {pixels[image, row, column, channel]:g} at {where}; "
                f"expected raw pixel values 0-255, finite"
            )
        return pixels

    def probabilities(self, model_input) -> np.ndarray:
        return self._answers(self.pixels(model_input), features=False)[0]

    def _answers(self, pixels: np.ndarray, features: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """Class probabilities of normalised ``pixels`` and, with ``features``, the network's penultimate
        features (of the image itself, not its mirror image), float32 ``(N, D)``. With ``flip_test_time``
        each batch and its mirror image run as one batch of twice the size (one pass through the layers)."""
        from dlflow.models.features import logits_and_features

        images = torch.from_numpy(pixels)
        flip = self.config["flip_test_time"]
        batches, kept = [], []
        with torch.inference_mode():
            for batch in images.split(self.config["batch_size"]):
                size = len(batch)
                if flip:
                    batch = torch.cat([batch, batch.flip(-1)])
                batch = batch.contiguous(memory_format=torch.channels_last)
                if features:
                    logits, penultimate = logits_and_features(self.network, batch)
                    kept.append(penultimate[:size])
                else:
                    logits = self.network(batch)
                probabilities = torch.softmax(logits, dim=1)
                if flip:
                    probabilities = (probabilities[:size] + probabilities[size:]) / 2
                batches.append(probabilities)
        if not batches:
            return np.empty((0, len(self.class_names)), np.float32), np.empty((0, 0), np.float32) if features else None
        return torch.cat(batches).numpy(), torch.cat(kept).numpy() if features else None

    def predict(self, context, model_input: np.ndarray, params=None) -> pd.DataFrame | list[dict[str, Any]]:
        """``model_input`` in any form of the module's docstring: the answers table; with
        ``params={"monitoring": True}`` also the input signals (``input_<name>``,
        ``dlflow.monitoring.signals.IMAGE_SIGNALS``) and penultimate features (``feature_<i>``) of every image.

        Inside MLflow's scoring server (``mlflow models serve``, ``mlflow models predict``), without
        monitoring, the table's records instead (``table.to_dict(orient="records")``, what the server
        would turn the table into): the same JSON answer, without building a table per request."""
        images = self.images(model_input)
        monitoring = bool((params or {}).get("monitoring", False))
        probabilities, features = self._answers(self.normalised(images), features=monitoring)
        if not monitoring and _in_scoring_server():
            return self.records(probabilities)
        output = self.table(probabilities)
        if monitoring:
            from dlflow.monitoring.observations import monitoring_columns
            from dlflow.monitoring.signals import IMAGE_SIGNALS, image_signals

            output = pd.concat([output, monitoring_columns(IMAGE_SIGNALS, image_signals(images), features)], axis=1)
        return output

    def answer_columns(self) -> list[str]:
        """The answer's columns, in order: ``prediction``, ``label_name``, ``probability``, ``p_<class name>``..."""
        return ["prediction", "label_name", "probability", *(f"p_{name}" for name in self.class_names)]

    def table(self, probabilities: np.ndarray) -> pd.DataFrame:
        """``(N, classes)`` probabilities as the answers table (one row per image)."""
        best = probabilities.argmax(axis=1)
        values = probabilities.astype(np.float64)
        columns = [best.astype(np.int64), [self.class_names[i] for i in best], values.max(axis=1), *values.T]
        return pd.DataFrame(dict(zip(self.answer_columns(), columns)))

    def records(self, probabilities: np.ndarray) -> list[dict[str, Any]]:
        """``(N, classes)`` probabilities as the answers table's records (``table(...).to_dict(orient="records")``:
        Python ints, strings and floats), without the table."""
        columns, names = self.answer_columns(), self.class_names
        return [
            dict(zip(columns, (best, names[best], row[best], *row)))
            for best, row in zip(probabilities.argmax(axis=1).tolist(), probabilities.astype(np.float64).tolist())
        ]


_FORMATS = ", ".join(e[1:].upper() for e in IMAGE_EXTENSIONS if e not in (".jpeg", ".tif"))


def _for_inference(network: torch.nn.Module) -> torch.nn.Module:
    """``network`` in evaluation mode, its weights in channels-last memory format (in place)."""
    return network.eval().to(memory_format=torch.channels_last)


def _in_scoring_server() -> bool:
    """Whether this process is MLflow's scoring server: its ``init`` (``mlflow models serve``, before the
    first request) and ``mlflow models predict`` set ``_MLFLOW_IS_IN_SERVING_ENVIRONMENT`` to ``true``,
    and MLflow itself reads it to adapt inputs to the server. Unset (any other caller): False."""
    return os.environ.get("_MLFLOW_IS_IN_SERVING_ENVIRONMENT", "").strip().lower() in ("true", "1")


def _complete(config: dict[str, Any]) -> dict[str, Any]:
    """A description from any release: ``image_shape`` as ``[height, width, channels]`` (older models
    recorded ``[height, width]``, grey) and a ``resize`` policy (older models: ``stretch``)."""
    shape = list(config.get("image_shape", [28, 28]))
    return config | {"image_shape": shape + [1] if len(shape) == 2 else shape, "resize": config.get("resize", "stretch")}


def _number_or_list(value: float | Sequence[float]) -> float | list[float]:
    return float(value) if np.isscalar(value) else [float(v) for v in value]


def _statistics(value: float | list[float], channels: int) -> float | np.ndarray:
    """One channel: the scalar (float); colour: one value per channel, broadcast over ``(N, H, W, C)``."""
    values = np.full(channels, float(value)) if np.isscalar(value) else np.asarray(value, dtype=np.float64)
    return float(values[0]) if channels == 1 else values


def _is_encoded(value: Any) -> bool:
    return isinstance(value, (str, bytes, bytearray, memoryview))


def _encoded_images(model_input) -> list | None:
    """The encoded image files in ``model_input`` (one per row), or None when it holds pixel values.

    Encoded: a DataFrame or dict with an ``image`` column/key, or a 1-D list or
    array (or a single-column table) whose values are strings or bytes.
    """
    if isinstance(model_input, dict):
        if IMAGE_COLUMN not in model_input:
            raise _bad_input(
                f"the input names {sorted(map(str, model_input))}, not `{IMAGE_COLUMN}`; send encoded image files as "
                f'{{"inputs": {{"{IMAGE_COLUMN}": [...]}}}} or pixel values as {{"inputs": [...]}}'
            )
        return list(np.asarray(model_input[IMAGE_COLUMN], dtype=object).reshape(-1))
    if isinstance(model_input, pd.Series):
        model_input = model_input.to_frame(model_input.name if model_input.name is not None else IMAGE_COLUMN)
    if isinstance(model_input, pd.DataFrame):
        if IMAGE_COLUMN in model_input.columns:
            return model_input[IMAGE_COLUMN].tolist()
        only = model_input.iloc[:, 0] if model_input.shape[1] == 1 else None
        if only is not None and pd.api.types.is_object_dtype(only) and only.map(_is_encoded).any():
            return model_input.iloc[:, 0].tolist()
        return None
    if isinstance(model_input, (list, tuple)) and model_input and all(_is_encoded(v) for v in model_input):
        return list(model_input)
    if isinstance(model_input, np.ndarray) and model_input.dtype.kind in "OSU":
        if model_input.ndim == 2 and model_input.shape[1] == 1:
            model_input = model_input[:, 0]
        if model_input.ndim == 1 and (model_input.dtype.kind in "SU" or any(_is_encoded(v) for v in model_input)):
            return list(model_input)
    return None


class _NotAnImage(ValueError):
    """An ``image`` value that is not an encoded file (not a string, empty, not base64)."""


def _file_bytes(value: Any, row: int) -> bytes:
    """An encoded image file's bytes: a base64 string (whitespace, URL-safe letters, missing padding and a
    ``data:...;base64,`` prefix are allowed) or bytes; ``_NotAnImage`` naming the row otherwise."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if not isinstance(value, str):
        shown = "nothing" if value is None or (isinstance(value, float) and np.isnan(value)) else f"a {type(value).__name__}"
        raise _NotAnImage(f"row {row}: got {shown}, not a base64 string")
    text = "".join(value.split())
    if text.startswith("data:"):
        text = text.partition(",")[2]
    if not text:
        raise _NotAnImage(f"row {row}: the image is empty")
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, altchars=b"-_" if ("-" in text or "_" in text) else None, validate=True)
    except (binascii.Error, ValueError) as error:
        raise _NotAnImage(f"row {row}: not base64 ({error})") from None


def _bad_input(message: str) -> MlflowException:
    return MlflowException(f"Invalid input: {message}.", error_code=INVALID_PARAMETER_VALUE)
