"""Image preprocessing shared verbatim by training and the Triton preprocess model.

This file must stay self-contained (numpy + pillow only, no torch, no mtqa imports): the serving
builder copies it next to the Triton `mtqa_preprocess` model so that serving and training resize
(bilinear for images, nearest for masks) and normalise identically. Decoding encoded bytes lives
in decode.py, which travels beside this file the same way.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
from PIL import Image


def to_rgb(image: np.ndarray) -> np.ndarray:
    """Return uint8 HxWx3 from a uint8 HxW, HxWx1, HxWx3 or HxWx4 (alpha dropped) array."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got dtype {image.dtype}")
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim == 3 and image.shape[2] == 1:
        return np.repeat(image, 3, axis=2)
    if image.ndim == 3 and image.shape[2] in (3, 4):
        return np.ascontiguousarray(image[:, :, :3])
    raise ValueError(f"expected an HxW or HxWx{{1,3,4}} image, got shape {image.shape}")


RESIZE_MODES = ("squash", "letterbox")


def fit_size(height: int, width: int, size: int, mode: str = "squash") -> tuple[int, int]:
    """(h, w) an image of `height` x `width` takes inside the size x size model input.

    `squash` stretches it to fill the square; `letterbox` keeps its aspect (long side = `size`)
    and the rest of the square is padding, below and to the right of the image (top-left anchor,
    so a model pixel maps back to the original by one scale factor).
    """
    if mode == "squash":
        return size, size
    if mode != "letterbox":
        raise ValueError(f"resize mode must be one of {RESIZE_MODES}, got {mode!r}")
    scale = size / max(height, width)
    return max(1, min(size, round(height * scale))), max(1, min(size, round(width * scale)))


def _fit(img: Image.Image, size: int, mode: str, resample: int, fill: int | tuple) -> Image.Image:
    h, w = fit_size(img.height, img.width, size, mode)
    if (img.height, img.width) != (h, w):
        img = img.resize((w, h), resample)
    if (h, w) == (size, size):
        return img
    canvas = Image.new(img.mode, (size, size), fill)
    canvas.paste(img, (0, 0))
    return canvas


def resize_image(
    image: np.ndarray, size: int, mode: str = "squash", fill: Sequence[int] = (0, 0, 0)
) -> np.ndarray:
    """Resize a uint8 image to size x size RGB (pillow bilinear), squashed or letterboxed.

    Letterbox padding takes the colour `fill` (the normalisation mean, so it normalises to 0).
    """
    rgb = to_rgb(image)
    if rgb.shape[:2] == (size, size):
        return rgb
    fill = tuple(int(v) for v in fill)
    return np.asarray(_fit(Image.fromarray(rgb), size, mode, Image.BILINEAR, fill))


def resize_mask(mask: np.ndarray, size: int, mode: str = "squash") -> np.ndarray:
    """Resize a uint8 class-index mask HxW to size x size by nearest neighbour (labels stay);
    letterbox padding is background (0)."""
    mask = np.asarray(mask)
    if mask.ndim != 2 or mask.dtype != np.uint8:
        raise ValueError(f"expected a uint8 HxW mask, got {mask.dtype} {mask.shape}")
    if mask.shape == (size, size):
        return mask
    return np.asarray(_fit(Image.fromarray(mask), size, mode, Image.NEAREST, 0))


def pad_fill(mean: Sequence[float]) -> tuple[int, int, int]:
    """The uint8 colour that normalises to ~0 under `mean`: what letterbox padding is."""
    return tuple(int(round(min(max(float(m), 0.0), 1.0) * 255)) for m in mean)  # type: ignore[return-value]


@functools.lru_cache(maxsize=8)
def _normalise_table(mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    """[3,256] float32: (v/255 - mean) / std for every uint8 value v, per channel."""
    m = np.asarray(mean, dtype=np.float32).reshape(3, 1)
    s = np.asarray(std, dtype=np.float32).reshape(3, 1)
    values = np.arange(256, dtype=np.float32).reshape(1, 256) * np.float32(1.0 / 255.0)
    return (values - m) / s


def normalise(rgb: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """Map uint8 HxWx3 to float32 [3,H,W] as (x/255 - mean) / std per channel.

    A lookup into the 256 precomputed values of each channel: the same float32 arithmetic as
    computing it per pixel, in one pass (0.13 -> 0.05 ms at 128 px; serving runs it per image).
    """
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected a uint8 HxWx3 image, got {rgb.dtype} {rgb.shape}")
    table = _normalise_table(tuple(map(float, mean)), tuple(map(float, std)))
    out = np.empty((3, *rgb.shape[:2]), dtype=np.float32)
    for c in range(3):
        np.take(table[c], rgb[:, :, c], out=out[c])
    return out


def preprocess_image(
    image: np.ndarray,
    size: int,
    mean: Sequence[float],
    std: Sequence[float],
    mode: str = "squash",
) -> np.ndarray:
    """Turn a uint8 HxW or HxWx3 image into the model input: float32 [3,size,size], normalised,
    squashed or letterboxed (`mode`, see `fit_size`)."""
    if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
        raise ValueError(f"mean and std need 3 values with std > 0, got {mean}, {std}")
    return normalise(resize_image(image, size, mode, pad_fill(mean)), mean, std)
