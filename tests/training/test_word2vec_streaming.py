"""Word2Vec on a corpus read from disk a window at a time: the same training as from memory, in constant memory."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import dlflow.training.word2vec as w2v
from dlflow.text import TokenIds, write_token_ids
from dlflow.training.word2vec import Word2VecConfig, train_word2vec


class SyntheticCorpus:
    """Random sentences of type ids ``0..types-1`` for ``write_token_ids``: what a ``TokenStream`` gives, without tokenising."""

    def __init__(self, tokens: int, types: int, seed: int = 0, sentence: int = 12) -> None:
        self.tokens, self.types, self.seed, self.sentence = tokens, types, seed, sentence

    def blocks(self):
        rng = np.random.default_rng(self.seed)
        self.counts = np.zeros(self.types, dtype=np.int64)
        for start in range(0, self.tokens, 1 << 20):
            n = min(1 << 20, self.tokens - start)
            lengths = np.full(n // self.sentence, self.sentence, dtype=np.int64)
            lengths[-1] += n - lengths.sum()
            ids = rng.integers(0, self.types, size=n, dtype=np.int32)
            self.counts += np.bincount(ids, minlength=self.types)
            yield ids, lengths

    def type_counts(self):
        return [f"w{i}" for i in range(self.types)], self.counts


def remap_and_counts(corpus: TokenIds) -> tuple[np.ndarray, np.ndarray]:
    """Types 0..9 outside the vocabulary (dropped, as rare words are), the rest vocabulary ids 2.. (after two specials)."""
    remap = np.where(np.arange(corpus.n_types) < 10, -1, np.arange(corpus.n_types) - 8).astype(np.int32)
    counts = np.zeros(corpus.n_types - 8, dtype=np.int64)
    np.add.at(counts, remap[remap >= 0], corpus.counts[remap >= 0])
    return remap, counts


@pytest.mark.parametrize("engine", ["kernel", "torch"])
def test_streamed_from_disk_trains_exactly_as_from_memory(tmp_path: Path, monkeypatch, engine: str) -> None:
    """One thread: the vectors are bit-identical whether the ids come from arrays or from the folder, read in
    windows much smaller than the corpus (so jobs, windows and sentence offsets all cross boundaries)."""
    write_token_ids(tmp_path / "corpus", SyntheticCorpus(tokens=30_011, types=60, sentence=7))
    corpus = TokenIds(tmp_path / "corpus")
    remap, counts = remap_and_counts(corpus)
    config = Word2VecConfig(dim=8, epochs=2, threads=1, batch_words=700, seed=4, engine=engine, device="cpu")
    monkeypatch.setattr(w2v, "_WINDOW_TOKENS", 2_000)
    monkeypatch.setattr(w2v, "_OFFSETS_WINDOW", 300)
    streamed = train_word2vec(corpus, None, counts, config, remap=remap, progress=False)
    ids, offsets = np.load(tmp_path / "corpus" / "ids.npy"), np.load(tmp_path / "corpus" / "offsets.npy")
    in_memory = train_word2vec(ids, offsets, counts, config, remap=remap, progress=False)
    np.testing.assert_array_equal(streamed.input_vectors, in_memory.input_vectors)
    assert streamed.words_processed == 2 * corpus.n_tokens


def test_a_corpus_that_does_not_fit_its_remap_is_refused(tmp_path: Path) -> None:
    write_token_ids(tmp_path / "corpus", SyntheticCorpus(tokens=5_000, types=40))
    corpus = TokenIds(tmp_path / "corpus")
    remap, counts = remap_and_counts(corpus)
    with pytest.raises(ValueError, match=r"token id 3\d in tokens .* outside the 30 ids its remap covers"):
        train_word2vec(corpus, None, counts, Word2VecConfig(dim=4, epochs=1, threads=1), remap=remap[:30], progress=False)
    with pytest.raises(ValueError, match="remap's ids must lie"):
        train_word2vec(corpus, None, counts[:5], Word2VecConfig(dim=4, epochs=1), remap=remap, progress=False)


#: A child process that trains one epoch on the corpus folder argv[1], streamed ("stream") or loaded whole ("whole").
CHILD = textwrap.dedent(
    """
    import sys
    import numpy as np
    from dlflow.text import TokenIds
    from dlflow.training.word2vec import Word2VecConfig, train_word2vec

    folder, how = sys.argv[1], sys.argv[2]
    corpus = TokenIds(folder)
    counts = np.concatenate([[0, 0], corpus.counts])  # two specials, then every type
    remap = np.arange(2, 2 + corpus.n_types, dtype=np.int32)
    config = Word2VecConfig(mode="cbow", dim=8, epochs=1, sample=1e-6, threads=2, device="cpu")
    if how == "stream":
        result = train_word2vec(corpus, None, counts, config, remap=remap, progress=False)
    else:
        ids, offsets = np.load(f"{folder}/ids.npy"), np.load(f"{folder}/offsets.npy")
        result = train_word2vec(ids, offsets, counts, config, remap=remap, progress=False)
    assert result.words_processed == corpus.n_tokens
    # VmHWM: this process's peak resident set since exec (ru_maxrss would carry the forking parent's)
    status = open("/proc/self/status").read().splitlines()
    print("VmHWM", next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")))
    """
)


def peak_rss_mb(folder: Path, ways: tuple[str, ...], logs: Path) -> dict[str, float]:
    """The peak resident set (MiB) of a child per way of training on ``folder``: its own ``VmHWM``, printed as
    it ends. The children run side by side, so that the machine's state (the page cache that shared
    libraries are mapped from) is the same for all of them."""
    children, peaks = {}, {}
    try:
        for how in ways:
            with (logs / f"{how}.log").open("w") as out:
                children[how] = subprocess.Popen(
                    [sys.executable, "-c", CHILD, str(folder), how], stdout=out, stderr=subprocess.STDOUT
                )
        for how, child in children.items():
            child.wait()
            log = (logs / f"{how}.log").read_text()
            assert child.returncode == 0, log[-3000:]
            peaks[how] = int(next(line for line in log.splitlines() if line.startswith("VmHWM ")).split()[1]) / 1024
    finally:
        for child in children.values():
            if child.returncode is None:
                child.kill()
                child.wait()
    return peaks


@pytest.mark.e2e  # training processes of their own, measured for their peak
def test_streaming_trains_in_less_memory_than_a_whole_load_needs(tmp_path: Path) -> None:
    """32 M tokens (122 MiB of ids): a child that trains on the folder read a window at a time peaks well
    below one that loads the ids whole (which holds them, at least, on top of the same process). The
    margin allows for the children's own spread (numba's and torch's start-up: a few tens of MiB)."""
    small = tmp_path / "small"  # compiles the kernel here if numba's cache lacks it, not in a measured child
    write_token_ids(small, SyntheticCorpus(tokens=5_000, types=50))
    corpus = TokenIds(small)
    counts = np.concatenate([[0, 0], corpus.counts])
    config = Word2VecConfig(mode="cbow", dim=8, epochs=1, threads=1, device="cpu")
    train_word2vec(corpus, None, counts, config, remap=np.arange(2, 52, dtype=np.int32), progress=False)

    big = tmp_path / "big"
    write_token_ids(big, SyntheticCorpus(tokens=32_000_000, types=1_000, sentence=40))
    size_mb = (big / "ids.npy").stat().st_size / 2**20
    peaks = peak_rss_mb(big, ("stream", "whole"), tmp_path)
    assert peaks["whole"] - peaks["stream"] > 0.5 * size_mb, (peaks, size_mb)
