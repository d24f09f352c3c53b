"""Word2Vec training on small synthetic corpora whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dlflow.models.word2vec import Word2Vec
from dlflow.training.word2vec import (
    Word2VecConfig,
    Word2VecResult,
    _ArraySource,
    _Corpus,
    _feed,
    _jobs,
    _prepare_job,
    keep_probabilities,
    noise_table,
    train_word2vec,
)

TOPIC_SIZE = 20


def topic_corpus(n_sentences: int = 1500, length: int = 8, seed: int = 0):
    """Two topics of 20 words each (ids 1-20 and 21-40; id 0 a special token never used):
    every sentence draws its words from one topic only."""
    rng = np.random.default_rng(seed)
    topics = rng.integers(0, 2, size=n_sentences)
    ids = (1 + topics[:, None] * TOPIC_SIZE + rng.integers(0, TOPIC_SIZE, size=(n_sentences, length))).ravel()
    offsets = np.arange(0, n_sentences * length + 1, length, dtype=np.int64)
    counts = np.bincount(ids, minlength=1 + 2 * TOPIC_SIZE).astype(np.int64)
    return ids.astype(np.int32), offsets, counts


def one_job(ids: np.ndarray, offsets: np.ndarray, counts: np.ndarray, config: Word2VecConfig):
    """The corpus as the torch engine sees it, and its first job holding every token."""
    source = _ArraySource(ids.astype(np.int32), np.asarray(offsets, dtype=np.int64))
    corpus = _Corpus(source, counts, config, np.where(counts > 0, np.arange(len(counts)), -1).astype(np.int32))
    job = next(_feed(source, _jobs(len(ids), Word2VecConfig(batch_words=len(ids), epochs=1)), len(ids)))
    return corpus, job


def topic_margin(vectors: np.ndarray) -> tuple[float, float]:
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    a, b = unit[1 : 1 + TOPIC_SIZE], unit[1 + TOPIC_SIZE :]
    off_diagonal = ~np.eye(TOPIC_SIZE, dtype=bool)
    within = np.concatenate([(a @ a.T)[off_diagonal], (b @ b.T)[off_diagonal]]).mean()
    between = (a @ b.T).mean()
    return float(within), float(between)


@pytest.mark.parametrize("engine", ["kernel", "torch"])
@pytest.mark.parametrize("mode", ["cbow", "skipgram"])
def test_words_of_a_topic_end_up_closer(mode: str, engine: str) -> None:
    ids, offsets, counts = topic_corpus()
    config = Word2VecConfig(mode=mode, dim=16, window=3, epochs=3, sample=0, threads=1, batch_words=1000, seed=3, engine=engine)
    result = train_word2vec(ids, offsets, counts, config, progress=False)
    assert isinstance(result, Word2VecResult) and result.engine == engine
    assert result.input_vectors.shape == (41, 16) and result.input_vectors.dtype == np.float32
    within, between = topic_margin(result.input_vectors)
    assert within > between + 0.3, (within, between)
    assert result.words_processed == len(ids) * 3
    assert result.words_per_second > 0 and result.seconds > 0
    assert np.isfinite(result.loss_history).any()


@pytest.mark.parametrize("engine", ["kernel", "torch"])
def test_one_thread_is_deterministic(engine: str) -> None:
    ids, offsets, counts = topic_corpus(300)
    config = Word2VecConfig(dim=8, epochs=1, threads=1, batch_words=500, seed=5, engine=engine)
    a = train_word2vec(ids, offsets, counts, config, progress=False).input_vectors
    b = train_word2vec(ids, offsets, counts, config, progress=False).input_vectors
    np.testing.assert_array_equal(a, b)


def test_deterministic_mode_gives_identical_vectors_whatever_the_threads() -> None:
    ids, offsets, counts = topic_corpus(2000)
    for mode in ("cbow", "skipgram"):
        config = Word2VecConfig(mode=mode, dim=16, epochs=2, threads=2, deterministic=True, batch_words=300, seed=7)
        a = train_word2vec(ids, offsets, counts, config, progress=False)
        b = train_word2vec(ids, offsets, counts, config, progress=False)
        assert a.threads == b.threads == 1
        np.testing.assert_array_equal(a.input_vectors, b.input_vectors)
        fast = train_word2vec(
            ids, offsets, counts, Word2VecConfig(mode=mode, dim=16, epochs=2, threads=2, batch_words=300, seed=7), progress=False
        )
        assert fast.threads == 2


def test_words_per_second_counts_the_raw_corpus_tokens() -> None:
    ids, offsets, counts = topic_corpus(500)
    result = train_word2vec(ids, offsets, counts, Word2VecConfig(dim=8, epochs=2), corpus_tokens=2 * len(ids), progress=False)
    assert result.words_per_second == pytest.approx(2 * len(ids) * 2 / result.seconds)
    assert result.words_processed == len(ids) * 2


def test_two_threads_train_too() -> None:
    ids, offsets, counts = topic_corpus()
    config = Word2VecConfig(mode="cbow", dim=16, window=3, epochs=3, sample=0, threads=2, batch_words=1000)
    within, between = topic_margin(train_word2vec(ids, offsets, counts, config, progress=False).input_vectors)
    assert within > between + 0.3


def test_learning_rate_decays_linearly_and_progress_is_reported() -> None:
    ids, offsets, counts = topic_corpus(1000)
    events: list[dict] = []
    config = Word2VecConfig(dim=8, epochs=3, alpha=0.05, min_alpha=0.001, threads=1, batch_words=200)
    train_word2vec(ids, offsets, counts, config, progress=True, on_progress=events.append)
    assert {e["epoch"] for e in events} == {1, 2, 3}
    assert len(events) >= 3 * 3  # a few per epoch
    assert set(events[0]) == {"epoch", "progress", "words_per_second", "lr", "loss"}
    progress = np.array([e["progress"] for e in events])
    lr = np.array([e["lr"] for e in events])
    assert np.all(np.diff(progress) > 0) and progress[-1] == pytest.approx(1.0)
    np.testing.assert_allclose(lr, 0.05 - (0.05 - 0.001) * progress, rtol=1e-9)
    assert lr[-1] == pytest.approx(0.001)
    # and the rate each job actually uses is the same straight line over all words of all epochs
    jobs = list(_jobs(len(ids), config))
    starts = np.array([j.epoch * len(ids) + j.start for j in jobs]) / (3 * len(ids))
    np.testing.assert_allclose([j.lr for j in jobs], 0.05 - 0.049 * starts)
    assert all(np.isfinite(e["loss"]) for e in events[1:])


def test_subsampling_drops_frequent_words_and_keeps_rare_ones() -> None:
    counts = np.array([0, 100_000, 10_000, 50, 5], dtype=np.int64)
    keep = keep_probabilities(counts, 1e-3)
    assert keep[1] < keep[2] < 1.0
    assert keep[3] == keep[4] == 1.0
    # gensim's formula: (sqrt(c / t) + 1) * t / c with t = sample * total
    t = 1e-3 * counts.sum()
    assert keep[1] == pytest.approx((np.sqrt(100_000 / t) + 1) * t / 100_000)
    assert np.all(keep_probabilities(counts, 0.0) == 1.0)

    # in a job: every occurrence of the rare words survives, most of the frequent one does not
    ids = np.array([1] * 5000 + [3, 4] * 50, dtype=np.int64)
    rng = np.random.default_rng(0)
    ids = rng.permutation(ids)
    offsets = np.array([0, len(ids)])
    config = Word2VecConfig(sample=1e-2, window=2)  # threshold 51 occurrences
    corpus, job = one_job(ids, offsets, np.bincount(ids, minlength=5), config)
    prepared = _prepare_job(corpus, job, rng)
    kept = np.bincount(prepared["centres"], minlength=5)
    assert kept[3] == 50 and kept[4] == 50
    assert kept[1] < 0.5 * 5000


def test_windows_stop_at_sentence_boundaries() -> None:
    # three sentences; with sample=0 and window 5 every in-sentence pair may appear, none across
    ids = np.array([1, 2, 3, 4, 5, 6, 7, 8, 9], dtype=np.int64)
    offsets = np.array([0, 3, 4, 9])
    sentence_of = {1: 0, 2: 0, 3: 0, 4: 1, 5: 2, 6: 2, 7: 2, 8: 2, 9: 2}
    config = Word2VecConfig(sample=0, window=5)
    corpus, job = one_job(ids, offsets, np.bincount(ids, minlength=10), config)
    seen = set()
    for seed in range(30):
        prepared = _prepare_job(corpus, job, np.random.default_rng(seed))
        centres = prepared["centres"][prepared["bag"]]
        for centre, context in zip(centres.tolist(), prepared["context"].tolist()):
            assert sentence_of[centre] == sentence_of[context], (centre, context)
            seen.add((centre, context))
        assert 4 not in prepared["centres"]  # alone in its sentence: no context at all
    assert (1, 3) in seen and (5, 9) in seen  # the full window is reached within a sentence


def test_one_word_sentences_leave_the_vectors_untouched() -> None:
    # if windows crossed sentences, these neighbours would train each other
    ids = np.tile(np.arange(1, 11, dtype=np.int32), 100)
    offsets = np.arange(len(ids) + 1, dtype=np.int64)
    counts = np.bincount(ids, minlength=11)
    for mode in ("cbow", "skipgram"):
        config = Word2VecConfig(mode=mode, dim=8, epochs=1, sample=0, threads=1, seed=2)
        result = train_word2vec(ids, offsets, counts, config, progress=False)
        initial = Word2Vec(11, 8, generator=torch.Generator().manual_seed(2)).input_embeddings.numpy()
        np.testing.assert_array_equal(result.input_vectors, initial)


def test_noise_never_draws_words_with_count_zero() -> None:
    counts = np.array([0, 30, 0, 10, 1, 0], dtype=np.int64)
    table = noise_table(counts, size=100_000)
    drawn = np.bincount(table, minlength=6)
    assert drawn[0] == drawn[2] == drawn[5] == 0
    share = drawn / drawn.sum()
    expected = counts**0.75 / (counts**0.75).sum()
    np.testing.assert_allclose(share, expected, atol=1e-4)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("mode", "glove"),
        ("dim", 0),
        ("window", -1),
        ("negative", 0),
        ("sample", -0.1),
        ("sample", 1.5),
        ("epochs", 0),
        ("alpha", 0.0),
        ("min_alpha", 1.0),
        ("batch_words", 0),
        ("threads", 0),
        ("device", "tpu"),
        ("engine", "fortran"),
        ("dim", 2.5),
    ],
)
def test_config_validation_names_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=rf"Word2VecTrainingParams\n{field}\n"):  # pydantic names the field
        Word2VecConfig(**{field: value})


def test_the_kernel_engine_is_refused_on_cuda() -> None:
    with pytest.raises(ValueError, match=r"Word2VecTrainingParams\nengine\n.*CPU only"):
        Word2VecConfig(engine="kernel", device="cuda")
    Word2VecConfig(engine="torch", device="cuda")


def test_defaults_are_gensims() -> None:
    config = Word2VecConfig()
    assert (config.mode, config.dim, config.window, config.negative) == ("cbow", 100, 5, 5)
    assert (config.sample, config.epochs, config.alpha, config.min_alpha) == (1e-3, 5, 0.025, 1e-4)


def test_bad_inputs_are_reported() -> None:
    ids, offsets, counts = topic_corpus(10)
    config = Word2VecConfig(dim=4, epochs=1)
    with pytest.raises(ValueError, match="offsets"):
        train_word2vec(ids, offsets[:-1], counts, config, progress=False)
    with pytest.raises(ValueError, match="ids must lie"):
        train_word2vec(ids, offsets, counts[:5], config, progress=False)
    zero = counts.copy()
    zero[ids[0]] = 0
    with pytest.raises(ValueError, match="count is 0"):
        train_word2vec(ids, offsets, zero, config, progress=False)


def test_an_error_in_the_callback_stops_training() -> None:
    ids, offsets, counts = topic_corpus(500)

    def boom(event: dict) -> None:
        raise RuntimeError("callback failed")

    with pytest.raises(RuntimeError, match="callback failed"):
        train_word2vec(ids, offsets, counts, Word2VecConfig(dim=4, batch_words=100), progress=False, on_progress=boom)
