"""Map-style torch datasets: synthetic on the fly, and file-backed (indexed, MVTec, CSV).

Both yield the item dict of the data contract: ``image`` float32 [3,S,S] normalised, ``mask``
float32 [K,S,S] multi-hot, ``has_mask`` bool, ``presence`` float32 [K] (``mask.any`` per class
when a mask exists), ``grade`` int64 (grade rule on the mask, or on presence), ``id`` str.
Both expose ``raw(i)`` (original-size uint8 image, class-index mask, presence) and
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
from mtqa.data.preprocess import preprocess_image, resize_mask
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
    ) -> None:
        self.classes = list(classes)
        self.image_size = image_size
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

    @abstractmethod
    def _targets(self, index: int) -> tuple[str, np.ndarray, np.ndarray, bool, np.ndarray, int]:
        """(id, normalised image [3,S,S], multi-hot mask [K,S,S], has_mask, presence, grade)."""

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        item_id, image, mask, has_mask, presence, grade = self._targets(index)
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

    def _targets(self, index: int):
        rec = self.records[index]
        item_id, image, mask, presence = self.raw(index)
        x = preprocess_image(image, self.image_size, self.mean, self.std)
        k = len(self.classes)
        if mask is None:
            multi = np.zeros((k, self.image_size, self.image_size), dtype=bool)
            grade = rec.grade
            if grade is None:
                grade = grading.grade_from_presence(self.grade_rule, self.classes, presence)
            return item_id, x, multi, False, presence, grade
        small = resize_mask(mask, self.image_size)
        multi = small[None] == np.arange(1, k + 1, dtype=np.uint8)[:, None, None]
        presence, grade = self._masked_targets(multi)
        return item_id, x, multi, True, presence, grade
