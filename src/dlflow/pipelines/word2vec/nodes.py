"""Word2Vec nodes: train the vectors, measure them, describe them, package them for serving."""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import numpy as np
import pandas as pd

from dlflow.sources.download import file_digest
from dlflow.text import SPECIALS, TokenIds, Vocabulary
from dlflow.tracking.records import mlflow_metrics

logger = logging.getLogger(__name__)


def train_word_vectors(text_corpus: TokenIds, text_vocabulary: dict, params: dict[str, Any]) -> tuple[dict[str, Any], dict]:
    """Train Word2Vec on the corpus' token ids; return the vectors (specials left out) and a training report.

    The corpus is read from disk a window at a time (memory-mapped), its type ids mapped to the
    vocabulary's as they are read: memory does not grow with the corpus. Both outputs are files,
    so the node cache (tag ``embeddings``) can skip it: a resumed or unchanged run reuses the
    vectors instead of training new ones.
    """
    from dlflow.training.callbacks import MlflowProgressLogger
    from dlflow.training.word2vec import Word2VecConfig, train_word2vec

    training = Word2VecConfig.model_validate(params)
    if not isinstance(text_corpus, TokenIds):
        raise TypeError(
            f"text_corpus arrived as {type(text_corpus).__name__}: the catalog must store it with dlflow.io.TokenIdsDataset "
            "(conf/base/catalog.yml), which training reads a window at a time"
        )
    vocabulary = Vocabulary.from_dict(text_vocabulary)
    result = train_word2vec(
        text_corpus,
        None,
        vocabulary.counts,
        training,
        remap=vocabulary.type_map(text_corpus.words),
        on_progress=MlflowProgressLogger(prefix="word2vec_"),
    )
    corpus_tokens = text_corpus.n_tokens
    keep = len(SPECIALS)
    vectors = {"words": list(vocabulary.words[keep:]), "vectors": result.input_vectors[keep:]}
    report = {
        "engine": result.engine,
        "threads": result.threads,
        "bit_reproducible": training.deterministic,
        "train_seconds": result.seconds,
        "words_per_second": result.words_per_second,
        "corpus_tokens": corpus_tokens,
        "compile_seconds": result.compile_seconds,
        "startup_seconds": result.startup_seconds,
        "vocabulary_size": len(vectors["words"]),
    }
    logger.info(
        "Word2Vec (%s, %d thread(s)): %.0fk words/s, %.1f s",
        result.engine, result.threads, result.words_per_second / 1e3, result.seconds,
    )  # fmt: skip
    return vectors, report


def word2vec_training_metrics(training_report: dict) -> dict[str, dict[str, float]]:
    """The training report's numbers as MLflow metrics (``word2vec_words_per_second``, ...)."""
    return mlflow_metrics({f"word2vec_{name}": value for name, value in training_report.items() if name != "engine"})


def evaluate_word_vectors(
    word_vectors: dict[str, Any], analogies: str, wordsim353: str, simlex999: str, analogy_restrict_vocab: int
) -> tuple[dict, dict[str, dict[str, float]], dict[str, float]]:
    """Analogy accuracy (over the ``params:word2vec.analogy_restrict_vocab`` most frequent words) and
    word-similarity correlations, each with its out-of-vocabulary rate."""
    from dlflow.evaluation.word_vectors import analogy_accuracy, similarity_spearman

    words, vectors = word_vectors["words"], np.asarray(word_vectors["vectors"])
    report = {
        "analogy": analogy_accuracy(words, vectors, analogies, restrict_vocab=analogy_restrict_vocab),
        "wordsim353": similarity_spearman(words, vectors, wordsim353),
        "simlex999": similarity_spearman(words, vectors, simlex999),
    }
    scores = {
        "analogy_accuracy": report["analogy"]["accuracy"],
        "analogy_oov_rate": report["analogy"]["oov_rate"],
        "wordsim353_spearman": report["wordsim353"]["spearman"],
        "wordsim353_oov_rate": report["wordsim353"]["oov_rate"],
        "simlex999_spearman": report["simlex999"]["spearman"],
        "simlex999_oov_rate": report["simlex999"]["oov_rate"],
    }
    report = {key: {k: v for k, v in value.items() if k != "sections"} for key, value in report.items()}
    return report, mlflow_metrics(scores), scores


def describe_word_vectors(word_vectors: dict[str, Any], probes: list[str], map_words: int) -> tuple[dict, Any]:
    """Nearest neighbours of the probe words (``params:word2vec.probes``) and a PCA map of the
    ``params:word2vec.map_words`` most frequent words."""
    from dlflow.evaluation.word_vectors import nearest_neighbours, plot_embedding_map

    words, vectors = word_vectors["words"], np.asarray(word_vectors["vectors"])
    neighbours = nearest_neighbours(words, vectors, [p for p in probes if p in set(words)], k=10)
    report = {probe: [{"word": w, "cosine": round(float(c), 4)} for w, c in found] for probe, found in neighbours.items()}
    return report, plot_embedding_map(words, vectors, n=map_words)


def package_word_vectors(word_vectors: dict[str, Any], analogies: str, wordsim353: str, simlex999: str) -> dict[str, Any]:
    """The servable vectors (``vector`` / ``most_similar`` queries), an example and the benchmark digest."""
    from dlflow.serving.word_vectors import WordVectorsModel

    digest = hashlib.sha256("".join(file_digest(p) for p in (analogies, wordsim353, simlex999)).encode()).hexdigest()[:16]
    return {
        "model": WordVectorsModel(word_vectors["words"], np.asarray(word_vectors["vectors"])),
        "input_example": pd.DataFrame({"word": word_vectors["words"][:2]}),
        "predict_params": {"query": "most_similar", "topn": 10},
        "test_data_digest": digest,
    }
