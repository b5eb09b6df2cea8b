"""The common interface of the importers: what one labelled image of a foreign format holds.

Each importer module has ``read(src: Path) -> Source``: the class names (in output order) and one
:class:`Sample` per image, each with its labels as (1-based class index, geometry) in source
coordinates. Nothing is rasterised here; :mod:`mtqa.data.importers.rasterise` draws the labels at
the image's own resolution and :mod:`mtqa.data.importers.writer` writes the indexed-mask format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Polygon:
    """A filled polygon; ``normalized`` points are fractions of the image width and height."""

    points: tuple[tuple[float, float], ...]
    normalized: bool = False


@dataclass(frozen=True)
class Polyline:
    """An open line of ``width`` pixels through the points (LabelMe line / linestrip)."""

    points: tuple[tuple[float, float], ...]
    width: float


@dataclass(frozen=True)
class Rle:
    """COCO run-length encoding: ``{"size": [h, w], "counts": str | list[int]}``."""

    rle: dict


@dataclass(frozen=True)
class MaskFile:
    """A binary mask image on disk (non-zero, or >= 128 for 0/255 masks, is the defect)."""

    path: Path


@dataclass(frozen=True, eq=False)
class MaskArray:
    """A boolean mask whose top-left pixel lies at ``offset`` (x, y) in the image."""

    array: np.ndarray
    offset: tuple[int, int] = (0, 0)


Geometry = Polygon | Polyline | Rle | MaskFile | MaskArray


@dataclass
class Sample:
    """One image to import: where it is, its split in the source (or None), its labels.

    ``labels`` holds (class index 1..K, geometry). ``image_data`` is the encoded image when the
    file is missing but the label file embeds it (LabelMe). ``has_label_file`` False marks an
    image the source left without a label file (imported as defect-free, and reported).
    """

    id: str
    image: Path
    split: str | None = None
    labels: list[tuple[int, Geometry]] = field(default_factory=list)
    image_data: bytes | None = None
    has_label_file: bool = True

    def classes_present(self) -> set[int]:
        return {cls for cls, _ in self.labels}


@dataclass
class Source:
    """What an importer read: class names, samples, and what the report must say about it.

    ``skipped`` lists {file, reason} for unreadable files left out; ``warnings`` and ``notes`` are
    sentences for the report (warnings: labels changed in meaning, e.g. boxes drawn as masks).
    """

    classes: list[str]
    samples: list[Sample]
    skipped: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    keep_splits: bool = True
