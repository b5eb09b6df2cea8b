"""Typed results of `inspect` and `infer_tensor`, and their parsing from Triton output arrays.

Masks arrive bit-packed at model resolution (`masks_packed`, one row of `np.packbits(mask,
bitorder="big")` per class). They stay packed until a caller asks for one: `result.mask(name)`
and `region.mask` unpack, resize to the original image size (nearest neighbour) and cache. The
per-class decision is the server's `presence_decision` (thresholds applied in the served
repository); `DefectScore.threshold` shows the published threshold when the model config has one.

An image of a batch that got no answer is an `ItemError` in the result list, at its index: the
server marks an image it could not decode in its `item_error` output and answers the others.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from mtqa_client.errors import InspectionError, InvalidInputError, ModelContractError
from mtqa_client.images import EncodedImage
from mtqa_client.spec import ModelSpec, _size_from_packed


@dataclass(frozen=True)
class Timings:
    """Client round trip of the request that carried this image, and server figures if sent."""

    round_trip_ms: float
    batch_size: int
    server: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class DefectScore:
    """One defect type: presence probability, the server's decision and its threshold."""

    name: str
    index: int
    probability: float
    decision: bool
    threshold: float | None = None


@dataclass(frozen=True)
class Grade:
    """The overall quality grade: its name, index and the probability of every grade."""

    name: str
    index: int
    probabilities: Mapping[str, float]


class _PackedMask:
    """A class mask kept bit-packed until first use, then unpacked and resized once."""

    def __init__(
        self,
        packed: np.ndarray,
        side: int,
        size: tuple[int, int],
        content: tuple[int, int] | None = None,
    ) -> None:
        self._packed, self._side, self._size = packed, side, size
        self._content = content or (side, side)  # the part of the input the image fills
        self._mask: np.ndarray | None = None

    def get(self) -> np.ndarray:
        if self._mask is None:
            bits = np.unpackbits(self._packed, count=self._side * self._side, bitorder="big")
            c_h, c_w = self._content
            small = bits.reshape(self._side, self._side)[:c_h, :c_w]
            h, w = self._size
            if (h, w) != (c_h, c_w):
                img = Image.fromarray(small * np.uint8(255)).resize((w, h), Image.NEAREST)
                small = np.asarray(img) > 127
            self._mask = small.astype(bool)
        return self._mask


@dataclass(frozen=True)
class Region:
    """One connected defect region: class, mean score, box (x0, y0, x1, y1) in original pixels."""

    class_index: int
    class_name: str
    score: float
    box: tuple[float, float, float, float]
    _class_mask: _PackedMask = field(repr=False, compare=False)

    @property
    def mask(self) -> np.ndarray:
        """Bool HxW mask (original size): this region's class mask, kept inside its box only."""
        full = self._class_mask.get()
        out = np.zeros_like(full)
        x0, y0, x1, y1 = self.box  # x1/y1 are exclusive
        h, w = full.shape
        ys = slice(max(0, math.floor(y0)), min(h, math.ceil(y1)))
        xs = slice(max(0, math.floor(x0)), min(w, math.ceil(x1)))
        out[ys, xs] = full[ys, xs]
        return out


