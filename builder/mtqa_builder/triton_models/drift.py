"""Input drift: cheap statistics of each model input against a fingerprint taken at build time.

Self-contained (numpy only): the builder computes the fingerprint from its validation images
(`fingerprint(images, sizes)`, written as drift_reference.json next to `mtqa_preprocess`), and
the preprocess model scores every image it decodes against it (`Reference`, `DriftWindow`).

The statistics (FEATURES), read on a grid of ~32x32 pixels of the normalised input:
- `mean_r/g/b`: the mean of each colour channel (brightness, colour cast);
- `contrast`: the standard deviation over the sampled pixels;
- `hist_0..7`: the share of pixels in 8 grey-level bins whose edges are the reference's pooled
  octiles (each bin holds 1/8 of the reference's pixels), so a change of the tone curve at the
  same mean and spread (gamma, clipping, a darker background with brighter parts) shows;
- `log_height/log_width/log_aspect`: the upright size the server received, before the resize.

Every statistic is scored the same way: the shift of the window's mean from the reference's, in
reference standard deviations, with the deviation floored at the statistic's RESOLUTION (a
reference of same-size images has deviation 0: a 5 % size change then reads 1); the score is
the largest over the statistics, and each of GROUPS (brightness: the colour means; contrast;
histogram: the bins; size) scores the largest over its own, so an alert can say what moved.
An image is "outside" when any statistic leaves the reference's [min, max] range widened by its
resolution.

They catch a lighting or exposure change, a camera swap (another size or aspect ratio, another
sensor's tone curve), a new product of another colour or brightness; they do not catch a change
in shape or texture at the same tones and size (a new defect type, a different part on the same
background), nor a camera swap to the same size and tones - the presence-probability histograms
of the postprocess model are the signal for those.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

BINS = 8
FEATURES = (
    ("mean_r", "mean_g", "mean_b", "contrast")
    + tuple(f"hist_{i}" for i in range(BINS))
    + ("log_height", "log_width", "log_aspect")
)
# Smallest shift that counts as one deviation: normalised units (~0.6 grey levels) for the
# means and the contrast, a share of pixels for the bins, a relative size (log) for the sizes.
RESOLUTION = dict.fromkeys(FEATURES[:4], 0.01) | dict.fromkeys(FEATURES[4 : 4 + BINS], 0.01)
RESOLUTION |= dict.fromkeys(FEATURES[4 + BINS :], 0.05)
# What a quality engineer reads off a drift alert: lighting/exposure or product colour moves
# `brightness`; another tone curve or sensor moves `contrast` and `histogram`; a camera swap to
# another resolution or crop moves `size`.
GROUPS = {
    "brightness": FEATURES[:3],
    "contrast": FEATURES[3:4],
    "histogram": FEATURES[4 : 4 + BINS],
    "size": FEATURES[4 + BINS :],
}
WINDOW = 128  # images the drift score reads (per model instance)
SAMPLE = 32  # statistics read on a regular grid of ~SAMPLE x SAMPLE pixels of any input size
# Bin edges of a reference without its own (written before the bins): never scored, as such a
# reference names no hist_* feature; they only keep image_stats' shape.
DEFAULT_EDGES = np.linspace(-1.5, 1.5, BINS - 1)


def _sample(images: np.ndarray) -> np.ndarray:
    """A regular grid of the pixels of normalised inputs [n, 3, S, S], contiguous (numpy reduces
    a strided view several times slower than it copies it once)."""
    x = np.asarray(images, dtype=np.float32)
    step = max(1, -(-x.shape[-1] // SAMPLE))
    return np.ascontiguousarray(x[:, :, ::step, ::step])


def image_stats(images: np.ndarray, sizes: np.ndarray, edges=DEFAULT_EDGES) -> np.ndarray:
    """[n, len(FEATURES)] float64 statistics of normalised inputs [n, 3, S, S] whose upright
    original sizes were `sizes` [n, 2] (height, width), grey levels binned at `edges`.

    Read on a grid of ~32x32 pixels (every 4th at 128 px, every 16th at 512 px): the means, the
    spread and the bin shares of a regular grid sample differ from the full image's by far less
    than images differ from each other, at a cost that does not grow with the input size
    (~25 us an image in 4-image requests, docs/serving.md).
    """
    x = _sample(images)
    n = len(x)
    means = x.mean(axis=(2, 3))
    flat = x.reshape(n, -1)
    contrast = flat.std(axis=1)
    grey = x.mean(axis=1).reshape(n, -1)
    bins = np.searchsorted(np.asarray(edges, dtype=np.float32), grey)
    bins += (np.arange(n) * BINS)[:, None]
    hist = np.bincount(bins.ravel(), minlength=n * BINS).reshape(n, BINS) / grey.shape[1]
    hw = np.log(np.maximum(np.asarray(sizes, dtype=np.float64).reshape(n, 2), 1.0))
    return np.concatenate(
        [means, contrast[:, None], hist, hw, hw[:, 1:] - hw[:, :1]], axis=1, dtype=np.float64
    )


def grey_edges(images: np.ndarray) -> np.ndarray:
    """The BINS - 1 inner edges that split the pooled grey levels of `images` into octiles."""
    grey = _sample(images).mean(axis=1).ravel()
    return np.quantile(grey, np.arange(1, BINS) / BINS).astype(np.float64)


def fingerprint(images: np.ndarray, sizes: np.ndarray) -> dict:
    """The reference of normalised inputs `images` with original `sizes`: the grey-level bin
    edges and each statistic's mean, spread and range (JSON-ready)."""
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4 or len(images) < 2:
        raise ValueError(f"a drift fingerprint needs >= 2 images [n, 3, S, S], got {images.shape}")
    edges = grey_edges(images)
    stats = image_stats(images, sizes, edges)
    return {
        "features": list(FEATURES),
        "images": int(len(stats)),
        "hist_edges": edges.tolist(),
        "mean": stats.mean(axis=0).tolist(),
        "std": stats.std(axis=0).tolist(),
        "low": stats.min(axis=0).tolist(),
        "high": stats.max(axis=0).tolist(),
    }


