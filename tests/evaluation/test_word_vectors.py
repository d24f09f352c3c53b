"""Word-vector evaluation equals gensim's evaluate_word_analogies / evaluate_word_pairs on the same vectors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from gensim.models import keyedvectors as gensim_kv  # the reference (a test dependency)
from matplotlib.figure import Figure

from dlflow.evaluation.word_vectors import (
    analogy_accuracy,
    nearest_neighbours,
    plot_embedding_map,
    similarity_spearman,
)
from tests.conftest import MIRROR as DATA_MIRROR

MIRROR = DATA_MIRROR / "word-benchmarks"


def keyed_vectors(words: list[str], vectors: np.ndarray):
    kv = gensim_kv.KeyedVectors(vectors.shape[1])
    kv.add_vectors(words, vectors)
    return kv


def analogy_world() -> tuple[list[str], np.ndarray]:
    """Vectors built so that king - man + woman = queen and paris - france + italy = rome."""
    rng = np.random.default_rng(0)
    gender, royal, capital = rng.normal(size=(3, 20))
    base = {"man": rng.normal(size=20), "france": rng.normal(size=20), "italy": rng.normal(size=20)}
    vectors = {
        "the": rng.normal(size=20),
        "man": base["man"],
        "woman": base["man"] + gender,
        "king": base["man"] + royal,
        "queen": base["man"] + gender + royal,
        "france": base["france"],
        "paris": base["france"] + capital,
        "italy": base["italy"],
        "rome": base["italy"] + capital,
        "Rome": rng.normal(size=20),  # a rarer case variant: the first (more frequent) one wins
    }
    for i in range(40):
        vectors[f"noise{i}"] = rng.normal(size=20)
    words = list(vectors)
    return words, np.stack([vectors[w] for w in words]).astype(np.float32)


def test_analogy_finds_the_constructed_answers_and_matches_gensim(tmp_path: Path) -> None:
    questions = tmp_path / "questions.txt"
    questions.write_text(
        ": family\nman woman king queen\nMAN WOMAN KING QUEEN\nwoman man queen king\nman king woman noise3\n"
        "man woman unknownword queen\nthis line is invalid five\n"
        ": capitals\nfrance paris italy rome\nparis france rome italy\nfrance paris italy noise7\n"
    )
    words, vectors = analogy_world()
    ours = analogy_accuracy(words, vectors, questions)
    score, sections = keyed_vectors(words, vectors).evaluate_word_analogies(questions, restrict_vocab=30000)
    assert ours["correct"] == 5 and ours["total"] == 7  # the two "noise" answers are wrong on purpose
    assert ours["accuracy"] == pytest.approx(score, abs=1e-12)
    assert ours["oov_rate"] == pytest.approx(1 / 8)  # the invalid line is not a question
    for section in sections[:-1]:
        mine = ours["sections"][section["section"]]
        assert mine["correct"] == len(section["correct"])
        assert mine["total"] == len(section["correct"]) + len(section["incorrect"])


def test_restrict_vocab_skips_rare_words(tmp_path: Path) -> None:
    questions = tmp_path / "q.txt"
    questions.write_text(": s\nman woman king queen\nfrance paris italy rome\n")
    words, vectors = analogy_world()
    ours = analogy_accuracy(words, vectors, questions, restrict_vocab=5)
    assert ours["total"] == 1 and ours["oov_rate"] == 0.5
    score, _ = keyed_vectors(words, vectors).evaluate_word_analogies(questions, restrict_vocab=5)
    assert ours["accuracy"] == score


def test_similarity_matches_gensim(tmp_path: Path) -> None:
    words, vectors = analogy_world()
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text(
        "# comment\n# Word 1\tWord 2\tHuman\nking\tqueen\t9\nman\twoman\t8\nKING\tnoise1\t1\nparis\trome\t6\n"
        "france\tunknownword\t3\nthe\tnoise2\t2\nbad line\nrome\tqueen\t4\n"
    )
    ours = similarity_spearman(words, vectors, pairs)
    pearson, spearman, oov = keyed_vectors(words, vectors).evaluate_word_pairs(pairs)
    assert ours["spearman"] == pytest.approx(spearman.statistic, abs=1e-6)
    assert ours["pearson"] == pytest.approx(pearson[0], abs=1e-6)
    assert ours["pairs"] == 6
    assert 100 * ours["oov_rate"] == pytest.approx(oov)


@pytest.mark.usefixtures("data_mirror")  # the offline mirror ($DLFLOW_DATA_MIRROR): absent, the test fails
def test_real_benchmark_files_match_gensim() -> None:
    """The real questions-words / WordSim-353 / SimLex-999 files, vectors that make some analogies work."""
    text = (MIRROR / "questions-words.txt").read_text().lower().split()
    for name in ("wordsim353.tsv", "simlex999.txt"):
        text += [w.lower() for line in (MIRROR / name).read_text().splitlines() if not line.startswith("#")
                 for w in line.split("\t")[:2]]  # fmt: skip
    words = list(dict.fromkeys(w for w in text if w != ":"))
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(len(words), 24)).astype(np.float32)
    # give the capital/country pairs a shared offset so that part of the first sections is answerable
    index = {w: i for i, w in enumerate(words)}
    offset = rng.normal(size=24).astype(np.float32) * 2
    for line in (MIRROR / "questions-words.txt").read_text().splitlines()[1:1000]:
        if not line.startswith(":"):
            a, b = line.lower().split()[:2]
            vectors[index[b]] = vectors[index[a]] + offset
    words = words[:1500] + [w.upper() for w in words[1500:1600]] + words[1600:]  # some case variants
    kv = keyed_vectors(words, vectors)
    for restrict in (30000, 800):
        ours = analogy_accuracy(words, vectors, MIRROR / "questions-words.txt", restrict_vocab=restrict)
        score, sections = kv.evaluate_word_analogies(MIRROR / "questions-words.txt", restrict_vocab=restrict)
        assert ours["correct"] == len(sections[-1]["correct"]) > 0
        assert ours["total"] == len(sections[-1]["correct"]) + len(sections[-1]["incorrect"])
        assert ours["accuracy"] == pytest.approx(score, abs=1e-12)
    for name in ("wordsim353.tsv", "simlex999.txt"):
        ours = similarity_spearman(words, vectors, MIRROR / name)
        pearson, spearman, oov = kv.evaluate_word_pairs(MIRROR / name)
        assert ours["spearman"] == pytest.approx(spearman.statistic, abs=1e-6)
        assert ours["pearson"] == pytest.approx(pearson[0], abs=1e-6)
        assert 100 * ours["oov_rate"] == pytest.approx(oov)


def test_nearest_neighbours() -> None:
    words, vectors = analogy_world()
    vectors = vectors.copy()
    vectors[words.index("queen")] = vectors[words.index("king")] * 2 + 1e-3
    result = nearest_neighbours(words, vectors, ["king", "missing"], k=3)
    assert list(result) == ["king"]
    assert len(result["king"]) == 3
    assert result["king"][0][0] == "queen" and result["king"][0][1] == pytest.approx(1.0, abs=1e-4)
    assert all(w != "king" for w, _ in result["king"])
    kv = keyed_vectors(words, vectors)
    assert [w for w, _ in result["king"]] == [w for w, _ in kv.most_similar("king", topn=3)]


def test_embedding_map_is_a_figure() -> None:
    words, vectors = analogy_world()
    fig = plot_embedding_map(words, vectors, n=30)
    assert isinstance(fig, Figure)
    assert len(fig.axes[0].texts) == 30
