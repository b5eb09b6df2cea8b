"""Overlay pictures of inspection results: class masks tinted per class, boxes with labels.

Pillow only, so SDK users can render what the server found without extra dependencies.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from mtqa_client import decode
from mtqa_client.errors import InvalidInputError
from mtqa_client.images import ImageLike
from mtqa_client.results import InspectionResult

PALETTE = (
    (230, 25, 75),
    (60, 180, 75),
    (255, 225, 25),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
)


def class_colour(index: int) -> tuple[int, int, int]:
    """A stable colour for class `index`."""
    return PALETTE[index % len(PALETTE)]


def _base_image(image: ImageLike) -> Image.Image:
    """The picture as the server saw it: the shared decoder (upright, 16-bit mapped), full size."""
    if isinstance(image, np.ndarray):
        return Image.fromarray(image).convert("RGB")
    try:
        source = bytes(image) if isinstance(image, (bytes, bytearray, memoryview)) else image
        return Image.fromarray(decode.decode_image(source).rgb)
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"cannot open image for the overlay: {exc}") from None


def render_overlay(image: ImageLike, result: InspectionResult, alpha: float = 0.45) -> Image.Image:
    """The image with every decided defect's mask tinted in its class colour and its regions boxed.

    The server lists regions only for classes decided present, so no box names an absent class.
    """
    base = _base_image(image)
    if base.size != (result.image_size[1], result.image_size[0]):
        raise InvalidInputError(
            f"image is {base.size[1]}x{base.size[0]} but the result is for "
            f"{result.image_size[0]}x{result.image_size[1]}"
        )
    pixels = np.asarray(base, dtype=np.float32)
    for defect in result.defects:
        if not defect.decision:  # an absent class's stray mask pixels are not a finding
            continue
        mask = result.mask(defect.name)
        if mask.any():
            colour = np.asarray(class_colour(defect.index), dtype=np.float32)
            pixels[mask] = (1 - alpha) * pixels[mask] + alpha * colour
    out = Image.fromarray(pixels.round().astype(np.uint8))
    draw = ImageDraw.Draw(out)
    for region in result.regions:
        colour = class_colour(region.class_index)
        x0, y0, x1, y1 = region.box
        draw.rectangle([x0, y0, max(x0, x1 - 1), max(y0, y1 - 1)], outline=colour, width=2)
        draw.text((x0 + 2, y0 + 1), f"{region.class_name} {region.score:.2f}", fill=colour)
    return out
