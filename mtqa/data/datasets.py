"""Map-style torch datasets: synthetic on the fly, and file-backed (indexed, MVTec, CSV).

Both yield the item dict of the data contract: ``image`` float32 [3,S,S] normalised, ``mask``
float32 [K,S,S] multi-hot, ``has_mask`` bool, ``presence`` float32 [K] (``mask.any`` per class
when a mask exists), ``grade`` int64 (grade rule on the mask, or on presence), ``id`` str.
Both expose ``raw(i)`` (uint8 image at original size, or a large JPEG draft-reduced towards the
input size, class-index mask, presence) and
``set_epoch(e)``, which re-seeds augmentation and, for synthetic train, the images themselves.
``mean`` and ``std`` are plain attributes: evaluation may set them to a checkpoint's values.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from mtqa.data import grading
from mtqa.data.augment import Augmenter
from mtqa.data.preprocess import (
    fit_size,
    normalise,
    pad_fill,
    preprocess_image,
    resize_image,
    resize_mask,
)
from mtqa.data.records import Record, image_size_of, load_image, read_index_mask
from mtqa.data.synth import SynthGenerator

RawSample = tuple[str, np.ndarray, np.ndarray | None, np.ndarray]


class _Base(Dataset, ABC):
    """Shared item assembly: normalise, build targets, grade, augment."""

    def __init__(
        self,
        classes: Sequence[str],
        image_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        grade_rule: dict,
        augment: bool,
        seed: int,
        resize: str = "squash",
    ) -> None:
        self.classes = list(classes)
        self.image_size = image_size
        self.resize = resize
        self.mean, self.std = tuple(mean), tuple(std)
        self.grade_rule = grade_rule
        self.augmenter = Augmenter() if augment else None
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Re-seed per-epoch randomness (call before each epoch; workers copy it on start)."""
        self.epoch = int(epoch)

    @abstractmethod
    def raw(self, index: int) -> RawSample:
        """(id, uint8 HxWx3 image at original size, class-index mask or None, presence [K])."""

    def orig_size(self, index: int) -> tuple[int, int]:
        """Upright (height, width) of item `index` as a server receives it, before any resize."""
        height, width = self.raw(index)[1].shape[:2]
        return int(height), int(width)

    @abstractmethod
    def _targets(self, index: int) -> tuple[str, np.ndarray, np.ndarray, bool, np.ndarray, int]:
        """(id, normalised image [3,S,S], multi-hot mask [K,S,S], has_mask, presence, grade)."""

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        item_id, image, mask, has_mask, presence, grade = self._targets(index)
        return self._item(index, item_id, image, mask, has_mask, presence, grade)

    def _item(self, index, item_id, image, mask, has_mask, presence, grade) -> dict:
        """The contract dict of one item, augmented when this dataset augments."""
        if self.augmenter is not None:
            rng = np.random.default_rng([self.seed, 0xA6, self.epoch, index])
            image, mask = self.augmenter(image, mask, rng, self.mean, self.std)
        return {
            "image": torch.from_numpy(image),
            "mask": torch.from_numpy(mask.astype(np.float32)),
            "has_mask": torch.tensor(has_mask),
            "presence": torch.from_numpy(presence.astype(np.float32)),
            "grade": torch.tensor(grade, dtype=torch.int64),
            "id": item_id,
        }

    def _masked_targets(self, multi_hot: np.ndarray) -> tuple[np.ndarray, int]:
        presence = multi_hot.reshape(multi_hot.shape[0], -1).any(axis=1)
        return presence, grading.grade_from_mask(self.grade_rule, self.classes, multi_hot)


