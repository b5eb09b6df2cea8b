"""Overlay pictures of inspection results: class masks tinted per class, boxes with labels.

Pillow only, so SDK users can render what the server found without extra dependencies. Small
images are scaled up by a whole factor (nearest neighbour, so mask edges stay exact) to at least
`MIN_SIZE` pixels, and each label sits on a box filled with its class colour, readable on any
image.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from mtqa_client import decode
from mtqa_client.errors import InvalidInputError
from mtqa_client.images import ImageLike
from mtqa_client.results import InspectionResult

# A copy of `mtqa.palette.PALETTE` (the SDK imports nothing of the project's; a test keeps the two
# equal), so the SDK's and the evaluation's pictures colour each class alike.
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
MIN_SIZE = 512  # smaller images are drawn scaled up to at least this long side


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


def _label(draw: ImageDraw.ImageDraw, xy: tuple[int, int], text: str, colour, font) -> None:
    """`text` on a box filled with the class colour (black or white text, whichever reads)."""
    box = draw.textbbox(xy, text, font=font)
    draw.rectangle((box[0] - 2, box[1] - 2, box[2] + 2, box[3] + 2), fill=colour)
    light = 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2] > 140
    draw.text(xy, text, fill=(0, 0, 0) if light else (255, 255, 255), font=font)


def render_overlay(
    image: ImageLike, result: InspectionResult, alpha: float = 0.45, min_size: int = MIN_SIZE
) -> Image.Image:
    """The image with every decided defect's mask tinted in its class colour and its regions boxed
    and labelled; an image whose longer side is under `min_size` is scaled up by a whole factor.

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
    scale = max(1, math.ceil(min_size / max(out.size)))
    if scale > 1:
        out = out.resize((out.width * scale, out.height * scale), Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(out)
    font = ImageFont.load_default(size=max(12, max(out.size) // 32))
    for region in result.regions:
        colour = class_colour(region.class_index)
        x0, y0, x1, y1 = (v * scale for v in region.box)
        draw.rectangle([x0, y0, max(x0, x1 - 1), max(y0, y1 - 1)], outline=colour, width=2)
        text = f"{region.class_name} {region.score:.2f}"
        height = draw.textbbox((0, 0), text, font=font)[3]
        above = y0 - height - 4  # above the box where there is room, else inside it
        _label(draw, (int(x0) + 2, int(above if above >= 0 else y0 + 3)), text, colour, font)
    return out
