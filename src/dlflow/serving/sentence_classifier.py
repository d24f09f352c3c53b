"""A registered sentence classifier that takes raw sentences and returns the class name and every class's probability."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
import torch
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

from dlflow.text.sequences import encode_sentences
from dlflow.text.vocabulary import Vocabulary

if TYPE_CHECKING:
    from dlflow.models.rnn import SentenceRNN


class SentenceClassifierModel(mlflow.pyfunc.PythonModel):
    """Tokeniser, vocabulary and network in one servable model.

    Logged as "models from code" (``sentence_classifier_entry.py``): the version
    holds the network's weights, its shape, the vocabulary and the class names as
    files, and loading it rebuilds the network from them (nothing is pickled).

    Input: a DataFrame with a ``sentence`` column (or a list of strings). A row that is
    not a string, or is empty, is refused with an ``MlflowException`` that
    ``mlflow models serve`` answers with HTTP 400.
    Output: a DataFrame with ``label`` (class name), ``probability`` (of that
    label) and ``p_<class>`` for every class, in class order: any number of classes,
    named as the training data named them.
    """

    ENTRY_POINT = Path(__file__).with_name("sentence_classifier_entry.py")

    def __init__(
        self,
        network: SentenceRNN | None = None,
        vocabulary: Vocabulary | None = None,
        class_names: list[str] = (),
        max_length: int = 64,
    ) -> None:
        """In the pipeline: the trained network and what it reads; loaded from the registry: no
        arguments, then ``load_context``."""
        self.network = network.cpu().eval() if network is not None else None
        self.vocabulary = vocabulary
        self.class_names = list(class_names)
        self.max_length = max_length

    def write_artifacts(self, directory: Path) -> dict[str, str]:
        """Write the weights, the network's shape, the vocabulary and the class names to ``directory``."""
        torch.save(self.network.state_dict(), directory / "weights.pt")
        config = {"network": self.network.architecture(), "class_names": self.class_names, "max_length": self.max_length}
        (directory / "config.json").write_text(json.dumps(config, indent=2))
        (directory / "vocabulary.json").write_text(json.dumps(self.vocabulary.to_dict()))
        return {name: str(directory / f"{name}.{suffix}") for name, suffix in
                (("weights", "pt"), ("config", "json"), ("vocabulary", "json"))}  # fmt: skip

    def load_context(self, context) -> None:
        from dlflow.models.rnn import SentenceRNN

        config = json.loads(Path(context.artifacts["config"]).read_text())
        network = SentenceRNN(**config["network"])
        network.load_state_dict(torch.load(context.artifacts["weights"], map_location="cpu", weights_only=True))
        self.network = network.eval()
        self.vocabulary = Vocabulary.from_dict(json.loads(Path(context.artifacts["vocabulary"]).read_text()))
        self.class_names, self.max_length = list(config["class_names"]), int(config["max_length"])

    def describe(self) -> dict[str, Any]:
        """What this model is, takes and answers: the registered model's metadata and description."""
        names, more = self.class_names[:10], len(self.class_names) - 10
        shown = ", ".join(names) + (f", ... ({more} more)" if more > 0 else "")
        return {
            "summary": f"Sentence classifier (recurrent network over word vectors), {len(self.class_names)} classes: {shown}",
            "input": "a table with a column `sentence`: one non-empty sentence (or short text) per row, as a string "
            f"(raw text; tokenised by the model, at most {self.max_length} tokens used); anything else is refused (HTTP 400)",
            "output": "a table: `label` (class name), `probability` (of that label), `p_<class name>` per class",
            "class_names": list(self.class_names),
        }

    def sentences(self, model_input) -> list[str]:
        """``model_input`` as a list of sentences, or an ``MlflowException`` (HTTP 400) naming the first bad row."""
        if isinstance(model_input, pd.DataFrame):
            if "sentence" not in model_input.columns:
                raise _bad_input(f"the input needs a 'sentence' column, got columns {list(model_input.columns)}")
            values = model_input["sentence"].tolist()
        else:
            values = list(model_input)
        for row, value in enumerate(values):
            if not isinstance(value, str):
                raise _bad_input(f"row {row}: the sentence is {value!r} ({type(value).__name__}); expected a non-empty string")
            if not value.strip():
                raise _bad_input(f"row {row}: the sentence is empty; expected a non-empty string")
        return values

    def probabilities(self, sentences: list[str]) -> np.ndarray:
        ids, lengths = encode_sentences(sentences, self.vocabulary, self.max_length)
        with torch.inference_mode():
            logits = self.network(torch.from_numpy(ids), torch.from_numpy(lengths))
        return torch.softmax(logits, dim=1).numpy()

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:  # a DataFrame: no schema inferred
        """The answers table; with ``params={"monitoring": True}`` also the input signals (``input_length``,
        ``input_oov_rate``) and penultimate features (``feature_<i>``) of every sentence."""
        sentences = self.sentences(model_input)
        monitoring = bool((params or {}).get("monitoring", False))
        if monitoring:
            from dlflow.models.features import logits_and_features
            from dlflow.monitoring.observations import monitoring_columns
            from dlflow.monitoring.signals import TEXT_SIGNALS, sentence_signals
            from dlflow.text.vocabulary import UNK_ID

            ids, lengths = encode_sentences(sentences, self.vocabulary, self.max_length)
            with torch.inference_mode():
                logits, features = logits_and_features(self.network, torch.from_numpy(ids), torch.from_numpy(lengths))
            probabilities = torch.softmax(logits, dim=1).numpy()
            extra = monitoring_columns(TEXT_SIGNALS, sentence_signals(ids, lengths, UNK_ID), features.numpy())
        else:
            probabilities, extra = self.probabilities(sentences), None
        best = probabilities.argmax(axis=1)
        output = pd.DataFrame(
            {"label": [self.class_names[i] for i in best], "probability": probabilities.max(axis=1).astype(np.float64)}
        )
        for index, name in enumerate(self.class_names):
            output[f"p_{name}"] = probabilities[:, index].astype(np.float64)
        return output if extra is None else pd.concat([output, extra], axis=1)


def _bad_input(message: str) -> MlflowException:
    return MlflowException(f"Invalid input: {message}.", error_code=INVALID_PARAMETER_VALUE)
