"""A registered image classifier that takes raw pixels and answers with named classes.

It is logged as "models from code" (``image_classifier_entry.py``), not as a
pickled object: the version holds the network's weights (``weights.pt``) and a
JSON description of it (architecture, options, normalisation, class names), and
loading it imports torch and ``dlflow.models`` and reads those two files.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
import torch
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE


class ImageClassifierModel(mlflow.pyfunc.PythonModel):
    """Network, input normalisation, test-time flip and class names in one servable model.

    Input: raw pixel values 0-255 (any real dtype), one image per row, shaped
    ``(N, height, width)`` or ``(N, height * width)``. Anything else (NaN,
    infinities, values outside 0-255, another size) is refused with an
    ``MlflowException`` that ``mlflow models serve`` answers with HTTP 400.

    Output: a table with ``prediction`` (class index), ``label_name``,
    ``probability`` (of that class) and ``p_<class name>`` for every class. With
    ``flip_test_time`` the probabilities are averaged over each image and its
    mirror image, exactly as the pipeline evaluated the model.

    Loading it imports torch and ``dlflow.models``, and nothing else of the
    project: the network is pickled with this object.
    """

    ENTRY_POINT = Path(__file__).with_name("image_classifier_entry.py")

    def __init__(
        self,
        network: torch.nn.Module | None = None,
        *,
        architecture: str = "",
        options: dict[str, Any] | None = None,
        mean: float = 0.0,
        std: float = 1.0,
        class_names: Sequence[str] = (),
        flip_test_time: bool = False,
        image_shape: tuple[int, int] = (28, 28),
        batch_size: int = 1024,
    ) -> None:
        """In the pipeline: the trained ``network`` and how to rebuild it (``architecture`` and
        ``options`` of ``dlflow.models.build_cnn``). Loaded from the registry: no arguments, then
        ``load_context``."""
        self.network = network.cpu().eval() if network is not None else None
        self.config = {
            "architecture": architecture,
            "options": dict(options or {}),
            "mean": float(mean),
            "std": float(std),
            "class_names": [str(name) for name in class_names],
            "flip_test_time": bool(flip_test_time),
            "image_shape": list(image_shape),
            "batch_size": int(batch_size),
        }

    def write_artifacts(self, directory: Path) -> dict[str, str]:
        """Write the weights and the description to ``directory``; the artifacts to log with the model."""
        torch.save(self.network.state_dict(), directory / "weights.pt")
        (directory / "config.json").write_text(json.dumps(self.config, indent=2))
        return {"weights": str(directory / "weights.pt"), "config": str(directory / "config.json")}

    def load_context(self, context) -> None:
        from dlflow.models import build_cnn

        self.config = json.loads(Path(context.artifacts["config"]).read_text())
        network = build_cnn(self.config["architecture"], num_classes=len(self.class_names), **self.config["options"])
        network.load_state_dict(torch.load(context.artifacts["weights"], map_location="cpu", weights_only=True))
        self.network = network.eval()

    def describe(self) -> dict[str, Any]:
        """What this model is, takes and answers: the registered model's metadata and description."""
        height, width = self.image_shape
        return {
            "summary": f"Image classifier ({self.config['architecture']} CNN) for {height}x{width} greyscale images, "
            f"{len(self.class_names)} classes",
            "input": f"raw pixel values 0-255 (finite; any integer or float dtype), one image per row, "
            f"shaped (N, {height}, {width}) or (N, {height * width}); anything else is refused (HTTP 400)",
            "output": "a table: `prediction` (class index), `label_name`, `probability` (of that class), `p_<class name>` per class",
            "class_names": list(self.class_names),
        }

    @property
    def class_names(self) -> list[str]:
        return self.config["class_names"]

    @property
    def image_shape(self) -> tuple[int, int]:
        return tuple(self.config["image_shape"])

    def pixels(self, model_input) -> np.ndarray:
        """``model_input`` as a float32 ``(N, 1, height, width)`` array, or an ``MlflowException`` saying why not."""
        height, width = self.image_shape
        expected = f"raw pixel values 0-255 shaped (N, {height}, {width}) or (N, {height * width})"
        try:
            pixels = np.asarray(
                model_input.to_numpy() if isinstance(model_input, pd.DataFrame) else model_input, dtype=np.float64
            )
        except (TypeError, ValueError):
            raise _bad_input(f"the input is not numeric; expected {expected}") from None
        if pixels.ndim == 2 and pixels.shape[1] == height * width:
            pixels = pixels.reshape(-1, height, width)
        if pixels.ndim != 3 or pixels.shape[1:] != (height, width):
            raise _bad_input(f"the input has shape {pixels.shape}; expected {expected}")
        bad = ~np.isfinite(pixels) | (pixels < 0) | (pixels > 255)
        if bad.any():
            image, row, column = (int(i) for i in np.argwhere(bad)[0])
            raise _bad_input(
                f"image {image} has pixel value {pixels[image, row, column]:g} at row {row}, column {column}; "
                f"expected {expected}, finite"
            )
        return ((pixels / 255.0 - self.config["mean"]) / self.config["std"]).astype(np.float32)[:, None]

    def probabilities(self, model_input) -> np.ndarray:
        images = torch.from_numpy(self.pixels(model_input))
        batches = []
        with torch.inference_mode():
            for batch in images.split(self.config["batch_size"]):
                probabilities = torch.softmax(self.network(batch), dim=1)
                if self.config["flip_test_time"]:
                    probabilities = (probabilities + torch.softmax(self.network(batch.flip(-1)), dim=1)) / 2
                batches.append(probabilities)
        return torch.cat(batches).numpy() if batches else np.empty((0, len(self.class_names)), np.float32)

    def predict(self, context, model_input: np.ndarray, params=None) -> pd.DataFrame:  # the signature is logged with the model
        probabilities = self.probabilities(model_input)
        best = probabilities.argmax(axis=1)
        output = pd.DataFrame(
            {
                "prediction": best.astype(np.int64),
                "label_name": [self.class_names[i] for i in best],
                "probability": probabilities.max(axis=1).astype(np.float64),
            }
        )
        for index, name in enumerate(self.class_names):
            output[f"p_{name}"] = probabilities[:, index].astype(np.float64)
        return output


def _bad_input(message: str) -> MlflowException:
    return MlflowException(f"Invalid input: {message}.", error_code=INVALID_PARAMETER_VALUE)
