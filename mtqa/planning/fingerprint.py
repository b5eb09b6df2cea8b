"""Dataset fingerprint: what the training plan needs to know about a labelled dataset.

Read from file headers and mask files only (no image is decoded): image sizes and aspect
ratios, colour mode, per-class image and pixel rates, the size of each connected defect region
(its shorter box side and area, in native pixels), and the share of defect-free images.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from mtqa.data.bundle import NEU_SEG_CLASSES, index_source
from mtqa.data.errors import DatasetError
from mtqa.data.grading import default_grade_rule
from mtqa.data.records import Record, read_index_mask

QUANTILES = (0.05, 0.1, 0.25, 0.5, 0.75, 0.9)


def _quantiles(values: list[float] | np.ndarray) -> dict[str, float] | None:
    """`{"q05": .., "q10": .., ...}` of `values`, None when there are none."""
    if len(values) == 0:
        return None
    qs = np.quantile(np.asarray(values, dtype=np.float64), QUANTILES)
    return {
        f"q{round(q * 100):02d}": round(float(v), 4) for q, v in zip(QUANTILES, qs, strict=True)
    }


@dataclass
class Fingerprint:
    """Facts about a dataset's train split (val/test only counted)."""

    source: str
    classes: list[str]
    split_sizes: dict[str, int]
    height: dict[str, float]
    width: dict[str, float]
    long_side: dict[str, float]
    aspect: dict[str, float]  # width / height
    grayscale_share: float  # images whose file is single-channel
    masks: bool  # every train image has a pixel mask
    defect_free_share: float  # train images with no defect
    images_per_class: dict[str, int]
    pixel_rate: dict[str, float]  # defect pixels / image pixels over train, per class
    regions: int  # connected defect regions over train
    region_min_side: dict[str, float] | None  # shorter box side of a region, native pixels
    region_area: dict[str, float] | None  # region pixels
    region_area_fraction: dict[str, float] | None  # region pixels / its image's pixels
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _mask_of(record: Record, hw: tuple[int, int], n_classes: int) -> np.ndarray | None:
    if not record.has_mask:
        return None
    return read_index_mask(record, hw, n_classes)


def fingerprint(source: str, classes: list[str] | None = None, seed: int = 0) -> Fingerprint:
    """Fingerprint a file dataset (`neu_seg` or a folder in a format `mtqa.data` reads)."""
    if source == "synth":
        raise DatasetError("the synthetic source has no files to fingerprint")
    grades = default_grade_rule()["grades"]
    index = index_source(
        source, classes or (NEU_SEG_CLASSES if source == "neu_seg" else None), grades, seed
    )
    names = list(index.classes)
    train = index.splits["train"]
    heights, widths, gray = [], [], 0
    per_class_images = np.zeros(len(names), dtype=np.int64)
    per_class_pixels = np.zeros(len(names), dtype=np.float64)
    total_pixels, defect_free, masked = 0.0, 0, 0
    min_sides: list[float] = []
    areas: list[float] = []
    fractions: list[float] = []
    for rec in train:
        with Image.open(rec.image) as img:
            h, w, mode = img.height, img.width, img.mode
        heights.append(h)
        widths.append(w)
        gray += mode in ("L", "LA", "I", "I;16", "F", "1")
        mask = _mask_of(rec, (h, w), len(names))
        if mask is None:
            present = np.flatnonzero(np.asarray(rec.presence or (), dtype=bool))
            per_class_images[present] += 1
            defect_free += len(present) == 0
            continue
        masked += 1
        total_pixels += h * w
        labels_present = [int(v) for v in np.unique(mask) if v > 0]
        defect_free += not labels_present
        for v in labels_present:
            k = v - 1
            plane = mask == v
            per_class_images[k] += 1
            per_class_pixels[k] += plane.sum()
            labelled, count = ndimage.label(plane)
            sizes = np.bincount(labelled.ravel(), minlength=count + 1)[1:]
            for i, box in enumerate(ndimage.find_objects(labelled)):
                ys, xs = box
                min_sides.append(min(ys.stop - ys.start, xs.stop - xs.start))
                areas.append(float(sizes[i]))
                fractions.append(float(sizes[i]) / (h * w))
    n = len(train)
    long_side = np.maximum(heights, widths)
    notes = []
    if masked < n:
        notes.append(f"{n - masked} of {n} train images have image-level labels only")
    unseen = [c for c, k in zip(names, per_class_images, strict=True) if k == 0]
    if unseen and len(unseen) < len(names):
        notes.append(
            f"no train image shows {', '.join(unseen)}: the network cannot learn "
            f"{'it' if len(unseen) == 1 else 'them'}; move some of those images into train"
        )
    return Fingerprint(
        source=str(source if source == "neu_seg" else Path(source)),
        classes=names,
        split_sizes={s: len(r) for s, r in index.splits.items()},
        height=_quantiles(heights),
        width=_quantiles(widths),
        long_side=_quantiles(long_side),
        aspect=_quantiles(np.asarray(widths) / np.asarray(heights)),
        grayscale_share=round(gray / n, 4),
        masks=masked == n,
        defect_free_share=round(defect_free / n, 4),
        images_per_class={c: int(v) for c, v in zip(names, per_class_images, strict=True)},
        pixel_rate={
            c: float(v / max(total_pixels, 1.0))
            for c, v in zip(names, per_class_pixels, strict=True)
        },
        regions=len(areas),
        region_min_side=_quantiles(min_sides),
        region_area=_quantiles(areas),
        region_area_fraction=_quantiles(fractions),
        notes=notes,
    )