class SynthDataset(_Base):
    """Synthetic items made on demand; ``stream`` separates splits, train re-draws each epoch."""

    def __init__(
        self, generator: SynthGenerator, length: int, stream: int, fresh_per_epoch: bool, **kw
    ) -> None:
        super().__init__(classes=generator.config.classes, seed=generator.seed, **kw)
        self.generator = generator
        self.length = length
        self.stream = stream
        self.fresh_per_epoch = fresh_per_epoch

    def __len__(self) -> int:
        return self.length

    def _sample(self, index: int):
        epoch = self.epoch if self.fresh_per_epoch else 0
        return self.generator.generate(
            self.stream, epoch, index
        ), f"synth-{self.stream}-{epoch}-{index}"

    def raw(self, index: int) -> RawSample:
        sample, item_id = self._sample(index)
        return (
            item_id,
            sample.image,
            sample.index_mask,
            sample.masks.reshape(len(self.classes), -1).any(1),
        )

    def orig_size(self, index: int) -> tuple[int, int]:
        return self.generator.config.size, self.generator.config.size

    def _targets(self, index: int):
        sample, item_id = self._sample(index)
        image = preprocess_image(sample.image, self.image_size, self.mean, self.std)
        presence, grade = self._masked_targets(sample.masks)
        return item_id, image, sample.masks, True, presence, grade


class FileDataset(_Base):
    """Items read from disk; file class numbers are mapped onto the bundle's ``classes``."""

    def __init__(self, records: list[Record], file_classes: Sequence[str], **kw) -> None:
        super().__init__(**kw)
        self.records = records
        self.n_file_classes = len(file_classes)
        # remap[file index] -> bundle index (0 for background and for classes left out).
        self.remap = np.zeros(len(file_classes) + 1, dtype=np.uint8)
        self.columns = [list(file_classes).index(c) for c in self.classes]
        for j, col in enumerate(self.columns):
            self.remap[col + 1] = j + 1

    def __len__(self) -> int:
        return len(self.records)

    def raw(self, index: int) -> RawSample:
        rec = self.records[index]
        image = load_image(rec.image, self.image_size)  # decoded as mtqa_preprocess does
        if not rec.has_mask:
            presence = np.array([rec.presence[c] for c in self.columns], dtype=bool)
            return rec.id, image, None, presence
        # The mask matches the original size; a large JPEG's image arrives draft-reduced.
        hw = image_size_of(rec.image)
        mask = self.remap[read_index_mask(rec, hw, self.n_file_classes)]
        present = np.isin(np.arange(1, len(self.classes) + 1), np.unique(mask))
        return rec.id, image, mask, present

    def orig_size(self, index: int) -> tuple[int, int]:
        return image_size_of(self.records[index].image)  # the header: raw() may draft-reduce

    def _targets(self, index: int):
        rec = self.records[index]
        item_id, image, mask, presence = self.raw(index)
        x = preprocess_image(image, self.image_size, self.mean, self.std, self.resize)
        k = len(self.classes)
        if mask is None:
            multi = np.zeros((k, self.image_size, self.image_size), dtype=bool)
            grade = rec.grade
            if grade is None:
                grade = grading.grade_from_presence(self.grade_rule, self.classes, presence)
            return item_id, x, multi, False, presence, grade
        small = resize_mask(mask, self.image_size, self.resize)
        multi = small[None] == np.arange(1, k + 1, dtype=np.uint8)[:, None, None]
        presence, grade = self._masked_targets(multi)
        return item_id, x, multi, True, presence, grade

    def classes_in(self, index: int) -> np.ndarray:
        """Bundle class indices (0-based) with pixels in item `index`'s mask (mask file only)."""
        rec = self.records[index]
        if not rec.has_mask:
            presence = np.array([rec.presence[c] for c in self.columns], dtype=bool)
            return np.flatnonzero(presence)
        if rec.mask is None:
            return np.zeros(0, dtype=np.int64)
        hw = image_size_of(rec.mask)
        mask = self.remap[read_index_mask(rec, hw, self.n_file_classes)]
        return np.unique(mask[mask > 0]).astype(np.int64) - 1


