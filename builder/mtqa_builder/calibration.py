"""Calibration images for INT8: real pictures from a named source, preprocessed like serving.

`--calib-data` takes `synth`, `neu_seg` or a path (an indexed-mask / MVTec dataset, or any folder
of images). Images are read raw and passed through mtqa.data.preprocess_image with the checkpoint's
size, mean and std - the very function the Triton preprocess model runs - so the measured ranges
match what the network sees in service. The set is identified by the SHA-256 of its tensor.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mtqa.data import DatasetError, iter_raw, load_image, preprocess_image
from mtqa_builder.errors import CalibrationError
from mtqa_builder.hashing import array_sha256

DEFAULT_COUNT = 64
_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


@dataclass
class CalibrationSet:
    """Preprocessed calibration images float32 [N,3,S,S] and where they came from."""

    images: np.ndarray
    source: str
    sha256: str

    def describe(self) -> dict:
        """The manifest entry: source, count and hash (never the pixels)."""
        return {"source": self.source, "count": int(len(self.images)), "sha256": self.sha256}


def _from_folder(folder: Path, count: int, image_size: int) -> list[np.ndarray]:
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in _SUFFIXES)
    files = [p for p in files if "masks" not in p.relative_to(folder).parts]
    if not files:
        return []
    picks = np.linspace(0, len(files) - 1, min(count, len(files))).astype(int)
    return [load_image(files[i], image_size) for i in picks]  # decoded as served


def load_calibration(
    source: str,
    image_size: int,
    mean: list[float],
    std: list[float],
    count: int = DEFAULT_COUNT,
    resize: str = "squash",
) -> CalibrationSet:
    """Read up to `count` train images of `source` and preprocess them as served (`resize`:
    the checkpoint's squash or letterbox); refuse if there are none."""
    if not source:
        raise CalibrationError(
            "INT8 needs --calib-data synth|neu_seg|PATH (real images, never random)"
        )
    if count < 1:
        raise CalibrationError(f"calibration count must be >= 1, got {count}")
    try:
        raws = [raw[1] for raw in iter_raw(source, "train", image_size=image_size, limit=count)]
    except DatasetError as exc:
        folder = Path(source).expanduser()
        if source in ("synth", "neu_seg") or not folder.is_dir():
            raise CalibrationError(f"calibration source {source!r} unusable: {exc}") from exc
        raws = _from_folder(folder, count, image_size)  # not a dataset layout: any folder of images
    if not raws:
        raise CalibrationError(f"calibration source {source!r} holds no images")
    try:
        images = np.stack([preprocess_image(img, image_size, mean, std, resize) for img in raws])
    except ValueError as exc:
        raise CalibrationError(f"calibration image rejected by preprocessing: {exc}") from exc
    images = images.astype(np.float32)
    return CalibrationSet(images=images, source=source, sha256=array_sha256(images))
