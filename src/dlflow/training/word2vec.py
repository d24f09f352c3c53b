"""Word2Vec training (CBOW and skip-gram with negative sampling), fast on CPU, on a corpus of any size.

Read top to bottom:

1. ``Word2VecConfig`` (``dlflow.config.Word2VecTrainingParams``): the settings, with
   gensim's defaults, checked up front.
2. The corpus: token ids with sentence offsets, either arrays in memory or a ``TokenSource``
   that reads a range at a time (``dlflow.text.TokenIds``: a folder of token ids on disk,
   read through memory maps of the ranges used). Its ids may be a corpus' own *type ids*,
   mapped to vocabulary ids by ``remap`` as they are read (-1: not in the vocabulary, dropped
   before windows are drawn, as gensim drops such words).
3. ``train_word2vec``: builds the model (``dlflow.models.word2vec.Word2Vec``:
   two embedding matrices in torch tensors), splits ``epochs`` passes over the
   corpus into jobs of about ``batch_words`` consecutive tokens, each with its learning rate
   (decaying linearly over all words of all epochs), and hands them to
   ``threads`` worker threads that update the two matrices in place, without
   locks (Hogwild SGD, as word2vec.c and gensim do). Each worker takes the next
   job as it finishes one (``_feed``, behind a lock: a contiguous range of the corpus, cut
   from a window of about a million tokens read at once, with the sentence starts that fall
   in it), so no worker waits for another or for the calling thread, and a window leaves
   memory with its last job: memory does not grow with the corpus. The calling thread only
   draws the progress bar and calls ``on_progress``.
4. Two engines run a job:

   * ``kernel`` (the default on CPU): ``word2vec_kernel.train_job``, word2vec.c's
     inner loop compiled by numba, on numpy views of the model's tensors. It
     releases the GIL, so the threads truly run in parallel, and it applies
     every gradient step at once, exactly as word2vec.c and gensim do.
   * ``torch`` (the default on CUDA): a job as a handful of large tensor
     operations (``_prepare_job``, ``_cbow_step``, ``_skipgram_step``), whose
     gradients are computed from the vectors as they were when the job started
     and applied together; jobs are kept small (2,000 words) so that this
     staleness does not matter, neighbouring centre words share their noise
     words, and in skip-gram the summed step of a very frequent word is capped.

With one thread (``deterministic=True``) the result is bit-identical for a
seed; with several, as with gensim, the interleaving of the threads' updates
is not reproducible.
"""

from __future__ import annotations

import logging
import math
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import chain
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from dlflow.config import Word2VecTrainingParams
from dlflow.models.word2vec import Word2Vec
from dlflow.training.runtime import select_device

logger = logging.getLogger(__name__)

_BATCH_WORDS = {"kernel": 10_000, "torch": 2_000}
_WINDOW_TOKENS = 1 << 20  # tokens the feeder reads at once (4 MB of int32 ids)
_OFFSETS_WINDOW = 1 << 16  # sentence offsets it reads at once (512 kB)
_TABLE_SIZE = 1 << 22  # entries of the unigram^0.75 noise table
_REPORTS_PER_EPOCH = 4  # on_progress calls per epoch
_LOSS_EVERY = 8  # compute the (monitoring-only) loss on every n-th job
_GROUP = {"cbow": 16, "skipgram": 8}  # consecutive centre words that share their noise words
_SHARED_NOISE_FACTOR = 4  # a group shares 4 * negative noise words
_WORDS_PER_TYPE = 5  # a job holds at most this many words per vocabulary word (see _jobs)
_ROW_CAP = 24.0  # skip-gram: a row's summed step in one job is capped at this many single steps


#: The settings of a run, checked up front (``word2vec.training`` in ``parameters_word2vec.yml``
#: is validated by the same class); defaults are gensim's. Frozen: ``model_copy(update=...)`` for a variant.
Word2VecConfig = Word2VecTrainingParams


class TokenSource(Protocol):
    """A corpus read a range at a time (``dlflow.text.TokenIds`` is one): ``n_tokens`` ids, sentence after
    sentence, and ``n_sentences + 1`` offsets (sentence ``i`` is ids ``offsets[i]:offsets[i + 1]``)."""

    n_tokens: int
    n_sentences: int

    def read_ids(self, start: int, stop: int) -> np.ndarray: ...

    def read_offsets(self, start: int, stop: int) -> np.ndarray: ...


