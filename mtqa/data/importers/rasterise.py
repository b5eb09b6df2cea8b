"""Draw a sample's labels into a class-index mask at the image's own resolution.

Polygons are filled with PIL ``ImageDraw.polygon`` (outline included, so a thin or degenerate
polygon keeps its pixels); points are clamped into the image, so a polygon on the border stays
inside it. Where classes overlap the later class (higher index) wins; the overlap is counted.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from mtqa.data.errors import DatasetError
from mtqa.data.importers.base import Geometry, MaskArray, MaskFile, Polygon, Polyline, Rle
from mtqa.data.importers.rle import decode_rle


def read_binary_mask(path) -> np.ndarray:
    """A mask file as bool HxW: non-zero is the defect, or >= 128 for 0/255 (anti-aliased) masks."""
    try:
        with Image.open(path) as img:
            mask = np.asarray(img.convert("L") if img.mode not in ("L", "1", "P") else img)
    except (OSError, SyntaxError) as exc:
        raise DatasetError(f"cannot read mask {path}: {exc}") from exc
    if mask.ndim == 3:
        mask = mask.max(axis=2)
    return mask >= 128 if mask.max(initial=0) >= 128 else mask > 0


def _points(points, hw: tuple[int, int], normalized: bool) -> list[tuple[float, float]]:
    h, w = hw
    sx, sy = (w, h) if normalized else (1, 1)
    return [(min(max(x * sx, 0.0), w - 1.0), min(max(y * sy, 0.0), h - 1.0)) for x, y in points]


def draw(geometry: Geometry, hw: tuple[int, int], where: str) -> np.ndarray:
    """One geometry as a bool HxW mask; ``where`` names the file for error messages."""
    h, w = hw
    if isinstance(geometry, (Polygon, Polyline)):
        canvas = Image.new("L", (w, h), 0)
        pen = ImageDraw.Draw(canvas)
        normalized = isinstance(geometry, Polygon) and geometry.normalized
        pts = _points(geometry.points, hw, normalized)
        if isinstance(geometry, Polyline):
            pen.line(pts, fill=1, width=max(1, round(geometry.width)), joint="curve")
        elif len(pts) >= 3:
            pen.polygon(pts, fill=1, outline=1)
        else:
            pen.line(pts, fill=1, width=1) if len(pts) == 2 else pen.point(pts, fill=1)
        return np.asarray(canvas, dtype=bool)
    if isinstance(geometry, Rle):
        mask = decode_rle(geometry.rle, where)
    elif isinstance(geometry, MaskFile):
        mask = read_binary_mask(geometry.path)
        where = str(geometry.path)
    elif isinstance(geometry, MaskArray):
        mask = np.zeros(hw, dtype=bool)
        x, y = geometry.offset
        part = geometry.array[: max(h - y, 0), : max(w - x, 0)]
        mask[y : y + part.shape[0], x : x + part.shape[1]] = part
    else:  # pragma: no cover - the importers build only the types above
        raise TypeError(f"unknown geometry {type(geometry).__name__}")
    if mask.shape != (h, w):
        raise DatasetError(
            f"{where}: mask is {mask.shape[1]}x{mask.shape[0]} but the image is {w}x{h}"
        )
    return mask


def rasterise(
    labels: list[tuple[int, Geometry]], hw: tuple[int, int], where: str
) -> tuple[np.ndarray, int]:
    """(uint8 class-index mask, pixels claimed by more than one class) of a sample's labels."""
    layers: dict[int, np.ndarray] = {}
    for cls, geometry in labels:
        drawn = draw(geometry, hw, where)
        layers[cls] = layers[cls] | drawn if cls in layers else drawn
    index = np.zeros(hw, dtype=np.uint8)
    claimed = np.zeros(hw, dtype=np.uint8)
    for cls in sorted(layers):  # later (higher) class wins where classes overlap
        index[layers[cls]] = cls
        claimed += layers[cls]
    return index, int((claimed > 1).sum())
