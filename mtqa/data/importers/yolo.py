"""Ultralytics YOLO segmentation: ``data.yaml`` plus ``labels/<split>/<stem>.txt`` polygons.

``data.yaml`` gives ``names`` (a list, or a dict id -> name) and ``train`` / ``val`` / ``test``
(a folder of images, a .txt list of image paths, or a list of those) relative to ``path``. As in
Ultralytics, an image's label file is its path with the last ``images`` folder replaced by
``labels`` and the suffix by ``.txt``. Each line is ``cls x1 y1 x2 y2 ...`` in normalised
coordinates; an empty or missing label file means defect-free; a line of 5 numbers is a
detection box (``cls cx cy w h``), drawn as a filled box with a warning.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from mtqa.data.errors import DatasetError
from mtqa.data.importers.base import Polygon, Sample, Source
from mtqa.data.naming import YAML_NAMES
from mtqa.data.records import SPLITS, images_under


def find_yaml(src: Path) -> Path:
    """The dataset yaml: ``src`` itself or the one data.yaml-like file in the folder."""
    if src.is_file():
        return src
    if not src.is_dir():
        raise DatasetError(f"YOLO source does not exist: {src}")
    for name in YAML_NAMES:
        if (src / name).is_file():
            return src / name
    found = sorted(src.glob("*.yaml")) + sorted(src.glob("*.yml"))
    if len(found) == 1:
        return found[0]
    raise DatasetError(f"{src}: expected a data.yaml with 'names' and 'train'/'val' paths")


def read_names(config: dict, where: Path) -> list[str]:
    """Class names in id order from ``names`` (list or dict with ids 0..K-1)."""
    names = config.get("names")
    if isinstance(names, dict):
        try:
            ids = sorted(int(k) for k in names)
        except (TypeError, ValueError) as exc:
            raise DatasetError(f"{where}: 'names' keys must be class ids: {exc}") from exc
        if ids != list(range(len(ids))):
            raise DatasetError(f"{where}: 'names' ids must be 0..{len(ids) - 1}, got {ids}")
        names = [names[k] if k in names else names[str(k)] for k in ids]
    if not (isinstance(names, list) and names):
        raise DatasetError(f"{where}: 'names' must be a non-empty list or id -> name mapping")
    return [str(n) for n in names]


def _root(config: dict, yaml_path: Path, notes: list[str]) -> Path:
    base = yaml_path.parent
    given = config.get("path")
    if not given:
        return base
    root = Path(given) if Path(given).is_absolute() else base / given
    if root.is_dir():
        return root
    notes.append(f"data.yaml path {given!r} does not exist; paths read relative to {base}")
    return base


def _images_of(entry: str, root: Path, where: Path) -> list[Path]:
    path = Path(entry) if Path(entry).is_absolute() else root / entry
    if path.is_dir():
        return images_under(path)
    if path.is_file() and path.suffix == ".txt":  # a list of image paths, one a line
        lines = [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
        return [Path(ln) if Path(ln).is_absolute() else path.parent / ln for ln in lines]
    raise DatasetError(f"{where}: split path {entry!r} not found (looked for {path})")


def label_path(image: Path) -> Path:
    """Ultralytics' rule: the last ``images`` folder of the path becomes ``labels``."""
    sb, sa = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    text = str(image)
    if sb in text:
        text = sa.join(text.rsplit(sb, 1))
    return Path(text).with_suffix(".txt")


def parse_label_file(path: Path, n_classes: int, warnings: list[str]) -> list:
    """(class index 1..K, Polygon) per line of a YOLO label file; bad lines raise."""
    labels = []
    boxes = 0
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        tokens = line.split()
        if not tokens:
            continue
        where = f"{path} line {number}"
        try:
            cls = float(tokens[0])
            coords = [float(t) for t in tokens[1:]]
        except ValueError as exc:
            raise DatasetError(f"{where}: not numbers: {exc}") from exc
        if cls != int(cls) or not 0 <= cls < n_classes:
            raise DatasetError(
                f"{where}: class id {tokens[0]} is out of range: data.yaml names {n_classes} "
                f"class(es), ids 0..{n_classes - 1}"
            )
        if len(coords) == 4:
            cx, cy, w, h = coords
            x0, y0, x1, y1 = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
            points = ((x0, y0), (x1, y0), (x1, y1), (x0, y1))
            boxes += 1
        elif len(coords) >= 6 and len(coords) % 2 == 0:
            points = tuple(zip(coords[0::2], coords[1::2], strict=True))
        else:
            raise DatasetError(
                f"{where}: expected 'cls x1 y1 x2 y2 ...' (at least 3 points) or a box "
                f"'cls cx cy w h', got {len(coords)} numbers after the class"
            )
        labels.append((int(cls) + 1, Polygon(points, normalized=True)))
    if boxes:
        warnings.append(f"{path}: {boxes} detection box(es) drawn as filled boxes")
    return labels


def read(src: Path) -> Source:
    """Read a YOLO segmentation dataset from its folder or its data.yaml."""
    yaml_path = find_yaml(Path(src))
    try:
        config = yaml.safe_load(yaml_path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise DatasetError(f"cannot read {yaml_path}: {exc}") from exc
    if not isinstance(config, dict):
        raise DatasetError(f"{yaml_path}: expected a mapping with 'names' and split paths")
    classes = read_names(config, yaml_path)
    source = Source(classes=classes, samples=[])
    root = _root(config, yaml_path, source.notes)
    if not any(config.get(s) for s in SPLITS):
        raise DatasetError(f"{yaml_path}: no 'train' / 'val' / 'test' image paths")
    box_warnings: list[str] = []
    for split in SPLITS:
        entries = config.get(split) or []
        for entry in [entries] if isinstance(entries, str) else entries:
            for image in _images_of(str(entry), root, yaml_path):
                labels_file = label_path(image)
                sample = Sample(id=image.stem, image=image, split=split)
                if not labels_file.is_file():
                    sample.has_label_file = False
                else:
                    try:
                        sample.labels = parse_label_file(labels_file, len(classes), box_warnings)
                    except (OSError, UnicodeDecodeError) as exc:
                        source.skipped.append({"file": str(labels_file), "reason": str(exc)})
                        continue
                source.samples.append(sample)
    if box_warnings:
        source.warnings.append(
            f"{len(box_warnings)} label file(s) hold detection boxes (5 numbers), drawn as "
            f"filled boxes, not object outlines; first: {box_warnings[0]}"
        )
    return source