@dataclass(frozen=True)
class Reference:
    """A fingerprint ready to score: the statistics it holds (an older one holds fewer: only
    those are scored), their means, floored deviations and widened ranges."""

    columns: np.ndarray  # indices into FEATURES of the statistics the fingerprint holds
    mean: np.ndarray
    scale: np.ndarray  # std floored at RESOLUTION
    low: np.ndarray  # min - RESOLUTION
    high: np.ndarray  # max + RESOLUTION
    edges: np.ndarray

    @classmethod
    def from_dict(cls, data: dict) -> Reference:
        known = [(FEATURES.index(f), i) for i, f in enumerate(data["features"]) if f in FEATURES]
        if not known:
            raise ValueError(f"drift reference names no known statistic: {data['features']}")
        columns, rows = (np.asarray(v, dtype=np.intp) for v in zip(*known, strict=True))

        def held(key: str) -> np.ndarray:
            return np.asarray(data[key], dtype=np.float64)[rows]

        floor = np.asarray([RESOLUTION[FEATURES[c]] for c in columns])
        return cls(
            columns=columns,
            mean=held("mean"),
            scale=np.maximum(held("std"), floor),
            low=held("low") - floor,
            high=held("high") + floor,
            edges=np.asarray(data.get("hist_edges", DEFAULT_EDGES), dtype=np.float32),
        )

    @property
    def features(self) -> list[str]:
        return [FEATURES[c] for c in self.columns]

    @cached_property
    def groups(self) -> tuple[tuple[str, np.ndarray], ...]:
        """(name, positions in `columns`) of each group of GROUPS the fingerprint holds."""
        held = self.features
        return tuple(
            (name, np.asarray([i for i, f in enumerate(held) if f in members]))
            for name, members in GROUPS.items()
            if any(f in members for f in held)
        )

    def shifts(self, stats: np.ndarray) -> np.ndarray:
        """Per held statistic: |mean of `stats` - reference mean| in floored deviations."""
        return np.abs(np.asarray(stats)[:, self.columns].mean(axis=0) - self.mean) / self.scale

    def shift(self, stats: np.ndarray) -> float:
        """Drift score of a set of images: the largest of `shifts` (0 = same means; a set of n
        images drawn from the reference reads a few times 1/sqrt(n) by chance)."""
        return float(self.shifts(stats).max())

    def group_shifts(self, shifts: np.ndarray) -> dict[str, float]:
        """Per held group of GROUPS: the largest of its statistics' `shifts` (their maximum is
        the drift score)."""
        return {name: float(shifts[at].max()) for name, at in self.groups}

    def outside(self, stats: np.ndarray) -> np.ndarray:
        """Bool [n]: the images with any held statistic outside the reference's range."""
        held = np.asarray(stats)[:, self.columns]
        return ((held < self.low) | (held > self.high)).any(axis=1)


class DriftWindow:
    """The statistics of the last `size` images scored (a ring), their drift score and, in
    `by_group`, the score of each held group of GROUPS (0 before any image)."""

    def __init__(self, reference: Reference, size: int = WINDOW) -> None:
        self.reference = reference
        self.ring = np.zeros((size, len(FEATURES)), dtype=np.float64)
        self.filled, self.next = 0, 0
        self.by_group = {name: 0.0 for name, _ in reference.groups}

    def add(self, stats: np.ndarray) -> float:
        """Add the rows of `stats`; returns the drift score of the window (and sets by_group)."""
        for row in np.asarray(stats, dtype=np.float64)[-len(self.ring) :]:
            self.ring[self.next] = row
            self.next = (self.next + 1) % len(self.ring)
        self.filled = min(self.filled + len(stats), len(self.ring))
        if not self.filled:
            return 0.0
        shifts = self.reference.shifts(self.ring[: self.filled])
        self.by_group = self.reference.group_shifts(shifts)
        return float(shifts.max())
