"""Per-record input signals that monitoring compares with the reference: cheap, readable, one row per record.

Images (pixel values 0-255, ``(N, H, W, C)``): ``brightness`` (mean pixel),
``contrast`` (pixel standard deviation), ``edges`` (mean absolute difference
between horizontally and vertically neighbouring pixels: noise raises it, blur
lowers it) and ``dark_fraction`` (share of pixels below 25: the background).
Sentences (token ids and lengths): ``length`` (tokens) and ``oov_rate`` (share
of tokens the vocabulary does not know).
"""

from __future__ import annotations

import numpy as np

IMAGE_SIGNALS = ("brightness", "contrast", "edges", "dark_fraction")
TEXT_SIGNALS = ("length", "oov_rate")
DARK_BELOW = 25.0


def image_signals(images: np.ndarray) -> np.ndarray:
    """float64 ``(N, 4)``: :data:`IMAGE_SIGNALS` of ``(N, H, W, C)`` (or ``(N, H, W)``) images, values 0-255."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4:
        raise ValueError(f"images must be (N, H, W[, C]), got shape {images.shape}")
    pixels = images.astype(np.float32, copy=False)
    flat = pixels.reshape(len(pixels), -1)
    across = np.abs(np.diff(pixels, axis=2)).reshape(len(pixels), -1).mean(axis=1)
    down = np.abs(np.diff(pixels, axis=1)).reshape(len(pixels), -1).mean(axis=1)
    return np.stack([flat.mean(axis=1), flat.std(axis=1), (across + down) / 2, (flat < DARK_BELOW).mean(axis=1)], axis=1).astype(
        np.float64
    )


def sentence_signals(ids: np.ndarray, lengths: np.ndarray, unknown_id: int) -> np.ndarray:
    """float64 ``(N, 2)``: :data:`TEXT_SIGNALS` of right-padded token ids ``(N, T)`` with their ``lengths``."""
    ids, lengths = np.asarray(ids), np.asarray(lengths)
    if ids.ndim != 2 or lengths.shape != (len(ids),):
        raise ValueError(f"ids must be (N, T) and lengths (N,), got {ids.shape} and {lengths.shape}")
    within = np.arange(ids.shape[1])[None, :] < lengths[:, None]
    unknown = ((ids == unknown_id) & within).sum(axis=1)
    return np.stack([lengths.astype(np.float64), unknown / np.maximum(lengths, 1)], axis=1)
