"""Input drift: cheap statistics of each model input against a fingerprint taken at build time.

Self-contained (numpy only): the builder computes the fingerprint from its validation images
(`fingerprint(image_stats(batch))`, written as drift_reference.json next to `mtqa_preprocess`),
and the preprocess model scores every image it decodes against it.

The statistics are those of the normalised input the network sees: the mean of each colour
channel (brightness and colour cast) and the standard deviation over the pixels (contrast).
They catch a lighting change, a camera or exposure swap, a new product of another colour; they
do not catch a change in shape or texture at the same brightness
(a new defect type, a different part on the same background) - the presence-probability
histograms of the postprocess model are the signal for those.
"""

from __future__ import annotations

import numpy as np

FEATURES = ("mean_r", "mean_g", "mean_b", "contrast")
WINDOW = 128  # images the drift score reads (per model instance): chance level ~0.1
GRID = 4  # statistics read every GRID-th pixel row and column


def image_stats(images: np.ndarray) -> np.ndarray:
    """[n, 4] float64 statistics (FEATURES) of a batch of normalised inputs [n, 3, S, S].

    Read on every `GRID`-th row and column (1/16 of the pixels): the means and the spread of a
    regular grid sample differ from the full image's by far less than images differ from each
    other, at a tenth of the cost (about 10 us an image at 128 px instead of 115).
    """
    x = np.asarray(images, dtype=np.float32)[:, :, ::GRID, ::GRID]
    means = x.mean(axis=(2, 3))
    contrast = x.reshape(len(x), -1).std(axis=1)
    return np.concatenate([means, contrast[:, None]], axis=1).astype(np.float64)


def fingerprint(stats: np.ndarray) -> dict:
    """The reference: per-feature mean, spread and range of `stats` (from `image_stats`)."""
    stats = np.asarray(stats, dtype=np.float64)
    if stats.ndim != 2 or len(stats) < 2:
        raise ValueError(f"a drift fingerprint needs stats of >= 2 images, got {stats.shape}")
    return {
        "features": list(FEATURES),
        "images": int(len(stats)),
        "mean": stats.mean(axis=0).tolist(),
        "std": stats.std(axis=0).tolist(),
        "low": stats.min(axis=0).tolist(),
        "high": stats.max(axis=0).tolist(),
    }


def outside(stats: np.ndarray, reference: dict) -> np.ndarray:
    """Bool [n]: the images with any statistic outside the reference's range."""
    low, high = np.asarray(reference["low"]), np.asarray(reference["high"])
    return ((stats < low) | (stats > high)).any(axis=1)


def shift(stats: np.ndarray, reference: dict) -> float:
    """Drift score of a set of images: the largest shift of a feature's mean from the
    reference's, in reference standard deviations (0 = same mean; a set of n images drawn from
    the reference reads about 1/sqrt(n) by chance)."""
    mean, std = np.asarray(reference["mean"]), np.asarray(reference["std"])
    return float((np.abs(stats.mean(axis=0) - mean) / np.maximum(std, 1e-6)).max())


class DriftWindow:
    """The statistics of the last `size` images scored (a ring), and their drift score."""

    def __init__(self, reference: dict, size: int = WINDOW) -> None:
        self.reference = reference
        self.ring = np.zeros((size, len(reference["mean"])), dtype=np.float64)
        self.filled, self.next = 0, 0

    def add(self, stats: np.ndarray) -> float:
        """Add the rows of `stats`; returns the drift score of the window."""
        for row in np.asarray(stats, dtype=np.float64)[-len(self.ring) :]:
            self.ring[self.next] = row
            self.next = (self.next + 1) % len(self.ring)
        self.filled = min(self.filled + len(stats), len(self.ring))
        return shift(self.ring[: self.filled], self.reference) if self.filled else 0.0
