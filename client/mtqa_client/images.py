"""Turns what callers pass to `inspect` into encoded image bytes plus the original size.

Accepted: a uint8 array (HxW grayscale, HxWx1 or HxWx3 RGB), a file path (str or PathLike),
encoded bytes (PNG, JPEG, BMP, TIFF, ...), or a list/tuple of those. Arrays are encoded as lossless
PNG so the server sees exactly the caller's pixels. Bytes and files are checked before they leave
the process with the server's own decoder (`mtqa_client.decode`, a byte-identical copy of the one
the server and training use): the pixel count from the header first (over `max_pixels`, default
40 Mpx, an image is refused whatever `validate` says, without decoding it), then, with
`validate=True`, a decode at the network's size, so corrupt data fails here with an
`InvalidInputError` instead of a round trip. Errors name the item's index and file, never an
object repr.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from mtqa_client import decode
from mtqa_client.errors import InvalidInputError

ImageLike = np.ndarray | bytes | bytearray | memoryview | str | os.PathLike
ImagesLike = ImageLike | Sequence[ImageLike]
DEFAULT_MAX_PIXELS = decode.DEFAULT_MAX_PIXELS


@dataclass(frozen=True)
class EncodedImage:
    """One image ready to send: encoded bytes, upright original (height, width), a source label
    (the file path, else "item N") and its index in the caller's list."""

    data: bytes
    size: tuple[int, int]
    source: str
    index: int = 0

    @property
    def label(self) -> str:
        """How messages name this image: "item 3" or "item 3 (parts/a.png)"."""
        own = f"item {self.index}"
        return own if self.source == own else f"{own} ({self.source})"


def is_batch(x: object) -> bool:
    """True when `x` is a list/tuple of images rather than a single image."""
    return isinstance(x, (list, tuple))


def as_items(x: ImagesLike) -> list[ImageLike]:
    """The images of one `inspect` argument as a list (InvalidInputError when it is empty)."""
    items = list(x) if is_batch(x) else [x]
    if not items:
        raise InvalidInputError("no images given (empty list)")
    return items


def encode_images(
    x: ImagesLike,
    *,
    validate: bool = True,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    size: int | None = None,
) -> list[EncodedImage]:
    """Encode one image or a list of them; raises InvalidInputError on the first unusable one."""
    return [
        encode_one(item, i, validate=validate, max_pixels=max_pixels, size=size)
        for i, item in enumerate(as_items(x))
    ]


def encode_one(
    item: object,
    index: int,
    *,
    validate: bool = True,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    size: int | None = None,
) -> EncodedImage:
    """Encode item `index` of a call (`size`: the network's image size, for the check decode)."""
    label = f"item {index}"
    if isinstance(item, np.ndarray):
        return _encode_array(item, label, index, max_pixels)
    if isinstance(item, (bytes, bytearray, memoryview)):
        return _check_bytes(bytes(item), label, index, validate, max_pixels, size)
    if isinstance(item, (str, os.PathLike)):
        path = Path(item)
        if not path.is_file():
            raise InvalidInputError(f"{label}: no such image file: {path}")
        return _check_bytes(path.read_bytes(), str(path), index, validate, max_pixels, size)
    raise InvalidInputError(
        f"{label}: unsupported image type {type(item).__name__}; "
        "pass a uint8 numpy array, encoded bytes or a file path"
    )


def _encode_array(arr: np.ndarray, label: str, index: int, max_pixels: int) -> EncodedImage:
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
    if 0 < max_pixels < arr.shape[0] * arr.shape[1]:
        raise InvalidInputError(
            f"{label}: image too large: {arr.shape[1]}x{arr.shape[0]} is over the limit of "
            f"{max_pixels / 1e6:.1f} Mpx"
        )
    buf = io.BytesIO()
    # compress_level=1: encoding speed matters more than a few bytes on a local network.
    Image.fromarray(np.ascontiguousarray(arr)).save(buf, format="PNG", compress_level=1)
    return EncodedImage(buf.getvalue(), (int(arr.shape[0]), int(arr.shape[1])), label, index)


def _check_bytes(
    data: bytes, source: str, index: int, validate: bool, max_pixels: int, size: int | None
) -> EncodedImage:
    label = EncodedImage(b"", (0, 0), source, index).label
    if not data:
        raise InvalidInputError(f"{label}: empty image data")
    try:
        hw = decode.probe_image(data, max_pixels=max_pixels)
        if validate:  # the server's decoder, at the network's size: a truncated JPEG fails here
            hw = decode.decode_image(data, size=size, max_pixels=max_pixels).orig_hw
    except decode.ImageTooLargeError as exc:  # refused whatever `validate` says
        raise InvalidInputError(f"{label}: {exc}") from None
    except decode.DecodeError as exc:
        if validate:
            raise InvalidInputError(f"{label}: not a decodable image ({exc})") from None
        return EncodedImage(data, (0, 0), source, index)
    return EncodedImage(data, (int(hw[0]), int(hw[1])), source, index)
