"""COCO run-length encodings (compressed string or uncompressed counts) to boolean masks."""

from __future__ import annotations

import numpy as np
from pycocotools import mask as coco_mask

from mtqa.data.errors import DatasetError


def decode_rle(rle: dict, where: str) -> np.ndarray:
    """Decode ``{"size": [h, w], "counts": ...}`` to bool HxW; counts run column-major."""
    try:
        h, w = (int(v) for v in rle["size"])
        counts = rle["counts"]
        if isinstance(counts, list):  # uncompressed: alternating background/foreground runs
            if sum(counts) != h * w:
                raise ValueError(f"counts sum to {sum(counts)}, not {h}x{w}={h * w}")
            encoded = coco_mask.frPyObjects({"size": [h, w], "counts": counts}, h, w)
        else:
            text = counts.encode("ascii") if isinstance(counts, str) else bytes(counts)
            if not text:  # pycocotools would decode an empty string to stray pixels
                raise ValueError("empty counts")
            encoded = {"size": [h, w], "counts": text}
        mask = coco_mask.decode(encoded)
    except (KeyError, TypeError, ValueError, UnicodeEncodeError) as exc:
        raise DatasetError(f"{where}: bad RLE segmentation: {exc}") from exc
    return mask.astype(bool)


def encode_rle(mask: np.ndarray) -> dict:
    """Compressed RLE of a bool mask (``counts`` as str), the inverse of :func:`decode_rle`."""
    encoded = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in encoded["size"]], "counts": encoded["counts"].decode()}
