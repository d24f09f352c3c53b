"""A registered sentence classifier that takes raw sentences and returns label and probability."""

from __future__ import annotations

import mlflow.pyfunc
import numpy as np
import pandas as pd
import torch

from dlflow.text.sequences import encode_sentences
from dlflow.text.vocabulary import Vocabulary


class SentenceClassifierModel(mlflow.pyfunc.PythonModel):
    """Tokeniser, vocabulary and network in one servable model.

    Input: a DataFrame with a ``sentence`` column (or a list of strings).
    Output: a DataFrame with ``label`` (class name), ``probability`` (of that
    label) and ``p_<class>`` for every class.
    """

    def __init__(self, network: torch.nn.Module, vocabulary: Vocabulary, class_names: list[str], max_length: int):
        self.network = network.cpu().eval()
        self.vocabulary = vocabulary
        self.class_names = list(class_names)
        self.max_length = max_length

    def probabilities(self, sentences: list[str]) -> np.ndarray:
        ids, lengths = encode_sentences(sentences, self.vocabulary, self.max_length)
        with torch.inference_mode():
            logits = self.network(torch.from_numpy(ids), torch.from_numpy(lengths))
        return torch.softmax(logits, dim=1).numpy()

    def predict(self, context, model_input, params=None):  # no type hints: MLflow would infer a schema from them
        if isinstance(model_input, pd.DataFrame):
            if "sentence" not in model_input.columns:
                raise ValueError(f"input needs a 'sentence' column, got columns {list(model_input.columns)}")
            sentences = model_input["sentence"].astype(str).tolist()
        else:
            sentences = [str(s) for s in model_input]
        probabilities = self.probabilities(sentences)
        best = probabilities.argmax(axis=1)
        output = pd.DataFrame(
            {"label": [self.class_names[i] for i in best], "probability": probabilities.max(axis=1).astype(np.float64)}
        )
        for index, name in enumerate(self.class_names):
            output[f"p_{name}"] = probabilities[:, index].astype(np.float64)
        return output
