"""Registered word embeddings that answer ``vector`` and ``most_similar`` queries for given words."""

from __future__ import annotations

import mlflow.pyfunc
import numpy as np
import pandas as pd

QUERIES = ("most_similar", "vector")


class WordVectorsModel(mlflow.pyfunc.PythonModel):
    """Word vectors as a servable model.

    Input: a DataFrame with a ``word`` column. Params: ``query`` —
    ``"most_similar"`` (default; ``topn`` neighbours by cosine similarity, one
    row per neighbour: ``word``, ``rank``, ``neighbour``, ``similarity``) or
    ``"vector"`` (one row per word: ``word``, ``vector``). Unknown words give
    no neighbours and an empty vector, and are flagged in ``in_vocabulary``.
    """

    def __init__(self, words: list[str], vectors: np.ndarray):
        self.words = list(words)
        self.index = {word: i for i, word in enumerate(self.words)}
        self.vectors = np.asarray(vectors, dtype=np.float32)
        norms = np.linalg.norm(self.vectors, axis=1, keepdims=True)
        self.unit = self.vectors / np.maximum(norms, 1e-12)

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
