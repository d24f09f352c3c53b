"""Registered word embeddings that answer ``vector`` and ``most_similar`` queries for given words."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd

QUERIES = ("most_similar", "vector")


class WordVectorsModel(mlflow.pyfunc.PythonModel):
    """Word vectors as a servable model, logged as "models from code" (``word_vectors_entry.py``):
    the version holds the words and the vectors as files, nothing pickled.

    Input: a DataFrame with a ``word`` column. Params: ``query`` —
    ``"most_similar"`` (default; ``topn`` neighbours by cosine similarity, one
    row per neighbour: ``word``, ``rank``, ``neighbour``, ``similarity``) or
    ``"vector"`` (one row per word: ``word``, ``vector``). Unknown words give
    no neighbours and an empty vector, and are flagged in ``in_vocabulary``.
    """

    ENTRY_POINT = Path(__file__).with_name("word_vectors_entry.py")

    def __init__(self, words: list[str] = (), vectors: np.ndarray | None = None) -> None:
        """In the pipeline: the words and their vectors; loaded from the registry: no arguments, then ``load_context``."""
        self._set(list(words), np.zeros((0, 1), np.float32) if vectors is None else vectors)

    def _set(self, words: list[str], vectors: np.ndarray) -> None:
        self.words = words
        self.index = {word: i for i, word in enumerate(self.words)}
        self.vectors = np.asarray(vectors, dtype=np.float32)
        norms = np.linalg.norm(self.vectors, axis=1, keepdims=True)
        self.unit = self.vectors / np.maximum(norms, 1e-12)

    def write_artifacts(self, directory: Path) -> dict[str, str]:
        """Write the words (JSON) and the vectors (``.npy``) to ``directory``."""
        (directory / "words.json").write_text(json.dumps(self.words))
        np.save(directory / "vectors.npy", self.vectors)
        return {"words": str(directory / "words.json"), "vectors": str(directory / "vectors.npy")}

    def load_context(self, context) -> None:
        words = json.loads(Path(context.artifacts["words"]).read_text())
        self._set(words, np.load(context.artifacts["vectors"]))

    def most_similar(self, word: str, topn: int) -> list[tuple[str, float]]:
        if word not in self.index:
            return []
        similarities = self.unit @ self.unit[self.index[word]]
        similarities[self.index[word]] = -np.inf
        best = np.argpartition(-similarities, min(topn, len(self.words) - 1))[:topn]
        best = best[np.argsort(-similarities[best])]
        return [(self.words[i], float(similarities[i])) for i in best]

    def describe(self) -> dict:
        """What this model is, takes and answers: the registered model's metadata and description."""
        return {
            "summary": f"Word2Vec word vectors: {len(self.words)} words, {self.vectors.shape[1]} dimensions",
            "input": "a table with a column `word`; params `query=most_similar` (default, with `topn`) or `query=vector`",
            "output": "most_similar: `word`, `in_vocabulary`, `rank`, `neighbour`, `similarity` (a row per neighbour); "
            "vector: `word`, `in_vocabulary`, `vector`",
            "class_names": None,
        }

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:  # a DataFrame: no schema inferred
        params = params or {}
        query, topn = params.get("query", "most_similar"), int(params.get("topn", 10))
        if query not in QUERIES:
            raise ValueError(f"params.query must be one of {QUERIES}, got {query!r}")
        words = (model_input["word"] if isinstance(model_input, pd.DataFrame) else pd.Series(model_input)).astype(str)
        if query == "vector":
            return pd.DataFrame(
                {
                    "word": words.tolist(),
                    "in_vocabulary": [w in self.index for w in words],
                    "vector": [self.vectors[self.index[w]].tolist() if w in self.index else [] for w in words],
                }
            )
        rows = [
            {"word": w, "in_vocabulary": True, "rank": rank, "neighbour": n, "similarity": s}
            for w in words
            for rank, (n, s) in enumerate(self.most_similar(w, topn), start=1)
        ]
        rows += [
            {"word": w, "in_vocabulary": False, "rank": 0, "neighbour": "", "similarity": 0.0}
            for w in words
            if w not in self.index
        ]
        return pd.DataFrame(rows, columns=["word", "in_vocabulary", "rank", "neighbour", "similarity"])
