"""Overlay pictures of evaluated images: image | true masks | predicted masks, one row each.

Drawn with Pillow at (at least) 512 px a panel, nearest-neighbour so mask edges stay exact; each
class is tinted in its `mtqa.palette` colour and named on a filled label, captions sit on a dark
bar, so text stays readable over any image.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from mtqa.evaluate.metrics import mask_labels, pixel_labels
from mtqa.palette import class_colour

MIN_PANEL = 512  # panels are scaled up (by a whole factor) to at least this many pixels
ALPHA = 0.5
GAP = 8
_BAR = (32, 32, 32)
_PAPER = (255, 255, 255)


class Pictured(Protocol):
    """What a row needs: `Sample` and `WorstCase` both hold it."""

    id: str
    image: np.ndarray  # normalised, [3, H, W]
    mask: np.ndarray  # multi-hot, [K, H, W]
    seg_prob: np.ndarray  # [K, H, W]


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def display_rgb(image: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """Undo ``(x/255 - mean) / std``: an RGB uint8 array, HWC."""
    rgb = image * np.asarray(std)[:, None, None] + np.asarray(mean)[:, None, None]
    return (np.clip(rgb.transpose(1, 2, 0), 0, 1) * 255).round().astype(np.uint8)


def _label(draw: ImageDraw.ImageDraw, xy: tuple[int, int], text: str, fill: tuple, font) -> None:
    """Text on a filled box (black or white text, whichever reads on `fill`)."""
    box = draw.textbbox(xy, text, font=font)
    draw.rectangle((box[0] - 3, box[1] - 2, box[2] + 3, box[3] + 2), fill=fill)
    light = 0.299 * fill[0] + 0.587 * fill[1] + 0.114 * fill[2] > 140
    draw.text(xy, text, fill=(0, 0, 0) if light else (255, 255, 255), font=font)


def _panel(rgb: np.ndarray, labels: np.ndarray | None, classes: Sequence[str]) -> Image.Image:
    """One panel: the image, tinted where `labels` (0 background, k+1 class k) name a class."""
    scale = max(1, math.ceil(MIN_PANEL / max(rgb.shape[:2])))
    pixels = rgb.astype(np.float32)
    present: list[int] = []
    if labels is not None:
        for k in range(len(classes)):
            where = labels == k + 1
            if where.any():
                present.append(k)
                colour = np.asarray(class_colour(k), dtype=np.float32)
                pixels[where] = (1 - ALPHA) * pixels[where] + ALPHA * colour
    out = Image.fromarray(pixels.round().astype(np.uint8))
    out = out.resize((out.width * scale, out.height * scale), Image.Resampling.NEAREST)
    draw, font = ImageDraw.Draw(out), _font(16)
    for k in present:  # each class named at the top-left of its pixels
        ys, xs = np.nonzero(labels == k + 1)
        x = min(int(xs.min()) * scale, out.width - 120)
        y = max(int(ys.min()) * scale - 22, 2)
        _label(draw, (max(x, 2), y), classes[k], class_colour(k), font)
    return out


def _captioned(panel: Image.Image, caption: str) -> Image.Image:
    font = _font(18)
    out = Image.new("RGB", (panel.width, panel.height + 30), _BAR)
    ImageDraw.Draw(out).text((6, 5), caption, fill=(255, 255, 255), font=font)
    out.paste(panel, (0, 30))
    return out


def render_row(
    item: Pictured,
    mean: Sequence[float],
    std: Sequence[float],
    classes: Sequence[str],
    seg_thresholds: np.ndarray,
    title: str,
) -> Image.Image:
    """Image | truth | prediction side by side, with `title` on a bar above them."""
    rgb = display_rgb(item.image, mean, std)
    panels = [
        _captioned(_panel(rgb, None, classes), item.id),
        _captioned(_panel(rgb, mask_labels(item.mask), classes), "truth"),
        _captioned(_panel(rgb, pixel_labels(item.seg_prob, seg_thresholds), classes), "prediction"),
    ]
    width = sum(p.width for p in panels) + GAP * (len(panels) - 1)
    head = 34
    row = Image.new("RGB", (width, head + panels[0].height), _PAPER)
    draw = ImageDraw.Draw(row)
    draw.rectangle((0, 0, width, head - 4), fill=_BAR)
    draw.text((8, 6), title, fill=(255, 255, 255), font=_font(20))
    x = 0
    for panel in panels:
        row.paste(panel, (x, head))
        x += panel.width + GAP
    return row


def legend(classes: Sequence[str], width: int) -> Image.Image:
    """A bar naming each class on its colour."""
    out = Image.new("RGB", (width, 40), _PAPER)
    draw, font, x = ImageDraw.Draw(out), _font(18), 10
    for k, name in enumerate(classes):
        _label(draw, (x, 10), name, class_colour(k), font)
        x = int(draw.textbbox((x, 10), name, font=font)[2]) + 24
    return out


def write_rows(rows: Sequence[Image.Image], classes: Sequence[str], path: Path) -> Path | None:
    """Stack rows under a class legend into one PNG; None when there is no row."""
    if not rows:
        return None
    width = max(r.width for r in rows)
    key = legend(classes, width)
    height = key.height + sum(r.height + GAP for r in rows)
    sheet = Image.new("RGB", (width, height), _PAPER)
    sheet.paste(key, (0, 0))
    y = key.height
    for row in rows:
        sheet.paste(row, (0, y))
        y += row.height + GAP
    sheet.save(path, optimize=True)
    return path