class CropDataset(Dataset):
    """Training crops of a file dataset's model input: `crop` x `crop` pixels of the
    `image_size` (squashed or letterboxed) image, so the network sees defects at the input's
    full resolution for the cost of a crop.

    A `defect_share` of the crops is centred (with jitter) on a pixel of one defect class,
    the class drawn uniformly among those the split has, so rare classes are seen as often as
    common ones; the rest lie at random places of uniformly drawn images (defect-free ones
    included, which is what teaches the absence of defects). `length` crops make an epoch.
    With `crop` equal to the image size this is a class-balanced image sampler, which also
    serves images with image-level labels only.
    """

    def __init__(
        self, base: FileDataset, crop: int, defect_share: float, length: int, seed: int
    ) -> None:
        if crop > base.image_size:
            raise ValueError(f"crop {crop} is larger than the image size {base.image_size}")
        self.base, self.crop, self.defect_share = base, crop, defect_share
        self.length, self.seed, self.epoch = length, seed, 0
        self.classes = base.classes
        by_class: list[list[int]] = [[] for _ in base.classes]
        for i in range(len(base)):
            for k in base.classes_in(i):
                by_class[int(k)].append(i)
        self.by_class = [np.asarray(v, dtype=np.int64) for v in by_class]
        self.defect_classes = [k for k, v in enumerate(self.by_class) if len(v)]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        self.base.set_epoch(epoch)

    def __len__(self) -> int:
        return self.length

    def _pick(self, rng: np.random.Generator) -> tuple[int, int | None]:
        """(image index, class to centre on or None)."""
        if self.defect_classes and rng.random() < self.defect_share:
            k = int(rng.choice(self.defect_classes))
            return int(rng.choice(self.by_class[k])), k
        return int(rng.integers(len(self.base))), None

    def _origin(self, rng, mask: np.ndarray, k: int | None, content: tuple[int, int]) -> tuple:
        """Top-left corner of the crop: around a class-k pixel, else anywhere in the content."""
        size, c = mask.shape[0], self.crop
        ys, xs = np.nonzero(mask == k + 1) if k is not None else ((), ())
        if len(ys):
            j = int(rng.integers(len(ys)))
            jitter = rng.integers(-c // 4, c // 4 + 1, size=2)
            cy, cx = int(ys[j]) + int(jitter[0]), int(xs[j]) + int(jitter[1])
            y0, x0 = cy - c // 2, cx - c // 2
        else:
            y0 = int(rng.integers(max(1, content[0] - c + 1)))
            x0 = int(rng.integers(max(1, content[1] - c + 1)))
        return int(np.clip(y0, 0, size - c)), int(np.clip(x0, 0, size - c))

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        base, c = self.base, self.crop
        rng = np.random.default_rng([self.seed, 0xC7, self.epoch, index])
        j, k = self._pick(rng)
        size = base.image_size
        if c == size and not base.records[j].has_mask:
            # Image-level labels: the whole input is the one "crop" whose label is known; the
            # class-balanced draw is what this dataset adds.
            return base._item(index, *base._targets(j))
        item_id, image, mask, presence = base.raw(j)
        content = fit_size(image.shape[0], image.shape[1], size, base.resize)
        canvas = resize_image(image, size, base.resize, pad_fill(base.mean))
        if mask is None:  # image-level labels only: no part of an image can be told defect-free
            raise ValueError(f"item {item_id} has no mask; crops smaller than the input need masks")
        small = resize_mask(mask, size, base.resize)
        y0, x0 = self._origin(rng, small, k, content)
        window = (slice(y0, y0 + c), slice(x0, x0 + c))
        x = normalise(np.ascontiguousarray(canvas[window]), base.mean, base.std)
        multi = (
            small[window][None]
            == np.arange(1, len(self.classes) + 1, dtype=np.uint8)[:, None, None]
        )
        presence, grade = base._masked_targets(multi)
        return base._item(index, f"{item_id}@{y0},{x0}", x, multi, True, presence, grade)
