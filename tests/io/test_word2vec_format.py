"""The word2vec text format: round trip, gensim compatibility, the Kedro dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from kedro.io import DatasetError

from dlflow.io import Word2VecTextDataset
from dlflow.io.word2vec_format import load_word2vec_format, save_word2vec_format


def sample() -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(0)
    words = ["the", "movie", "café", "don't", "<unk>", "x"]
    vectors = (rng.normal(size=(len(words), 7)) * 10.0 ** rng.integers(-6, 3, size=(len(words), 7))).astype(np.float32)
    return words, vectors


def test_round_trip_is_exact(tmp_path: Path) -> None:
    words, vectors = sample()
    path = tmp_path / "sub" / "vectors.txt"
    save_word2vec_format(path, words, vectors)
    assert path.read_text(encoding="utf-8").splitlines()[0] == "6 7"
    loaded_words, loaded = load_word2vec_format(path)
    assert loaded_words == words
    assert loaded.dtype == np.float32
    np.testing.assert_array_equal(loaded, vectors)
    assert [p.name for p in path.parent.iterdir()] == ["vectors.txt"]  # no temporary file left behind


def test_gensim_reads_our_file(tmp_path: Path) -> None:
    from gensim.models import keyedvectors  # the reference reader (a test dependency)

    words, vectors = sample()
    path = tmp_path / "vectors.txt"
    save_word2vec_format(path, words, vectors)
    kv = keyedvectors.KeyedVectors.load_word2vec_format(str(path), binary=False)
    assert kv.index_to_key == words
    np.testing.assert_array_equal(kv.vectors, vectors)
    # and we read gensim's
    gensim_path = tmp_path / "gensim.txt"
    kv.save_word2vec_format(str(gensim_path), binary=False)
    loaded_words, loaded = load_word2vec_format(gensim_path)
    assert loaded_words == words
    np.testing.assert_allclose(loaded, vectors, rtol=1e-6)


def test_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="white space"):
        save_word2vec_format(tmp_path / "v.txt", ["two words"], np.zeros((1, 3)))
    with pytest.raises(ValueError, match="shape"):
        save_word2vec_format(tmp_path / "v.txt", ["a", "b"], np.zeros((3, 3)))
    broken = tmp_path / "broken.txt"
    broken.write_text("2 3\na 1 2 3\nb 1 2\n")
    with pytest.raises(ValueError, match="broken.txt:3"):
        load_word2vec_format(broken)
    short = tmp_path / "short.txt"
    short.write_text("3 2\na 1 2\n")
    with pytest.raises(ValueError, match="announces 3"):
        load_word2vec_format(short)


def test_failed_save_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "v.txt"
    save_word2vec_format(path, ["a"], np.ones((1, 2)))
    before = path.read_text()
    with pytest.raises(ValueError):
        save_word2vec_format(path, ["a", "b c"], np.ones((2, 2)))
    assert path.read_text() == before


def test_kedro_dataset(tmp_path: Path) -> None:
    words, vectors = sample()
    dataset = Word2VecTextDataset(filepath=str(tmp_path / "w2v" / "vectors.txt"))
    assert not dataset.exists()
    with pytest.raises(DatasetError):
        dataset.load()
    dataset.save({"words": words, "vectors": vectors})
    assert dataset.exists()
    loaded = dataset.load()
    assert loaded["words"] == words
    np.testing.assert_array_equal(loaded["vectors"], vectors)
    assert "vectors.txt" in str(dataset)
    with pytest.raises(DatasetError, match="words"):
        dataset.save({"vectors": vectors})
