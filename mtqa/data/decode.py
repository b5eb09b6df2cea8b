"""Bounded, range-correct image decoding shared by training, the SDK and the Triton preprocess.

Self-contained (numpy + pillow only, no package imports): the serving builder copies this file next
to the Triton `mtqa_preprocess` model, and the SDK ships a byte-identical copy as
`mtqa_client/decode.py` (a test keeps the two equal), so one function decides the pixels everywhere.

What it guarantees:

- **Bounded work.** The pixel count is read from the header (`Image.open` decodes nothing) and an
  image over `max_pixels` (default 40 Mpx) is refused before any pixel is decoded. Pillow's own
  decompression-bomb warning is raised as an error too, so its limit (`Image.MAX_IMAGE_PIXELS`,
  ~89 Mpx) caps `max_pixels` rather than letting a larger image through with a warning.
- **Only the pixels needed.** Given the network's `size`, a JPEG is decoded with `draft` at the
  smallest DCT scale (1/2, 1/4, 1/8) that still covers size x size, so a 40 Mpx photo costs a
  fraction of a full decode. Training passes the same size, so both see the same pixels.
- **Correct 8-bit RGB.** EXIF orientation is applied. 16-bit data (`I;16*`, and `I` within
  0..65535) is mapped by the dtype range, v / 257 rounded, so 12-bit data stored in 16 bits comes
  out dark (0..4095 -> 0..16); scale it to the full 16-bit range (v << 4) before sending. Float
  data (`F`) in [0, 1] is scaled by 255; any other finite range is min-max stretched; NaN or Inf
  is refused. Nothing is clipped silently. Palette, 1-bit, LA/RGBA (alpha dropped, not
  composited), CMYK and YCbCr go through Pillow's conversion to RGB.
"""

from __future__ import annotations

import io
import os
import re
import warnings
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

DEFAULT_MAX_PIXELS = 40_000_000
_ORIENTATION_TAG = 0x0112  # EXIF Orientation; 5..8 swap width and height
_SWAPPING = (5, 6, 7, 8)
_16BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")


class DecodeError(ValueError):
    """Bytes that are not a decodable image, or pixels with no defined 8-bit mapping."""


class ImageTooLargeError(DecodeError):
    """An image whose header declares more pixels than allowed; nothing was decoded."""


class Decoded(NamedTuple):
    """Decoded uint8 HxWx3 RGB (possibly reduced by JPEG draft) and the upright original (h, w)."""

    rgb: np.ndarray
    orig_hw: tuple[int, int]


def _open(source: bytes | str | os.PathLike) -> Image.Image:
    """Open from bytes or a path, reading the header only; bomb warnings raise."""
    stream = io.BytesIO(source) if isinstance(source, (bytes, bytearray, memoryview)) else source
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        return Image.open(stream)


def _reason(exc: BaseException) -> str:
    """Pillow's message without object reprs (`<_io.BytesIO object at 0x...>`)."""
    if isinstance(exc, UnidentifiedImageError):
        return "not a recognised image format"
    text = re.sub(r"\s*<[^<>]* object at 0x[0-9a-fA-F]+>", "", str(exc)).strip()
    return text or type(exc).__name__


def _describe(source: object) -> str:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"image bytes ({len(source)} bytes)"
    return f"image {os.fspath(source)}"


def _orientation(img: Image.Image, loaded: bool) -> int:
    """The EXIF orientation (1 when absent or unreadable).

    Before `load`, only where the header holds it: Pillow's PNG `getexif` decodes the whole image
    to look for an eXIf chunk after the pixels, which a header check must not do.
    """
    if not loaded and "exif" not in img.info and img.format not in ("JPEG", "MPO", "TIFF"):
        return 1
    try:
        return int(img.getexif().get(_ORIENTATION_TAG, 1))
    except Exception:  # an unreadable EXIF block: the orientation is ignored, not the image
        return 1


def _upright_hw(size: tuple[int, int], orientation: int) -> tuple[int, int]:
    """(h, w) of a (w, h) image after EXIF orientation."""
    w, h = size
    return (w, h) if orientation in _SWAPPING else (h, w)


