"""The CPU kernel of Word2Vec: one job of CBOW or skip-gram with negative sampling, compiled by numba.

``train_job`` runs word2vec.c's inner loop over one slice of the corpus and
updates the two embedding matrices in place: sub-sampling of frequent words,
a reduced window drawn per centre word that never crosses a sentence, and
``negative`` noise words per example drawn from the unigram^0.75 table, each
gradient step applied at once (as word2vec.c and gensim do). It releases the
GIL, so ``train_word2vec``'s worker threads run jobs side by side on shared
matrices without locks (Hogwild).

One departure, in skip-gram: the context words of one centre word share its
``negative`` noise words (Ji et al. 2016, "Parallelizing Word2Vec in Shared and
Distributed Memory"), where word2vec.c draws new ones for every pair. The
expected update is the same, and the shared rows stay in the core's cache
across the window instead of being fetched from memory for every pair.

Randomness comes from word2vec.c's linear congruential generator, seeded per
job: a run with one thread is deterministic, whatever the machine.

Compiled on first use (a few seconds, then cached on disk by numba); numba
installs from a wheel, so no compiler is needed.
"""

from __future__ import annotations

import math

import numba
import numpy as np

_MULTIPLIER = np.uint64(25214903917)
_INCREMENT = np.uint64(11)
_MAX_EXP = 6.0  # a score beyond +-6 saturates the sigmoid: that example takes no step (as in gensim)
_SIGMOID_STEPS = 1000  # ... which is tabulated in this many steps over [-6, 6), as in word2vec.c
SIGMOID_TABLE = (1.0 / (1.0 + np.exp(-((np.arange(_SIGMOID_STEPS) + 0.5) / _SIGMOID_STEPS * 2 - 1) * _MAX_EXP))).astype(
    np.float32
)
_MONITOR_EVERY = 16  # the loss (monitoring only) is computed for every 16th centre word


@numba.njit(nogil=True, cache=True, inline="always")
def _next(state: np.uint64) -> np.uint64:
    return state * _MULTIPLIER + _INCREMENT


@numba.njit(nogil=True, cache=True, inline="always")
def _uniform(state: np.uint64) -> float:
    """A float in [0, 1) from the generator's state (its upper 24 bits)."""
    return float(state >> np.uint64(40)) / 16777216.0


@numba.njit(nogil=True, fastmath=True, cache=True, inline="always")
def _step(
    h: np.ndarray,
    h_row: int,
    w_out: np.ndarray,
    target: int,
    label: float,
    alpha: np.float32,
    error: np.ndarray,
    sigmoid: np.ndarray,
) -> np.float32:
    """One logistic step of input vector ``h[h_row]`` against output vector ``w_out[target]``:
    adds the input's gradient to ``error``, updates the output vector; returns the score.

    Rows are indexed in place, never sliced: a slice of a shared matrix would count
    references on it, atomically, from every thread at once. Everything is float32, so
    that the loops over the vector run in SIMD registers; the sigmoid is read from ``sigmoid``.
    """
    score = np.float32(0.0)
    for d in range(h.shape[1]):
        score += h[h_row, d] * w_out[target, d]
    index = int((score + _MAX_EXP) * (_SIGMOID_STEPS / (2 * _MAX_EXP)))
    if index < 0 or index >= _SIGMOID_STEPS:  # saturated (|score| >= 6): no step, as in gensim
        return score
    probability = sigmoid[index]
    g = (np.float32(label) - probability) * alpha
    for d in range(h.shape[1]):
        error[d] += g * w_out[target, d]
        w_out[target, d] += g * h[h_row, d]
    return score


@numba.njit(nogil=True, cache=True, inline="always")
def _loss(score: np.float32, label: float) -> float:
    """-log of the probability the model gives the example's label (for monitoring)."""
    p = 1.0 / (1.0 + math.exp(-score)) if label > 0.5 else 1.0 / (1.0 + math.exp(score))
    return -math.log(max(p, 1e-7))