@dataclass(frozen=True)
class InspectionResult:
    """Everything the server said about one image, plus model identity and timings."""

    source: str
    image_size: tuple[int, int]
    defects: tuple[DefectScore, ...]
    regions: tuple[Region, ...]
    grade: Grade
    model_name: str
    model_version: str
    timings: Timings
    _masks: tuple[_PackedMask, ...] = field(repr=False, compare=False)

    @property
    def ok(self) -> bool:
        """True: this image was answered (an `ItemError` in its place says False)."""
        return True

    @property
    def defective(self) -> bool:
        """True when the server decided at least one defect type is present."""
        return any(d.decision for d in self.defects)

    def defect(self, name: str) -> DefectScore:
        """The score of the defect type called `name` (KeyError if the model has no such type)."""
        for d in self.defects:
            if d.name == name:
                return d
        raise KeyError(f"no defect type {name!r}; known: {[d.name for d in self.defects]}")

    def mask(self, name: str) -> np.ndarray:
        """Bool HxW mask of defect type `name` at the original image size (decoded lazily)."""
        return self._masks[self.defect(name).index].get()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (masks excluded)."""
        return {
            "source": self.source,
            "image_size": list(self.image_size),
            "model": {"name": self.model_name, "version": self.model_version},
            "defects": [
                {
                    "name": d.name,
                    "probability": d.probability,
                    "decision": d.decision,
                    "threshold": d.threshold,
                }
                for d in self.defects
            ],
            "regions": [
                {"class": r.class_name, "score": r.score, "box": list(r.box)} for r in self.regions
            ],
            "grade": {"name": self.grade.name, "probabilities": dict(self.grade.probabilities)},
            "timings": {
                "round_trip_ms": self.timings.round_trip_ms,
                "batch_size": self.timings.batch_size,
                "server": dict(self.timings.server),
            },
        }


@dataclass(frozen=True)
class ItemError:
    """An image of a batch call that got no answer: its index in the call, source and error.

    It stands in the result list where the image's `InspectionResult` would be. `error` is the
    typed SDK error (`InvalidInputError` for an image the client or the server could not decode
    or refused as too large; the request's error when its whole request failed).
    """

    index: int
    source: str
    error: InspectionError

    @property
    def ok(self) -> bool:
        """False: this image has no result."""
        return False

    def raise_error(self) -> None:
        """Raise the item's error."""
        raise self.error

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary."""
        return {
            "source": self.source,
            "index": self.index,
            "error": {"type": type(self.error).__name__, "message": self.error.message},
        }


@dataclass(frozen=True)
class TensorResult:
    """Raw `mtqa_net` outputs for a float32 [N, 3, S, S] batch, with sigmoid/softmax helpers."""

    presence_logits: np.ndarray
    seg_logits: np.ndarray
    grade_logits: np.ndarray
    model_name: str
    model_version: str
    timings: Timings

    @property
    def presence_prob(self) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.presence_logits))

    @property
    def grade_prob(self) -> np.ndarray:
        z = self.grade_logits - self.grade_logits.max(axis=-1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=-1, keepdims=True)


def _rows(arr: np.ndarray, n: int, name: str) -> np.ndarray:
    if arr.shape[0] != n:
        raise ModelContractError(f"output {name!r} has {arr.shape[0]} rows for {n} images")
    return arr


def parse_inspect(
    outputs: Mapping[str, np.ndarray],
    images: Sequence[EncodedImage],
    spec: ModelSpec,
    model_version: str,
    timings: Timings,
) -> list[InspectionResult | ItemError]:
    """One InspectionResult per image from the batched ensemble outputs; an ItemError for each
    image the server marked in `item_error` (repositories without that output mark none)."""
    n = len(images)
    errors = outputs.get("item_error")
    errors = None if errors is None else _rows(errors, n, "item_error").reshape(n, -1)[:, 0]
    prob = _rows(outputs["presence_prob"], n, "presence_prob").reshape(n, -1)
    decision = _rows(outputs["presence_decision"], n, "presence_decision").reshape(n, -1)
    grade_prob = _rows(outputs["grade_prob"], n, "grade_prob").reshape(n, -1)
    grade_index = _rows(outputs["grade_index"], n, "grade_index").reshape(n, -1)[:, 0]
    packed = _rows(outputs["masks_packed"], n, "masks_packed").reshape(n, prob.shape[1], -1)
    if outputs["regions"].size % (6 * n):
        shape = outputs["regions"].shape
        raise ModelContractError(f"output 'regions' of shape {shape} is not [N, R, 6]")
    regions = outputs["regions"].reshape(n, -1, 6)
    orig = outputs.get("orig_size")
    # repositories that letterbox say how much of the input each image fills; older ones squash
    content = outputs.get("mask_size")
    content = None if content is None else _rows(content, n, "mask_size").reshape(n, 2)
    side = spec.image_size or _size_from_packed(packed.shape[-1])
    if side is None:
        raise ModelContractError(f"cannot infer the mask size from {packed.shape[-1]} bytes")
    classes, grades = spec.classes, spec.grades
    results: list[InspectionResult | ItemError] = []
    for i, img in enumerate(images):
        if errors is not None and errors[i]:
            reason = (
                errors[i].decode(errors="replace") if isinstance(errors[i], bytes) else errors[i]
            )
            error = InvalidInputError(f"{img.label}: the server refused the image: {reason}")
            results.append(ItemError(img.index, img.source, error))
            continue
        size = img.size
        if size == (0, 0):  # unvalidated bytes Pillow could not parse: trust the server
            size = (side, side) if orig is None else tuple(int(v) for v in orig[i].reshape(-1)[:2])
        fill = None if content is None else (int(content[i, 0]), int(content[i, 1]))
        masks = tuple(_PackedMask(packed[i, k], side, size, fill) for k in range(packed.shape[1]))
        defects = tuple(
            DefectScore(
                name=classes[k] if k < len(classes) else f"class_{k + 1}",
                index=k,
                probability=float(prob[i, k]),
                decision=bool(decision[i, k]),
                threshold=spec.thresholds.get(classes[k]) if k < len(classes) else None,
            )
            for k in range(prob.shape[1])
        )
        found = []
        for row in regions[i]:
            k = int(row[0]) if np.isfinite(row[0]) else -1
            if k < 0 or k >= len(masks):  # padding rows of a batched, ragged output
                continue
            box = (float(row[2]), float(row[3]), float(row[4]), float(row[5]))
            found.append(Region(k, defects[k].name, float(row[1]), box, masks[k]))
        g = int(grade_index[i])
        grade = Grade(
            name=grades[g] if 0 <= g < len(grades) else f"grade_{g}",
            index=g,
            probabilities={
                (grades[j] if j < len(grades) else f"grade_{j}"): float(grade_prob[i, j])
                for j in range(grade_prob.shape[1])
            },
        )
        results.append(
            InspectionResult(
                source=img.source,
                image_size=size,
                defects=defects,
                regions=tuple(found),
                grade=grade,
                model_name=spec.name,
                model_version=model_version,
                timings=timings,
                _masks=masks,
            )
        )
    return results