def _check_pixels(img: Image.Image, max_pixels: int) -> None:
    w, h = img.size
    if w <= 0 or h <= 0:
        raise DecodeError(f"image has no pixels ({w}x{h})")
    if max_pixels > 0 and w * h > max_pixels:
        raise ImageTooLargeError(
            f"image too large: {w}x{h} = {w * h / 1e6:.1f} Mpx is over the limit of "
            f"{max_pixels / 1e6:.1f} Mpx (refused before decoding)"
        )


def probe_image(
    source: bytes | str | os.PathLike, *, max_pixels: int = DEFAULT_MAX_PIXELS
) -> tuple[int, int]:
    """Upright (h, w) of an encoded image from its header; refuses it when over `max_pixels`."""
    try:
        with _open(source) as img:
            _check_pixels(img, max_pixels)
            return _upright_hw(img.size, _orientation(img, loaded=False))
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise ImageTooLargeError(f"image too large: {_reason(exc)}") from None
    except FileNotFoundError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        if isinstance(exc, DecodeError):
            raise
        raise DecodeError(f"cannot decode {_describe(source)}: {_reason(exc)}") from None


def _float_to_uint8(values: np.ndarray) -> np.ndarray:
    if not np.isfinite(values).all():
        raise DecodeError("float image holds NaN or Inf values; no 8-bit mapping exists")
    lo, hi = float(values.min()), float(values.max())
    if lo >= 0.0 and hi <= 1.0:
        scaled = values * 255.0
    elif hi > lo:
        scaled = (values - lo) * (255.0 / (hi - lo))
    else:  # a constant image outside [0, 1]: no range to stretch
        scaled = np.zeros_like(values)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _to_uint8_gray(img: Image.Image) -> np.ndarray | None:
    """uint8 HxW for the 16-bit, 32-bit integer and float modes; None for the 8-bit ones."""
    if img.mode in _16BIT_MODES:
        values = np.asarray(img).astype(np.uint32)
        return ((values + 128) // 257).astype(np.uint8)  # round(v / 257): 65535 -> 255
    if img.mode == "I":
        values = np.asarray(img)
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise DecodeError(
                f"32-bit integer image with values {values.min()}..{values.max()} outside "
                "0..65535; no 8-bit mapping is defined (send 8- or 16-bit data)"
            )
        return ((values.astype(np.uint32) + 128) // 257).astype(np.uint8)
    if img.mode == "F":
        return _float_to_uint8(np.asarray(img, dtype=np.float64))
    return None


def _to_rgb(img: Image.Image) -> np.ndarray:
    gray = _to_uint8_gray(img)
    if gray is not None:
        return np.repeat(gray[:, :, None], 3, axis=2)
    if img.mode != "RGB":
        img = img.convert("RGB")
    return np.asarray(img)


def decode_image(
    source: bytes | str | os.PathLike,
    *,
    size: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Decoded:
    """Decode encoded bytes or a file into upright uint8 HxWx3 RGB and the original (h, w).

    `size` is the side the network needs: a JPEG is then decoded at the smallest DCT scale whose
    result still covers size x size (a no-op for smaller images); None decodes at full size.
    Raises ImageTooLargeError (before decoding) or DecodeError with a message naming the source.
    """
    try:
        with _open(source) as img:
            _check_pixels(img, max_pixels)
            header_size = img.size
            if size and img.format == "JPEG":
                img.draft("RGB", (int(size), int(size)))
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                img.load()  # outside any broad except: a decode error must surface
            orig_hw = _upright_hw(header_size, _orientation(img, loaded=True))
            upright = ImageOps.exif_transpose(img)
            return Decoded(np.ascontiguousarray(_to_rgb(upright)), orig_hw)
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise ImageTooLargeError(f"image too large: {_reason(exc)}") from None
    except FileNotFoundError:
        raise
    except DecodeError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise DecodeError(f"cannot decode {_describe(source)}: {_reason(exc)}") from None