@numba.njit(nogil=True, fastmath=True, cache=True)
def train_job(
    w_in: np.ndarray,
    w_out: np.ndarray,
    tokens: np.ndarray,
    starts: np.ndarray,
    remap: np.ndarray,
    keep: np.ndarray,
    noise: np.ndarray,
    sigmoid: np.ndarray,
    window: int,
    negative: int,
    alpha: float,
    skipgram: bool,
    seed: int,
) -> tuple[int, float, int]:
    """Train on one job's tokens; returns (centre words trained, summed loss of the monitored
    examples, monitored examples), an example being one positive pair with its noise words;
    ``(-1, 0.0, 0)`` without touching the model when a token lies outside ``remap``.

    ``tokens`` are a contiguous range of the corpus; ``starts`` (sorted) are the positions in it
    where a sentence starts (the range's first token starts one too). ``remap`` gives each
    token's vocabulary id, or -1 for a word outside the vocabulary, which is dropped before
    sub-sampling and windows, as if it were not in the text. ``noise`` has a power-of-two
    length (drawing from it is a mask, not a division); ``sigmoid`` is ``SIGMOID_TABLE``.
    """
    state = np.uint64(seed) * _MULTIPLIER + np.uint64(1)
    mask = np.uint64(noise.shape[0] - 1)
    n = tokens.shape[0]
    types = remap.shape[0]
    kept = np.empty(n, dtype=np.int64)
    first = np.empty(n, dtype=np.int64)  # where the kept word's sentence starts among the kept words
    m, p, fresh = 0, 0, True
    for i in range(n):  # out-of-vocabulary words out, then sub-sampling of frequent words
        while p < starts.shape[0] and starts[p] <= i:
            fresh = True  # a sentence starts here
            p += 1
        if tokens[i] < 0 or tokens[i] >= types:  # checked before any update of the model
            return -1, 0.0, 0
        word = remap[tokens[i]]
        if word < 0:
            continue
        state = _next(state)
        if keep[word] >= 1.0 or _uniform(state) < keep[word]:
            kept[m] = word
            first[m] = m if fresh else first[m - 1]
            fresh = False
            m += 1
    end = np.empty(m, dtype=np.int64)  # ... and where it ends (exclusive)
    for i in range(m - 1, -1, -1):
        end[i] = i + 1 if i == m - 1 or first[i + 1] != first[i] else end[i + 1]

    dim = w_in.shape[1]
    lr = np.float32(alpha)
    hidden = np.empty((1, dim), dtype=np.float32)  # a matrix of one row, for _step
    error = np.empty(dim, dtype=np.float32)
    noise_words = np.empty(negative, dtype=np.int64)
    trained, loss, examples = 0, 0.0, 0
    for i in range(m):
        word = kept[i]
        state = _next(state)
        reach = window - int((state >> np.uint64(16)) % np.uint64(window))  # the reduced window, 1..window
        start, stop = max(first[i], i - reach), min(end[i], i + reach + 1)  # never across a sentence
        if skipgram:
            for n in range(negative):  # the centre word's noise words, shared by its context words
                state = _next(state)
                noise_words[n] = noise[(state >> np.uint64(16)) & mask]
            for j in range(start, stop):  # each context word predicts the centre word
                if j == i:
                    continue
                context = kept[j]
                monitored = i % _MONITOR_EVERY == 0
                error[:] = 0.0
                score = _step(w_in, context, w_out, word, 1.0, lr, error, sigmoid)
                if monitored:
                    loss += _loss(score, 1.0)
                    examples += 1
                for n in range(negative):
                    target = noise_words[n]
                    if target != word:
                        score = _step(w_in, context, w_out, target, 0.0, lr, error, sigmoid)
                        if monitored:
                            loss += _loss(score, 0.0)
                for d in range(dim):
                    w_in[context, d] += error[d]
            trained += 1
            continue
        # CBOW: the mean of the context vectors predicts the centre word
        hidden[0, :] = 0.0
        count = 0
        for j in range(start, stop):
            if j != i:
                context = kept[j]
                for d in range(dim):
                    hidden[0, d] += w_in[context, d]
                count += 1
        if count == 0:
            continue
        scale = np.float32(1.0 / count)
        for d in range(dim):
            hidden[0, d] *= scale
        monitored = i % _MONITOR_EVERY == 0
        error[:] = 0.0
        score = _step(hidden, 0, w_out, word, 1.0, lr, error, sigmoid)
        if monitored:
            loss += _loss(score, 1.0)
            examples += 1
        for _ in range(negative):
            state = _next(state)
            target = noise[(state >> np.uint64(16)) & mask]
            if target != word:
                score = _step(hidden, 0, w_out, target, 0.0, lr, error, sigmoid)
                if monitored:
                    loss += _loss(score, 0.0)
        for j in range(start, stop):
            if j != i:
                context = kept[j]
                for d in range(dim):
                    w_in[context, d] += error[d]
        trained += 1
    return trained, loss, examples
