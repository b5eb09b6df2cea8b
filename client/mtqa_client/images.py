"""Turns what callers pass to `inspect` into encoded image bytes plus the original size.

Accepted: a uint8 array (HxW grayscale, HxWx1 or HxWx3 RGB), a file path (str or PathLike),
encoded bytes (PNG, JPEG, BMP, ...), or a list/tuple of those. Arrays are encoded as lossless PNG
so the server sees exactly the caller's pixels. Bytes and files are checked with Pillow before
they leave the process (a full decode), so corrupt data fails here with an
`InvalidInputError` instead of a round trip; pass `validate=False` to let the server judge.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from mtqa_client.errors import InvalidInputError

ImageLike = np.ndarray | bytes | bytearray | memoryview | str | os.PathLike
ImagesLike = ImageLike | Sequence[ImageLike]


@dataclass(frozen=True)
class EncodedImage:
    """One image ready to send: its encoded bytes, original (height, width) and a source label."""

    data: bytes
    size: tuple[int, int]
    source: str


def is_batch(x: object) -> bool:
    """True when `x` is a list/tuple of images rather than a single image."""
    return isinstance(x, (list, tuple))


def encode_images(x: ImagesLike, *, validate: bool = True) -> list[EncodedImage]:
    """Encode one image or a list of them; raises InvalidInputError on anything unusable."""
    items = list(x) if is_batch(x) else [x]
    if not items:
        raise InvalidInputError("no images given (empty list)")
    return [_encode_one(item, f"item {i}", validate) for i, item in enumerate(items)]


def _encode_one(item: object, label: str, validate: bool) -> EncodedImage:
    if isinstance(item, np.ndarray):
        return _encode_array(item, label)
    if isinstance(item, (bytes, bytearray, memoryview)):
        return _check_bytes(bytes(item), label, validate)
    if isinstance(item, (str, os.PathLike)):
        path = Path(item)
        if not path.is_file():
            raise InvalidInputError(f"{label}: no such image file: {path}")
        return _check_bytes(path.read_bytes(), str(path), validate)
    raise InvalidInputError(
        f"{label}: unsupported image type {type(item).__name__}; "
        "pass a uint8 numpy array, encoded bytes or a file path"
    )


def _encode_array(arr: np.ndarray, label: str) -> EncodedImage:
    if arr.dtype != np.uint8:
        raise InvalidInputError(f"{label}: image arrays must be uint8, got {arr.dtype}")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 3)):
        raise InvalidInputError(
            f"{label}: image arrays must be HxW or HxWx3, got shape {tuple(arr.shape)}"
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InvalidInputError(f"{label}: image array is empty, shape {tuple(arr.shape)}")
    buf = io.BytesIO()
    # compress_level=1: encoding speed matters more than a few bytes on a local network.
    Image.fromarray(np.ascontiguousarray(arr)).save(buf, format="PNG", compress_level=1)
    return EncodedImage(buf.getvalue(), (int(arr.shape[0]), int(arr.shape[1])), label)


def _check_bytes(data: bytes, label: str, validate: bool) -> EncodedImage:
    if not data:
        raise InvalidInputError(f"{label}: empty image data")
    try:
        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size
            if validate:
                img.load()  # a full decode: `verify` misses truncated JPEGs
    except Image.DecompressionBombError as exc:
        # Too many pixels to decode safely: refused whatever `validate` says.
        raise InvalidInputError(f"{label}: image too large ({exc})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        if validate:
            raise InvalidInputError(f"{label}: not a decodable image ({exc})") from None
        return EncodedImage(data, (0, 0), label)
    return EncodedImage(data, (int(height), int(width)), label)