class _ArraySource:
    """A ``TokenSource`` over arrays in memory (views, no copies)."""

    def __init__(self, ids: np.ndarray, offsets: np.ndarray) -> None:
        self._ids, self._offsets = ids, offsets
        self.n_tokens, self.n_sentences = len(ids), len(offsets) - 1

    def read_ids(self, start: int, stop: int) -> np.ndarray:
        return self._ids[start:stop]

    def read_offsets(self, start: int, stop: int) -> np.ndarray:
        return self._offsets[start:stop]


@dataclass
class Word2VecResult:
    """What a run produced: the input vectors (V, dim) and how fast it went.

    ``words_per_second`` counts corpus tokens (``corpus_tokens`` of
    ``train_word2vec``, out-of-vocabulary ones included, as gensim's
    reports do) times epochs over ``seconds``, the training time;
    ``compile_seconds`` is the kernel's load before it (its one-time compilation
    on a machine's first run, then numba's cache on disk), part of
    ``startup_seconds``: the call to the first job (checks, the model, the noise
    table, the kernel, the first read of the corpus).
    """

    input_vectors: np.ndarray
    words_per_second: float
    seconds: float
    words_processed: int
    loss_history: list[float] = field(default_factory=list)
    output_vectors: np.ndarray | None = None
    engine: str = "kernel"
    threads: int = 1
    compile_seconds: float = 0.0
    startup_seconds: float = 0.0


@dataclass
class _Job:
    index: int
    epoch: int
    start: int  # token range [start, stop) of the corpus
    stop: int
    lr: float
    tokens: np.ndarray | None = None  # the range's ids (read-only int32), set by _feed
    starts: np.ndarray | None = None  # where sentences start inside the range (> 0, relative to start; int64)


class _Corpus:
    """What every job needs: the source, the map to vocabulary ids, keep probabilities, the noise table."""

    def __init__(self, source: TokenSource, counts: np.ndarray, config: Word2VecConfig, remap: np.ndarray) -> None:
        self.source = source
        self.remap = remap
        self.keep = keep_probabilities(counts, config.sample).astype(np.float32)
        self.noise = noise_table(counts)
        self.window = config.window
        self.negative = config.negative
        self.group = _GROUP[config.mode]
        self.shared_noise = _SHARED_NOISE_FACTOR * config.negative


def keep_probabilities(counts: np.ndarray, sample: float) -> np.ndarray:
    """Probability of keeping each occurrence of a word (gensim's sub-sampling formula).

    With ``t = sample * total words``, a word seen ``c`` times is kept with
    probability ``(sqrt(c / t) + 1) * t / c``, capped at 1; ``sample=0`` keeps all.
    """
    counts = np.asarray(counts, dtype=np.float64)
    if sample <= 0:
        return np.ones_like(counts)
    threshold = sample * counts.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        p = (np.sqrt(counts / threshold) + 1.0) * threshold / counts
    p[counts <= 0] = 1.0
    return np.minimum(p, 1.0)


def noise_table(counts: np.ndarray, size: int = _TABLE_SIZE) -> np.ndarray:
    """A table of word ids (int32) in which each id fills a share proportional to count^0.75 (ids with count 0: none).

    Entry ``j`` is the id whose share of the cumulative weights holds the point ``(j + 0.5) / size``.
    """
    weights = np.asarray(counts, dtype=np.float64) ** 0.75
    cumulative = np.cumsum(weights)
    if cumulative[-1] <= 0:
        raise ValueError("counts has no positive entry: there is nothing to draw negative samples from")
    # the entries j with (j + 0.5) * step < cumulative[i] come before or at id i: a run of each id, laid end to end
    below = np.clip(np.ceil(cumulative / (cumulative[-1] / size) - 0.5), 0, size).astype(np.int64)
    below[-1] = size
    return np.repeat(np.arange(len(weights), dtype=np.int32), np.diff(below, prepend=0))


