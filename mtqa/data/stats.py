"""Class frequencies of a dataset, for imbalance handling (e.g. BCE ``pos_weight``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch.utils.data import Dataset


@dataclass
class ClassStats:
    """Per-class positive rates: image-level presence and pixel share (over masked items)."""

    classes: list[str]
    presence_rate: np.ndarray  # [K] fraction of items where the class is present
    pixel_rate: np.ndarray  # [K] fraction of pixels of masked items that belong to the class
    items: int
    masked_items: int

    def pos_weight(self, kind: str = "presence", cap: float = 100.0) -> np.ndarray:
        """(1 - p) / p per class for ``presence`` or ``pixel`` rates, capped (absent -> cap)."""
        p = self.presence_rate if kind == "presence" else self.pixel_rate
        with np.errstate(divide="ignore"):
            w = np.where(p > 0, (1 - p) / np.maximum(p, 1e-12), cap)
        return np.minimum(w, cap)

    def to_dict(self) -> dict:
        """JSON-able form."""
        return {
            "classes": self.classes,
            "presence_rate": [round(float(v), 6) for v in self.presence_rate],
            "pixel_rate": [round(float(v), 6) for v in self.pixel_rate],
            "items": self.items,
            "masked_items": self.masked_items,
        }


def class_stats(dataset: Dataset, classes: list[str], max_items: int | None = 512) -> ClassStats:
    """Measure class rates on up to ``max_items`` evenly spaced items of a contract dataset."""
    n = len(dataset)
    if n == 0:
        return ClassStats(list(classes), np.zeros(len(classes)), np.zeros(len(classes)), 0, 0)
    count = n if max_items is None else min(n, max_items)
    picks = np.linspace(0, n - 1, count).astype(int)
    presence = np.zeros(len(classes))
    pixels = np.zeros(len(classes))
    total_pixels = 0
    masked = 0
    for i in picks:
        item = dataset[int(i)]
        presence += item["presence"].numpy()
        if bool(item["has_mask"]):
            mask = item["mask"].numpy()
            pixels += mask.reshape(mask.shape[0], -1).sum(axis=1)
            total_pixels += mask.shape[1] * mask.shape[2]
            masked += 1
    return ClassStats(
        classes=list(classes),
        presence_rate=presence / count,
        pixel_rate=pixels / max(total_pixels, 1),
        items=count,
        masked_items=masked,
    )
