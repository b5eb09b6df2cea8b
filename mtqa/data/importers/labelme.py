"""LabelMe JSON: one file per image with ``shapes`` (polygon, rectangle, circle, line ...).

``src`` is a folder searched recursively. ``imagePath`` is relative to the JSON file; the embedded
``imageData`` is used only when that file is missing. Classes are the lines of ``labels.txt`` in
``src`` (LabelMe's ``--labels`` file; ``__ignore__`` and ``_background_`` skipped) when present,
else the sorted shape labels. Images in the folder without a JSON are imported defect-free (and
reported). A JSON under a folder named train / val / test keeps that split.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import math
from pathlib import Path

import numpy as np
from PIL import Image

from mtqa.data.errors import DatasetError
from mtqa.data.importers.base import MaskArray, Polygon, Polyline, Sample, Source
from mtqa.data.naming import split_of_folder
from mtqa.data.records import images_under

LINE_WIDTH = 3.0  # pixels drawn for a line / linestrip shape (LabelMe lines have no width)
POINT_RADIUS = 2.0  # pixels around a point shape
_CIRCLE_STEPS = 64
_IGNORED_LABELS = ("__ignore__", "_background_")


def _circle(cx: float, cy: float, r: float) -> tuple[tuple[float, float], ...]:
    steps = range(_CIRCLE_STEPS)
    return tuple(
        (
            cx + r * math.cos(2 * math.pi * i / _CIRCLE_STEPS),
            cy + r * math.sin(2 * math.pi * i / _CIRCLE_STEPS),
        )
        for i in steps
    )


def shape_geometry(shape: dict, where: str):
    """The geometry of one LabelMe shape, or None for a type that holds no area (skipped)."""
    kind = shape.get("shape_type") or "polygon"
    points = tuple((float(x), float(y)) for x, y in shape.get("points") or [])
    if kind == "polygon" and len(points) >= 3:
        return Polygon(points)
    if kind == "rectangle" and len(points) == 2:
        (x0, y0), (x1, y1) = points
        return Polygon(((x0, y0), (x1, y0), (x1, y1), (x0, y1)))
    if kind == "circle" and len(points) == 2:
        (cx, cy), (px, py) = points
        return Polygon(_circle(cx, cy, math.hypot(px - cx, py - cy)))
    if kind in ("line", "linestrip") and len(points) >= 2:
        return Polyline(points, LINE_WIDTH)
    if kind == "point" and len(points) == 1:
        return Polygon(_circle(*points[0], POINT_RADIUS))
    if kind == "mask" and shape.get("mask") and points:
        try:
            data = base64.b64decode(shape["mask"])
            with Image.open(io.BytesIO(data)) as img:
                array = np.asarray(img.convert("L")) > 0
        except (binascii.Error, OSError, ValueError) as exc:
            raise DatasetError(f"{where}: bad mask shape: {exc}") from exc
        return MaskArray(array, (round(points[0][0]), round(points[0][1])))
    raise DatasetError(f"{where}: shape_type {kind!r} with {len(points)} point(s) is not usable")


def _class_names(src: Path, docs: list[tuple[Path, dict]]) -> list[str]:
    labels_file = src / "labels.txt"
    if labels_file.is_file():
        lines = [ln.strip() for ln in labels_file.read_text().splitlines()]
        return [ln for ln in lines if ln and ln not in _IGNORED_LABELS]
    return sorted({str(s.get("label")) for _, d in docs for s in d.get("shapes") or []})


def _image_path(json_path: Path, image_path: str) -> Path:
    """``imagePath`` relative to the JSON; else a file of that name beside it (a path saved on
    another machine, e.g. ``C:\\data\\a.jpg``)."""
    given = (json_path.parent / image_path.replace("\\", "/")).resolve()
    beside = json_path.parent / Path(image_path.replace("\\", "/")).name
    return given if given.is_file() or not beside.is_file() else beside.resolve()


def _split_of(path: Path, src: Path) -> str | None:
    for parent in path.relative_to(src).parents:
        if parent.name and (split := split_of_folder(parent.name)):
            return split
    return None


def read(src: Path) -> Source:
    """Read every LabelMe JSON under ``src`` (and the unlabelled images beside them)."""
    if not src.is_dir():
        raise DatasetError(f"LabelMe source must be a folder of .json files: {src}")
    source = Source(classes=[], samples=[])
    docs: list[tuple[Path, dict]] = []
    for path in sorted(src.rglob("*.json")):
        try:
            doc = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            source.skipped.append({"file": str(path), "reason": f"cannot read JSON: {exc}"})
            continue
        if isinstance(doc, dict) and "shapes" in doc and "imagePath" in doc:
            docs.append((path, doc))
    if not docs:
        raise DatasetError(f"{src}: no LabelMe .json file (with 'shapes' and 'imagePath')")
    source.classes = _class_names(src, docs)
    class_of = {name: k for k, name in enumerate(source.classes, start=1)}
    labelled: set[Path] = set()
    for path, doc in docs:
        image = _image_path(path, str(doc["imagePath"]))
        labelled.add(image)
        sample = Sample(id=path.stem, image=image, split=_split_of(path, src))
        if not image.is_file() and doc.get("imageData"):
            try:
                sample.image_data = base64.b64decode(doc["imageData"])
            except (binascii.Error, ValueError) as exc:
                source.skipped.append({"file": str(path), "reason": f"bad imageData: {exc}"})
                continue
        for number, shape in enumerate(doc["shapes"]):
            where = f"{path} shape {number}"
            label = str(shape.get("label"))
            if label in _IGNORED_LABELS:
                continue
            if label not in class_of:
                raise DatasetError(f"{where}: label {label!r} is not in {src / 'labels.txt'}")
            sample.labels.append((class_of[label], shape_geometry(shape, where)))
        source.samples.append(sample)
    for image in images_under(src):
        if image.resolve() not in labelled:
            source.samples.append(
                Sample(
                    id=image.stem,
                    image=image,
                    split=_split_of(image, src),
                    has_label_file=False,
                )
            )
    return source