def _check_arrays(ids: np.ndarray, offsets: np.ndarray, n_ids: int) -> tuple[np.ndarray, np.ndarray]:
    """Corpus arrays in memory: checked whole (ids in ``[0, n_ids)``), ids as int32."""
    ids = np.asarray(ids)
    offsets = np.asarray(offsets, dtype=np.int64)
    if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"ids must be a 1-D integer array, got shape {ids.shape} and dtype {ids.dtype}")
    if offsets.ndim != 1 or len(offsets) < 2 or offsets[0] != 0 or offsets[-1] != len(ids):
        raise ValueError(f"offsets must be 1-D, start at 0 and end at len(ids)={len(ids)} (one entry per sentence plus one)")
    if (np.diff(offsets) < 0).any():
        raise ValueError("offsets must be non-decreasing")
    if len(ids) == 0:
        raise ValueError("ids is empty: there is nothing to train on")
    if ids.min() < 0 or ids.max() >= n_ids:
        raise ValueError(f"ids must lie in [0, {n_ids}) (the vocabulary size given by counts, or remap's length)")
    return np.ascontiguousarray(ids, dtype=np.int32), offsets


def _check_counts(counts: np.ndarray) -> np.ndarray:
    counts = np.asarray(counts, dtype=np.int64)
    if counts.ndim != 1 or len(counts) == 0:
        raise ValueError("counts must be a non-empty 1-D array with one count per vocabulary id")
    if (counts < 0).any():
        raise ValueError("counts must not be negative")
    return counts


