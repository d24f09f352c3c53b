"""Seeded, label-stratified splits of a labelled table (numpy only).

``stratified_indices`` draws, from each label's rows in a seeded random
order, its rounded share for the selected part, so both parts keep the label
proportions; the row indices come back sorted.
"""

from __future__ import annotations

import numpy as np


def stratified_indices(labels: np.ndarray, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(selected, rest)`` row indices: ``size`` rows drawn per label in proportion, and the others.

    Each label contributes ``round(size * its share)`` rows, adjusted by whole
    rows so that exactly ``size`` are selected (largest remainders first).
    """
    labels = np.asarray(labels)
    n = len(labels)
    if not 0 < size < n:
        raise ValueError(f"size must be between 1 and {n - 1} (the rows available minus one), got {size}")
    values, counts = np.unique(labels, return_counts=True)
    exact = counts * (size / n)
    take = np.floor(exact).astype(np.int64)
    for i in np.argsort(-(exact - take), kind="stable")[: size - take.sum()]:
        take[i] += 1
    rng = np.random.default_rng(seed)
    selected = np.concatenate([rng.permutation(np.flatnonzero(labels == value))[:k] for value, k in zip(values, take)])
    mask = np.zeros(n, dtype=bool)
    mask[selected] = True
    return np.flatnonzero(mask), np.flatnonzero(~mask)
