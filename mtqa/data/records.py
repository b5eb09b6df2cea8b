"""Sample records: what a file-backed dataset knows about one image before reading it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from mtqa.data import decode
from mtqa.data.errors import DatasetError

SPLITS: tuple[str, ...] = ("train", "val", "test")
IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


@dataclass(frozen=True)
class Record:
    """One image on disk and where its labels come from.

    ``mask`` is a PNG path or None. ``mask_class`` None means an indexed mask (pixel value k is
    file class k); an int means a binary mask whose non-zero pixels are that 1-based class. With
    ``has_mask`` True and ``mask`` None the image is known defect-free (e.g. MVTec ``good``).
    ``presence`` holds image-level 0/1 labels (CSV), ``grade`` an explicit grade index.
    """

    id: str
    image: Path
    mask: Path | None = None
    mask_class: int | None = None
    has_mask: bool = True
    presence: tuple[int, ...] | None = None
    grade: int | None = None


@dataclass
class SourceIndex:
    """A dataset found on disk: its class names (file order), records per split, description."""

    kind: str
    path: Path
    classes: list[str]
    splits: dict[str, list[Record]]
    info: dict = field(default_factory=dict)


def is_image(path: Path) -> bool:
    """Whether `path` names an image file the loaders read (by its suffix)."""
    return path.suffix.lower() in IMAGE_SUFFIXES


def images_under(folder: Path) -> list[Path]:
    """The image files anywhere under `folder`, sorted."""
    return sorted(p for p in folder.rglob("*") if is_image(p))


def load_image(path: str | Path, size: int | None = None) -> np.ndarray:
    """Read an image file as upright uint8 HxWx3 RGB with the decoder serving uses.

    `mtqa.data.decode.decode_image`: EXIF orientation applied, 16-bit and float data mapped by
    their range, grayscale repeated, alpha dropped, at most `decode.DEFAULT_MAX_PIXELS`. `size` is
    the network's image size: a large JPEG is then decoded reduced (JPEG draft, still covering
    size x size) exactly as `mtqa_preprocess` decodes it, so training sees the served pixels.
    """
    path = Path(path)
    try:
        return decode.decode_image(path, size=size).rgb
    except FileNotFoundError as exc:
        raise DatasetError(f"image file not found: {path}") from exc
    except decode.DecodeError as exc:
        raise DatasetError(f"cannot read image {path}: {exc}") from exc


def image_size_of(path: Path) -> tuple[int, int]:
    """Upright (height, width) of an image file from its header, without decoding the pixels."""
    try:
        return decode.probe_image(Path(path))
    except FileNotFoundError as exc:
        raise DatasetError(f"file not found: {path}") from exc
    except decode.DecodeError as exc:
        raise DatasetError(f"cannot read image {path}: {exc}") from exc


def read_index_mask(record: Record, image_hw: tuple[int, int], n_file_classes: int) -> np.ndarray:
    """Class-index mask (uint8 HxW, file class numbering) of a record, checked against its image."""
    if record.mask is None:
        return np.zeros(image_hw, dtype=np.uint8)
    try:
        with Image.open(record.mask) as img:
            if img.mode not in ("L", "P", "1", "I", "I;16"):
                img = img.convert("L")
            mask = np.asarray(img)
    except FileNotFoundError as exc:
        raise DatasetError(f"mask file not found: {record.mask}") from exc
    except (OSError, SyntaxError) as exc:
        raise DatasetError(f"cannot read mask {record.mask}: {exc}") from exc
    if mask.shape[:2] != tuple(image_hw):
        raise DatasetError(
            f"mask {record.mask} is {mask.shape[1]}x{mask.shape[0]} but its image {record.image} "
            f"is {image_hw[1]}x{image_hw[0]}"
        )
    if record.mask_class is not None:
        return np.where(mask > 0, record.mask_class, 0).astype(np.uint8)
    top = int(mask.max()) if mask.size else 0
    if top > n_file_classes:
        raise DatasetError(
            f"mask {record.mask} holds class index {top} but the dataset has only "
            f"{n_file_classes} classes (indices 1..{n_file_classes})"
        )
    return mask.astype(np.uint8)