def _check_remap(remap: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The map from the corpus' ids to vocabulary ids: int32, each -1 (dropped) or an id with a positive count."""
    remap = np.asarray(remap)
    if remap.ndim != 1 or not np.issubdtype(remap.dtype, np.integer) or len(remap) == 0:
        raise ValueError("remap must be a non-empty 1-D integer array: the vocabulary id of each corpus id, or -1")
    if remap.min() < -1 or remap.max() >= len(counts):
        raise ValueError(f"remap's ids must lie in [-1, {len(counts)}) (-1: not in the vocabulary)")
    mapped = remap[remap >= 0]
    if len(mapped) == 0:
        raise ValueError("remap maps no corpus id into the vocabulary: there is nothing to train on")
    if (counts[mapped] == 0).any():
        raise ValueError("remap maps corpus ids to words whose count is 0; counts must count the corpus")
    return np.ascontiguousarray(remap, dtype=np.int32)


class _SentenceStarts:
    """Where sentences start inside consecutive token ranges, read from the offsets a window at a time."""

    def __init__(self, source: TokenSource) -> None:
        self._source, self._window = source, _OFFSETS_WINDOW
        self._base, self._offsets = 0, source.read_offsets(0, min(self._window, source.n_sentences + 1))

    def within(self, start: int, stop: int) -> np.ndarray:
        """Offsets inside ``(start, stop)``, minus ``start`` (int64); calls must move forward through the corpus."""
        parts = []
        while True:
            offsets = self._offsets
            lo, hi = np.searchsorted(offsets, start, side="right"), np.searchsorted(offsets, stop, side="left")
            parts.append(offsets[lo:hi] - start)
            end = self._base + len(offsets)
            if hi < len(offsets) or end >= self._source.n_sentences + 1:
                break
            self._base, self._offsets = end, self._source.read_offsets(end, min(end + self._window, self._source.n_sentences + 1))
        return np.concatenate(parts).astype(np.int64, copy=False)


def _jobs(n_words: int, config: Word2VecConfig, vocab_size: int | None = None, engine: str = "torch") -> Iterator[_Job]:
    """The jobs of all epochs, in order, each with its learning rate (made as they are needed).

    With a tiny vocabulary every word would recur hundreds of times in one job
    and the torch engine's summed steps would overshoot, so its jobs hold at
    most ``_WORDS_PER_TYPE`` words per vocabulary word (no limit on real corpora).
    """
    batch_words = _batch_words(config, vocab_size, engine)
    total = n_words * config.epochs
    index = 0
    for epoch in range(config.epochs):
        for start in range(0, n_words, batch_words):
            done = epoch * n_words + start
            lr = config.alpha - (config.alpha - config.min_alpha) * done / total
            yield _Job(index, epoch, start, min(start + batch_words, n_words), lr)
            index += 1


def _batch_words(config: Word2VecConfig, vocab_size: int | None, engine: str) -> int:
    batch_words = config.batch_words or _BATCH_WORDS[engine]
    if vocab_size is not None and engine == "torch":
        batch_words = max(1, min(batch_words, _WORDS_PER_TYPE * vocab_size))
    return batch_words


def _feed(source: TokenSource, jobs: Iterator[_Job], batch_words: int) -> Iterator[_Job]:
    """``jobs`` with their tokens and sentence starts, read a window of about a million tokens at a time.

    A job's tokens are a read-only view of its window, which leaves memory (for a memory map:
    is unmapped) once its jobs are done and the next window is read.
    """
    span = max(_WINDOW_TOKENS, batch_words)
    window, window_start, starts, epoch = None, 0, None, -1
    for job in jobs:
        if job.epoch != epoch:  # a new pass from the corpus' start
            epoch, window, starts = job.epoch, None, _SentenceStarts(source)
        if window is None or job.stop > window_start + len(window):
            window_start, window = job.start, None
            window = np.asarray(source.read_ids(job.start, min(source.n_tokens, job.start + span)))
            if window.dtype != np.int32:
                window = window.astype(np.int32)
            window.flags.writeable = False
        job.tokens = window[job.start - window_start : job.stop - window_start]
        job.starts = starts.within(job.start, job.stop)
        yield job


def _prepare_job(corpus: _Corpus, job: _Job, rng: np.random.Generator) -> dict[str, np.ndarray] | None:
    """Sub-sample one job's words and lay out its centre words, contexts and noise words (all numpy)."""
    tokens = corpus.remap[job.tokens].astype(np.int64)
    first = np.zeros(len(tokens), dtype=np.int32)
    first[job.starts] = 1
    sentence = np.cumsum(first, dtype=np.int32)
    known = tokens >= 0
    tokens, sentence = tokens[known], sentence[known]
    keep = rng.random(len(tokens), dtype=np.float32) < corpus.keep[tokens]
    tokens, sentence = tokens[keep], sentence[keep]
    n, w = len(tokens), corpus.window
    if n < 2:
        return None
    # Context slots at offsets -w..-1, 1..w, read from sentinel-padded copies.
    pad_tokens = np.concatenate([np.zeros(w, np.int64), tokens, np.zeros(w, np.int64)])
    pad_sentence = np.concatenate([np.full(w, -1, np.int32), sentence, np.full(w, -1, np.int32)])
    shifts = [d for d in range(-w, w + 1) if d != 0]
    context = np.stack([pad_tokens[w + d : w + d + n] for d in shifts], axis=1)
    same = np.stack([pad_sentence[w + d : w + d + n] for d in shifts], axis=1) == sentence[:, None]
    reach = w - rng.integers(0, w, size=n)  # the reduced window, 1..w, of each centre word
    valid = same & (np.abs(np.asarray(shifts))[None, :] <= reach[:, None])
    n_context = valid.sum(axis=1)
    has = n_context > 0
    if not has.any():
        return None
    centres, valid, n_context = tokens[has], valid[has], n_context[has]
    context = context[has][valid]  # row-major: grouped by centre word
    bag = np.repeat(np.arange(len(centres)), n_context)
    groups = -(-len(centres) // corpus.group)
    noise = corpus.noise[rng.integers(0, len(corpus.noise), size=(groups, corpus.shared_noise))].astype(np.int64)
    return {"centres": centres, "context": context, "bag": bag, "n_context": n_context, "noise": noise}


def _noise_scores(h: torch.Tensor, noise_vectors: torch.Tensor, group: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores (groups, group, K) of each centre's vector against its group's K noise vectors."""
    n, dim = h.shape
    groups = noise_vectors.shape[0]
    padded = F.pad(h, (0, 0, 0, groups * group - n)).view(groups, group, dim)  # zero rows: no update
    return torch.bmm(padded, noise_vectors.transpose(1, 2)), padded


def _noise_gradient(
    scores: torch.Tensor, centres: torch.Tensor, noise: torch.Tensor, weight: torch.Tensor, group: int
) -> torch.Tensor:
    """``-sigmoid(score) * weight`` per (centre, noise word); 0 where the noise word is the centre word itself."""
    groups = noise.shape[0]
    padded_centres = F.pad(centres, (0, groups * group - len(centres)), value=-1).view(groups, group, 1)
    padded_weight = F.pad(weight, (0, groups * group - len(weight))).view(groups, group, 1)
    g = torch.sigmoid(scores).mul_(padded_weight.neg())
    return g.masked_fill_(padded_centres == noise.unsqueeze(1), 0.0)


def _damp(indices: torch.Tensor, hits_weight: torch.Tensor | None, vocab_size: int) -> torch.Tensor:
    """Per update, ``min(1, cap / hits)``: ``hits`` is how much the job updates that row in all.

    Gensim applies a frequent word's many updates one after the other, each
    seeing the previous; summed in one step they overshoot and training
    diverges. Capping a row's summed step at ``cap`` single steps keeps a job
    stable while leaving rarer words, the vast majority, untouched.
    """
    hits = torch.bincount(indices, weights=hits_weight, minlength=vocab_size).to(torch.float32)
    return hits.clamp_(min=_ROW_CAP).reciprocal_().mul_(_ROW_CAP).index_select(0, indices)


def _job(batch: dict[str, torch.Tensor], w_in: torch.Tensor) -> tuple:
    """A job's tensors and sizes: centres, context, bag, noise, and (words, dim, noise groups, noise
    words per group, centre words per group)."""
    centres, noise = batch["centres"], batch["noise"]
    n, (groups, k) = len(centres), noise.shape
    return centres, batch["context"], batch["bag"], noise, (n, w_in.shape[1], groups, k, -(-n // groups))


def _cbow_step(
    w_in: torch.Tensor, w_out: torch.Tensor, batch: dict[str, torch.Tensor], lr: float, want_loss: bool
) -> float | None:
    """CBOW: the mean of a centre word's context vectors predicts it against noise words."""
    centres, context, bag, noise, (n, dim, groups, k, group) = _job(batch, w_in)
    starts = torch.zeros(n, dtype=torch.int64, device=w_in.device)
    starts[1:] = torch.cumsum(batch["n_context"], 0)[:-1]
    h = F.embedding_bag(context, w_in, starts, mode="mean")  # (n, dim)
    # the word itself (label 1)
    u = w_out.index_select(0, centres)
    pos_scores = (u * h).sum(1)
    g_pos = torch.sigmoid(pos_scores).neg_().add_(1.0).mul_(lr)
    # its group's noise words (label 0), each standing in for negative / k of gensim's draws
    v = w_out.index_select(0, noise.reshape(-1)).view(groups, k, dim)
    neg_scores, h_groups = _noise_scores(h, v, group)
    weight = torch.full((n,), lr * batch["negative"], dtype=h.dtype, device=h.device) / k
    g_neg = _noise_gradient(neg_scores, centres, noise, weight, group)
    neu1e = torch.bmm(g_neg, v).view(-1, dim)[:n]  # the step for every context vector of the centre
    neu1e.add_(g_pos.unsqueeze(1) * u)
    w_out.index_add_(0, centres, g_pos.unsqueeze(1) * h)
    w_out.index_add_(0, noise.reshape(-1), torch.bmm(g_neg.transpose(1, 2), h_groups).view(-1, dim))
    w_in.index_add_(0, context, neu1e.index_select(0, bag))
    if not want_loss:
        return None
    return _loss(pos_scores, neg_scores, n, batch["negative"])


def _skipgram_step(
    w_in: torch.Tensor, w_out: torch.Tensor, batch: dict[str, torch.Tensor], lr: float, want_loss: bool
) -> float | None:
    """Skip-gram: a centre word predicts each of its context words against noise words."""
    centres, context, bag, noise, (n, dim, groups, k, group) = _job(batch, w_in)
    h = w_in.index_select(0, centres)  # (n, dim)
    h_pairs = h.index_select(0, bag)  # (pairs, dim)
    u = w_out.index_select(0, context)  # (pairs, dim)
    pos_scores = (h_pairs * u).sum(1)
    g_pos = torch.sigmoid(pos_scores).neg_().add_(1.0).mul_(lr)  # (pairs,)
    # noise words: gensim draws `negative` per pair; here the k noise words of the group
    # are shared, each weighted so that the expected update is the same
    v = w_out.index_select(0, noise.reshape(-1)).view(groups, k, dim)
    neg_scores, h_groups = _noise_scores(h, v, group)
    weight = batch["n_context"].to(h.dtype).mul_(lr * batch["negative"] / k)
    g_neg = _noise_gradient(neg_scores, centres, noise, weight, group)
    step_h = torch.bmm(g_neg, v).view(-1, dim)[:n]
    step_h.index_add_(0, bag, g_pos.unsqueeze(1) * u)
    step_u = g_pos.unsqueeze(1) * h_pairs
    step_v = torch.bmm(g_neg.transpose(1, 2), h_groups).view(-1, dim)
    if _ROW_CAP:
        vocab_size = w_in.shape[0]
        # a noise row of a group stands for (pairs in the group) * negative / k single steps
        per_group = F.pad(batch["n_context"], (0, groups * group - n)).view(groups, group).sum(1)
        noise_hits = (per_group.to(h.dtype) * (batch["negative"] / k)).repeat_interleave(k)
        out_rows = torch.cat([context, noise.reshape(-1)])
        out_hits = torch.cat([torch.ones(len(context), dtype=h.dtype, device=h.device), noise_hits])
        damp = _damp(out_rows, out_hits, vocab_size)
        step_u.mul_(damp[: len(context)].unsqueeze(1))
        step_v.mul_(damp[len(context) :].unsqueeze(1))
        step_h.mul_(_damp(centres, batch["n_context"].to(h.dtype), vocab_size).unsqueeze(1))
    w_out.index_add_(0, context, step_u)
    w_out.index_add_(0, noise.reshape(-1), step_v)
    w_in.index_add_(0, centres, step_h)
    if not want_loss:
        return None
    return _loss(pos_scores, neg_scores, n, batch["negative"])


def _loss(pos_scores: torch.Tensor, neg_scores: torch.Tensor, n: int, negative: int) -> float:
    """Mean negative-sampling loss of one positive example with ``negative`` noise words (for monitoring)."""
    k = neg_scores.shape[2]
    neg = -F.logsigmoid(-neg_scores).reshape(-1, k)[:n].mean(1) * negative
    return float(-F.logsigmoid(pos_scores).mean() + neg.mean())


def train_word2vec(
    ids: np.ndarray | TokenSource,
    offsets: np.ndarray | None,
    counts: np.ndarray,
    config: Word2VecConfig | None = None,
    *,
    remap: np.ndarray | None = None,
    corpus_tokens: int | None = None,
    progress: bool = True,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
) -> Word2VecResult:
    """Train word vectors on a corpus given as token ids.

    Args:
        ids: the corpus as one flat integer array of ids (all sentences, in order), or a
            ``TokenSource`` that reads it a range at a time (``dlflow.text.TokenIds``: a
            corpus larger than memory, memory-mapped a window at a time); then ``offsets`` is None.
        offsets: int64, ``n_sentences + 1`` entries; sentence ``i`` is ``ids[offsets[i]:offsets[i+1]]``.
            Context windows never cross a sentence boundary.
        counts: int64, the corpus count of every vocabulary id (drives sub-sampling and the
            noise distribution); ids with count 0, such as special tokens, are never drawn as noise.
        config: the settings (gensim's defaults when ``None``).
        remap: the vocabulary id of each corpus id, or -1 for a word outside the vocabulary
            (dropped before windows are drawn); ``None``: the ids are vocabulary ids.
        corpus_tokens: the corpus' tokens before out-of-vocabulary ones were dropped, for
            words/s (default: the tokens read, those that ``remap`` drops included).
        progress: draw a tqdm bar with words/s where stderr is a terminal (elsewhere the
            reports below are logged, a few lines per epoch).
        on_progress: called from the calling thread a few times per epoch with
            ``{"epoch", "progress", "words_per_second", "lr", "loss"}`` (``progress`` in 0-1
            over the whole run, ``lr`` the learning rate reached, ``loss`` the mean
            negative-sampling loss of the jobs since the previous call, or nan).

    Returns:
        ``Word2VecResult`` with the input vectors as float32 numpy (V, dim).
    """
    called = time.perf_counter()
    config = config or Word2VecConfig()
    counts = _check_counts(counts)
    if offsets is None:
        source = ids
        if not all(hasattr(source, name) for name in ("n_tokens", "n_sentences", "read_ids", "read_offsets")):
            raise TypeError(
                f"offsets is None, so ids must be a TokenSource (e.g. dlflow.text.TokenIds), not {type(ids).__name__}"
            )
        if source.n_tokens <= 0:
            raise ValueError(f"{source!r} holds no token: there is nothing to train on")
    else:
        ids, offsets = _check_arrays(ids, offsets, len(counts) if remap is None else len(remap))
        if remap is None and (counts == 0)[ids].any():
            raise ValueError("ids contains words whose count is 0; counts must count the corpus")
        source = _ArraySource(ids, offsets)
    if remap is None:  # the ids are vocabulary ids (checked above for arrays: none has count 0)
        remap = np.where(counts > 0, np.arange(len(counts)), -1)
    remap = _check_remap(remap, counts)
    device = select_device(config.device)
    engine = config.engine if config.engine != "auto" else ("torch" if device.type == "cuda" else "kernel")
    if engine == "kernel" and device.type != "cpu":
        raise ValueError("Word2VecConfig.engine 'kernel' runs on the CPU only; use device='cpu' or engine='torch'")
    n_workers = 1 if config.deterministic or device.type == "cuda" else (config.threads or os.cpu_count() or 1)

    generator = torch.Generator().manual_seed(config.seed)
    model = Word2Vec(len(counts), config.dim, generator=generator).to(device)
    corpus = _Corpus(source, counts, config, remap)
    n_tokens = source.n_tokens
    vocab_size = int(np.count_nonzero(counts))
    batch_words = _batch_words(config, vocab_size, engine)
    n_jobs = -(-n_tokens // batch_words) * config.epochs
    feed = _feed(source, _jobs(n_tokens, config, vocab_size, engine), batch_words)
    compile_seconds = time.perf_counter()
    run_job = _kernel_runner(model, corpus, config) if engine == "kernel" else _torch_runner(model, corpus, config, device)
    compile_seconds = time.perf_counter() - compile_seconds
    tokens = corpus_tokens or n_tokens
    total_words = n_tokens * config.epochs

    events: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
    stop = threading.Event()
    feed_lock = threading.Lock()
    first = next(feed)  # the corpus' first window is read before the clock starts
    jobs = chain([first], feed)
    del first

    def next_job() -> _Job | None:  # the next contiguous range, read by whichever worker is free
        with feed_lock:
            return next(jobs, None)

    def worker() -> None:
        try:
            while not stop.is_set() and (job := next_job()) is not None:
                loss = run_job(job)
                job.tokens = job.starts = None  # a window leaves memory once its last job is done
                events.put(("done", (job, loss)))
        except BaseException as error:  # surfaced in the calling thread
            events.put(("error", error))

    previous_threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)  # parallelism comes from the worker threads (Hogwild)
    bar = _progress_bar(total_words, config.mode, progress)
    threads = [threading.Thread(target=worker, name=f"word2vec-{i}", daemon=True) for i in range(n_workers)]
    loss_history: list[float] = []
    try:
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        words_done, finished, losses = 0, 0, []
        report_every = max(1, math.ceil(n_tokens / _REPORTS_PER_EPOCH))
        next_report = report_every
        while finished < n_jobs:
            kind, payload = events.get()
            if kind == "error":
                raise payload
            job, loss = payload
            finished += 1
            words_done += job.stop - job.start
            if loss is not None:
                losses.append(loss)
            elapsed = time.perf_counter() - started
            speed = words_done / n_tokens * tokens / elapsed
            if bar is not None:
                bar.update(job.stop - job.start)
                bar.set_postfix_str(f"{speed / 1e3:,.0f}k words/s, epoch {job.epoch + 1}", refresh=False)
            if words_done >= next_report or finished == n_jobs:
                next_report = (words_done // report_every + 1) * report_every
                fraction = words_done / total_words
                update = {
                    "epoch": job.epoch + 1,
                    "progress": fraction,
                    "words_per_second": speed,
                    "lr": config.alpha - (config.alpha - config.min_alpha) * fraction,
                    "loss": float(np.mean(losses)) if losses else float("nan"),
                }
                losses = []
                loss_history.append(update["loss"])
                if bar is None:  # no terminal: a few plain lines per epoch instead of a bar
                    logger.info(
                        "word2vec %s: epoch %d, %.0f%% done, %.0fk words/s, lr %.5f, loss %.4f",
                        config.mode, update["epoch"], 100 * fraction, speed / 1e3, update["lr"], update["loss"],
                    )  # fmt: skip
                if on_progress is not None:
                    on_progress(update)
    finally:
        stop.set()  # the workers finish the job they hold
        for thread in threads:
            if thread.ident is not None:  # started
                thread.join()
        if bar is not None:
            bar.close()
        torch.set_num_threads(previous_threads)

    seconds = time.perf_counter() - started
    w_in, w_out = model.input_embeddings.data, model.output_embeddings.data
    return Word2VecResult(
        input_vectors=w_in.cpu().numpy().astype(np.float32, copy=False),
        words_per_second=tokens * config.epochs / seconds,
        seconds=seconds,
        words_processed=total_words,
        loss_history=loss_history,
        output_vectors=w_out.cpu().numpy().astype(np.float32, copy=False),
        engine=engine,
        threads=n_workers,
        compile_seconds=compile_seconds,
        startup_seconds=started - called,
    )


def _kernel_runner(model: Word2Vec, corpus: _Corpus, config: Word2VecConfig) -> Callable[[_Job], float | None]:
    """``run(job) -> mean loss`` with the compiled kernel, compiled (or loaded from numba's cache) here."""
    from dlflow.training.word2vec_kernel import SIGMOID_TABLE, train_job

    w_in, w_out = model.input_embeddings.data.numpy(), model.output_embeddings.data.numpy()
    noise = corpus.noise  # _TABLE_SIZE entries, a power of two
    skipgram = config.mode == "skipgram"
    probe = np.zeros(1, dtype=np.int32)  # compile before the clock starts, on a job that changes nothing
    probe.flags.writeable = False  # the corpus' ids come read-only: the same compiled signature
    nowhere = np.full(1, -1, dtype=np.int32)
    train_job(
        w_in, w_out, probe, np.zeros(0, np.int64), nowhere, corpus.keep, noise, SIGMOID_TABLE, 1, 1, 0.0, skipgram, 0
    )  # fmt: skip

    def run(job: _Job) -> float | None:
        trained, loss, examples = train_job(
            w_in, w_out, job.tokens, job.starts, corpus.remap, corpus.keep, noise, SIGMOID_TABLE,
            config.window, config.negative, job.lr, skipgram, config.seed * 1_000_003 + job.index,
        )  # fmt: skip
        if trained < 0:
            bad = job.tokens[(job.tokens < 0) | (job.tokens >= len(corpus.remap))][0]
            raise ValueError(
                f"token id {bad} in tokens {job.start:,}-{job.stop:,} of {corpus.source!r} is outside the "
                f"{len(corpus.remap):,} ids its remap covers: the corpus and its vocabulary do not belong together"
            )
        return loss / examples if examples else None

    return run


def _torch_runner(
    model: Word2Vec, corpus: _Corpus, config: Word2VecConfig, device: torch.device
) -> Callable[[_Job], float | None]:
    """``run(job) -> mean loss (every few jobs)`` with tensor operations on ``device``."""
    w_in, w_out = model.input_embeddings.data, model.output_embeddings.data
    step = _cbow_step if config.mode == "cbow" else _skipgram_step

    def run(job: _Job) -> float | None:
        if len(job.tokens) and (job.tokens.min() < 0 or job.tokens.max() >= len(corpus.remap)):
            raise ValueError(f"token ids in tokens {job.start:,}-{job.stop:,} lie outside the {len(corpus.remap):,} of remap")
        prepared = _prepare_job(corpus, job, np.random.default_rng([config.seed, job.index]))
        if prepared is None:
            return None
        batch = {k: torch.from_numpy(v).to(device, non_blocking=True) for k, v in prepared.items()}
        batch["negative"] = config.negative
        return step(w_in, w_out, batch, job.lr, job.index % _LOSS_EVERY == 0)

    return run


def _progress_bar(total: int, mode: str, enabled: bool) -> Any:
    """A tqdm bar where stderr is a terminal, else None."""
    if not enabled or not sys.stderr.isatty():
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="word", unit_scale=True, desc=f"word2vec {mode}", mininterval=0.5)
