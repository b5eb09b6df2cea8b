"""Train-time augmentation on normalised tensors: dihedral flips/rotations, brightness, contrast."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class Augmenter:
    """Random flip + 90-degree rotation (masks follow) and mild brightness/contrast (image only).

    Works on the normalised float32 image [3,S,S]: brightness and contrast are applied in pixel
    space (0..1) by undoing and redoing the normalisation (``mean``, ``std`` of the call), then
    clipped to the valid range.
    """

    def __init__(self, brightness: float = 0.1, contrast: float = 0.15) -> None:
        self.brightness = brightness
        self.contrast = contrast

    def __call__(
        self,
        image: np.ndarray,
        mask: np.ndarray,
        rng: np.random.Generator,
        mean: Sequence[float],
        std: Sequence[float],
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return augmented copies of ``image`` [3,S,S] and ``mask`` [K,S,S]."""
        m = np.asarray(mean, dtype=np.float32).reshape(3, 1, 1)
        s = np.asarray(std, dtype=np.float32).reshape(3, 1, 1)
        k = int(rng.integers(4))
        image, mask = np.rot90(image, k, axes=(1, 2)), np.rot90(mask, k, axes=(1, 2))
        if rng.random() < 0.5:
            image, mask = image[:, :, ::-1], mask[:, :, ::-1]
        gain = 1.0 + rng.uniform(-self.contrast, self.contrast)
        shift = rng.uniform(-self.brightness, self.brightness)
        pixels = np.clip((image * s + m - 0.5) * gain + 0.5 + shift, 0.0, 1.0)
        image = (pixels - m) / s
        return np.ascontiguousarray(image, dtype=np.float32), np.ascontiguousarray(mask)
