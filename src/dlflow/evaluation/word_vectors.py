"""Intrinsic evaluation of word vectors, framework-free (numpy, scipy, matplotlib).

``analogy_accuracy`` and ``similarity_spearman`` reproduce gensim's
``KeyedVectors.evaluate_word_analogies`` and ``evaluate_word_pairs`` (case-
insensitive, restricted to the most frequent words, questions or pairs with
an unknown word skipped), so numbers are comparable with gensim's; the test
suite checks they are equal on the same vectors. ``words`` must be ordered by
descending frequency, as every word2vec vocabulary is.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from scipy import stats


def _upper_index(words: Sequence[str], limit: int) -> dict[str, int]:
    """UPPER-CASED word -> index among the first ``limit`` words; the most frequent case variant wins."""
    index: dict[str, int] = {}
    for i, word in enumerate(words[:limit]):
        index.setdefault(word.upper(), i)
    return index


def _unit_rows(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1)
    return vectors, norms


def analogy_accuracy(
    words: Sequence[str],
    vectors: np.ndarray,
    questions_path: str | Path,
    restrict_vocab: int = 30000,
) -> dict:
    """Accuracy on "a : b :: c : d" questions (Mikolov et al.'s questions-words.txt format), 3CosAdd.

    For each question the answer is the word among the first ``restrict_vocab``
    whose vector is closest (cosine) to ``b̂ + ĉ - â``, excluding a, b and c.
    Questions with a word outside the first ``restrict_vocab`` words are skipped.

    Returns:
        ``accuracy`` (correct / answered, 0 when none answered), ``correct``,
        ``total`` (answered questions), ``oov_rate`` (skipped / all questions, 0-1)
        and ``sections``: ``{name: {"correct", "total", "accuracy"}}`` in file order.
    """
    vectors, norms = _unit_rows(vectors)
    limit = min(restrict_vocab, len(words))
    index = _upper_index(words, limit)
    candidates = vectors[:limit]
    candidate_norms = norms[:limit]
    upper_words = [w.upper() for w in words[:limit]]

    sections: dict[str, dict] = {}
    questions: list[tuple[str, int, int, int, int]] = []  # section, a, b, c, expected
    n_questions = 0
    oov = 0
    section = None
    with open(questions_path, "rb") as f:
        for line_no, raw in enumerate(f):
            line = raw.decode("utf-8")
            if line.startswith(": "):
                section = line.lstrip(": ").strip()
                sections.setdefault(section, {"correct": 0, "total": 0})
                continue
            if section is None:
                raise ValueError(f"Missing section header before line #{line_no} in {questions_path}")
            parts = [w.upper() for w in line.split()]
            if len(parts) != 4:
                continue
            n_questions += 1
            if any(w not in index for w in parts):
                oov += 1
                continue
            questions.append((section, *(index[w] for w in parts)))

    correct_total = 0
    block = 512
    for start in range(0, len(questions), block):
        chunk = questions[start : start + block]
        a = np.array([q[1] for q in chunk])
        b = np.array([q[2] for q in chunk])
        c = np.array([q[3] for q in chunk])
        # gensim: mean of the unit vectors with weights (+1, +1, -1), in that order, then normalised
        mean = np.zeros((len(chunk), vectors.shape[1]), dtype=np.float32)
        for ids, weight in ((b, 1.0), (c, 1.0), (a, -1.0)):
            mean += np.float32(weight) * (vectors[ids] / norms[ids, None])
        mean /= np.float32(3.0)
        mean /= np.linalg.norm(mean, axis=1, keepdims=True).astype(np.float32)
        scores = (mean @ candidates.T) / candidate_norms[None, :]
        top = (
            np.argpartition(-scores, min(8, limit - 1), axis=1)[:, :8]
            if limit > 8
            else np.tile(np.arange(limit), (len(chunk), 1))
        )
        for row, (name, qa, qb, qc, expected) in enumerate(chunk):
            order = top[row][np.argsort(-scores[row, top[row]], kind="stable")]
            ranked = [i for i in order if i not in (qa, qb, qc)][:5]
            ignore = {upper_words[qa], upper_words[qb], upper_words[qc]}
            predicted = None
            for i in ranked:
                predicted = upper_words[i]
                if predicted in index and predicted not in ignore:
                    break
            ok = predicted == upper_words[expected]
            sections[name]["total"] += 1
            sections[name]["correct"] += int(ok)
            correct_total += int(ok)

    for counts in sections.values():
        counts["accuracy"] = counts["correct"] / counts["total"] if counts["total"] else 0.0
    answered = len(questions)
    return {
        "accuracy": correct_total / answered if answered else 0.0,
        "correct": correct_total,
        "total": answered,
        "oov_rate": oov / n_questions if n_questions else 0.0,
        "sections": sections,
    }


def similarity_spearman(
    words: Sequence[str],
    vectors: np.ndarray,
    pairs_path: str | Path,
    restrict_vocab: int = 300000,
) -> dict:
    """Rank correlation between cosine similarity and human judgements (WordSim-353, SimLex-999, ...).

    The file has ``word1<TAB>word2<TAB>score`` lines; lines starting with ``#``
    and lines without exactly three tab-separated fields are skipped (as gensim
    does), and so are pairs with a word outside the first ``restrict_vocab`` words.

    Returns:
        ``spearman``, ``pearson``, ``pairs`` (pairs scored) and ``oov_rate`` (0-1).
    """
    vectors = np.asarray(vectors, dtype=np.float32)
    index = _upper_index(words, min(restrict_vocab, len(words)))
    gold, model = [], []
    oov = 0
    with open(pairs_path, encoding="utf8") as f:
        for line in f:
            if not line or line.startswith("#"):
                continue
            try:
                a, b, sim = [w.upper() for w in line.split("\t")]
                score = float(sim)
            except (ValueError, TypeError):
                continue
            if a not in index or b not in index:
                oov += 1
                continue
            va, vb = vectors[index[a]], vectors[index[b]]
            va = va / np.float32(np.sqrt(np.dot(va, va)))
            vb = vb / np.float32(np.sqrt(np.dot(vb, vb)))
            gold.append(score)
            model.append(float(np.dot(va, vb)))
    if not gold:
        raise ValueError(f"No pair of {pairs_path} has both words in the vocabulary (or the file is not word/word/score)")
    return {
        "spearman": float(stats.spearmanr(gold, model).statistic),
        "pearson": float(stats.pearsonr(gold, model).statistic),
        "pairs": len(gold),
        "oov_rate": oov / (len(gold) + oov),
    }


def nearest_neighbours(
    words: Sequence[str], vectors: np.ndarray, probes: Sequence[str], k: int = 10
) -> dict[str, list[tuple[str, float]]]:
    """The ``k`` nearest words (cosine) of each probe found in ``words`` (probes not found are left out)."""
    vectors, norms = _unit_rows(vectors)
    unit = vectors / np.maximum(norms, 1e-12)[:, None]
    index = {w: i for i, w in reversed(list(enumerate(words)))}
    result: dict[str, list[tuple[str, float]]] = {}
    for probe in probes:
        if probe not in index:
            continue
        i = index[probe]
        scores = unit @ unit[i]
        scores[i] = -np.inf
        top = np.argsort(-scores, kind="stable")[:k]
        result[probe] = [(words[j], float(scores[j])) for j in top]
    return result


def plot_embedding_map(words: Sequence[str], vectors: np.ndarray, n: int = 300) -> Figure:
    """The ``n`` most frequent words, PCA-projected to 2-D and annotated (a ``Figure``, no pyplot)."""
    n = min(n, len(words))
    points = np.asarray(vectors[:n], dtype=np.float64)
    points = points - points.mean(axis=0)
    if n >= 2:
        _, _, vt = np.linalg.svd(points, full_matrices=False)
        xy = points @ vt[:2].T
        if xy.shape[1] < 2:
            xy = np.pad(xy, ((0, 0), (0, 2 - xy.shape[1])))
    else:
        xy = np.zeros((n, 2))
    fig = Figure(figsize=(12, 12))
    ax = fig.add_subplot(1, 1, 1)
    ax.scatter(xy[:, 0], xy[:, 1], s=4, alpha=0.5)
    for (x, y), word in zip(xy, words[:n]):
        ax.annotate(word, (x, y), fontsize=7, alpha=0.8)
    ax.set_title(f"The {n} most frequent words, PCA of their vectors")
    ax.set_xlabel("component 1")
    ax.set_ylabel("component 2")
    fig.tight_layout()
    return fig
