"""``build_datasets``: resolve a source name or path into train/val/test datasets plus metadata."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from mtqa.data import formats, grading
from mtqa.data.datasets import CropDataset, FileDataset, RawSample, SynthDataset, _Base
from mtqa.data.errors import DatasetError
from mtqa.data.folders import load_folders
from mtqa.data.preprocess import resize_image
from mtqa.data.records import SPLITS, SourceIndex
from mtqa.data.synth import SynthConfig, SynthGenerator, synth_classes

NEU_SEG_CLASSES: list[str] = ["inclusion", "patches", "scratches"]
_STREAMS = {"train": 0, "val": 1, "test": 2}
_STATS_IMAGES = 32  # train images sampled to compute the normalisation mean/std


@dataclass
class DataBundle:
    """Datasets of one source plus everything the checkpoint must remember about them."""

    train: Dataset
    val: Dataset
    test: Dataset | None
    classes: list[str]
    grades: list[str]
    grade_rule: dict
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    source: dict


def neu_seg_path() -> Path:
    """Where the NEU-Seg preset looks: ``$MTQA_NEU_SEG`` or ``<repo>/../shared/data/neu_seg``."""
    env = os.environ.get("MTQA_NEU_SEG")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2].parent / "shared" / "data" / "neu_seg"


def index_source(
    source: str,
    classes: list[str] | None,
    grades: list[str],
    seed: int = 0,
    limit: int | None = None,
) -> SourceIndex:
    """Index a file-backed source (``neu_seg`` preset or a path), checking requested classes.

    ``limit`` bounds how many files per split the indexed-mask loader opens (large folders).
    """
    if source == "neu_seg":
        path = neu_seg_path()
        if not path.is_dir():
            raise DatasetError(f"NEU-Seg folder not found: {path} (set MTQA_NEU_SEG)")
        index = formats.load_indexed(path, NEU_SEG_CLASSES, seed, limit)
        index.kind = "neu_seg"
    else:
        path = Path(source).expanduser()
        kind = formats.detect(path)
        if kind == "indexed":
            index = formats.load_indexed(path, classes, seed, limit)
        elif kind == "mvtec":
            index = formats.load_mvtec(path, seed)
        elif kind == "folders":
            index = load_folders(path, seed)
        else:
            index = formats.load_csv(path, grades, seed)
    unknown = [c for c in classes or [] if c not in index.classes]
    if unknown:
        raise DatasetError(f"class(es) {unknown} not in dataset {path}; it has {index.classes}")
    for split in ("train", "val"):
        if not index.splits.get(split):
            raise DatasetError(f"dataset {path} has an empty or missing '{split}' split")
    if "test" in index.splits and not index.splits["test"]:
        raise DatasetError(f"dataset {path} has an empty 'test' split")
    return index


def _channel_stats(dataset: _Base, size: int) -> tuple[tuple, tuple]:
    """Per-channel mean/std (0..1 pixels) of up to _STATS_IMAGES evenly spaced raw images."""
    picks = np.linspace(0, len(dataset) - 1, min(_STATS_IMAGES, len(dataset))).astype(int)
    pixels = np.stack([resize_image(dataset.raw(int(i))[1], size) for i in picks]) / 255.0
    mean = pixels.mean(axis=(0, 1, 2))
    std = np.maximum(pixels.std(axis=(0, 1, 2)), 1e-3)
    return tuple(round(float(v), 4) for v in mean), tuple(round(float(v), 4) for v in std)


def build_datasets(
    source: str,
    image_size: int,
    *,
    seed: int = 0,
    augment: bool = True,
    synth_sizes: tuple[int, int, int] = (2048, 256, 256),
    classes: list[str] | None = None,
    grade_rule: dict | None = None,
    limit: int | None = None,
    resize: str = "squash",
    crop_size: int = 0,
    defect_crop_share: float = 0.5,
    epoch_items: int = 0,
    normalisation: tuple[tuple[float, ...], tuple[float, ...]] | None = None,
) -> DataBundle:
    """Build the train/val/test datasets of ``source`` (``synth``, ``neu_seg`` or a path).

    Augmentation applies to train only. ``limit`` caps every split (for tests). Normalisation
    mean/std are measured on a few train images and belong in the checkpoint with the rest.
    File sources are ``resize``d (squash or letterbox) to ``image_size``; with ``crop_size``
    train yields crops of that input (:class:`CropDataset`), ``epoch_items`` of them an epoch.
    ``normalisation`` (mean, std) replaces the measured statistics: a pretrained encoder
    expects the inputs its weights were trained on.
    """
    if image_size < 16:
        raise DatasetError(f"image_size must be >= 16, got {image_size}")
    if limit is not None and limit < 1:
        raise DatasetError(f"limit must be >= 1, got {limit}")
    rule = grading.validate_rule(grade_rule or grading.default_grade_rule())
    common = {"image_size": image_size, "grade_rule": rule}
    if source == "synth":
        if crop_size:
            raise DatasetError("training crops need a file dataset; synthetic images are drawn")
        config = SynthConfig(size=image_size, classes=synth_classes(classes))
        generator = SynthGenerator(config, seed)
        sizes = [min(n, limit) if limit else n for n in synth_sizes]
        if min(sizes[:2]) < 1:
            raise DatasetError(f"synthetic train and val sizes must be >= 1, got {synth_sizes}")

        def make(split: str, mean=(0.5,) * 3, std=(0.25,) * 3, aug=False) -> SynthDataset:
            n = sizes[_STREAMS[split]]
            return SynthDataset(
                generator,
                n,
                _STREAMS[split],
                split == "train",
                mean=mean,
                std=std,
                augment=aug,
                **common,
            )

        names = list(config.classes)
        info = {"kind": "synth", "path": None, "synth": config.to_dict()}
        present = {s: sizes[_STREAMS[s]] > 0 for s in SPLITS}
    else:
        index = index_source(source, classes, rule["grades"], seed, limit)
        names = list(classes or index.classes)
        records = {s: r[:limit] if limit else r for s, r in index.splits.items()}

        def make(split: str, mean=(0.5,) * 3, std=(0.25,) * 3, aug=False) -> FileDataset:
            return FileDataset(
                records[split],
                index.classes,
                classes=names,
                mean=mean,
                std=std,
                augment=aug,
                seed=seed,
                resize=resize,
                **common,
            )

        info = {"kind": index.kind, "path": str(index.path), **index.info}
        present = {s: s in records for s in SPLITS}
    if normalisation is None:
        mean, std = _channel_stats(make("train"), image_size)
    else:
        mean, std = (tuple(float(v) for v in part) for part in normalisation)
    train = make("train", mean, std, augment)
    if crop_size:
        train = CropDataset(train, crop_size, defect_crop_share, epoch_items or len(train), seed)
    val = make("val", mean, std)
    test = make("test", mean, std) if present["test"] else None
    sizes_out = {"train": len(train), "val": len(val), "test": len(test) if test else 0}
    return DataBundle(
        train=train,
        val=val,
        test=test,
        classes=names,
        grades=list(rule["grades"]),
        grade_rule=rule,
        image_size=image_size,
        mean=mean,
        std=std,
        source={**info, "seed": seed, "sizes": sizes_out, "classes": names, "limit": limit},
    )


def iter_raw(
    source: str,
    split: str,
    *,
    image_size: int = 128,
    seed: int = 0,
    classes: list[str] | None = None,
    synth_sizes: tuple[int, int, int] = (2048, 256, 256),
    limit: int | None = None,
) -> Iterator[RawSample]:
    """Yield (id, uint8 image at original size, class-index mask or None, presence bool [K]).

    For calibration sets and overlays. Synthetic images are drawn at ``image_size`` (train as
    epoch 0); file images keep their size. Class indices follow ``classes`` (1-based).
    """
    if split not in SPLITS:
        raise DatasetError(f"split must be one of {SPLITS}, got {split!r}")
    bundle = build_datasets(
        source,
        image_size,
        seed=seed,
        augment=False,
        synth_sizes=synth_sizes,
        classes=classes,
        limit=limit,
    )
    dataset = getattr(bundle, split)
    if dataset is None:
        raise DatasetError(f"source {source!r} has no '{split}' split")
    for i in range(len(dataset)):
        yield dataset.raw(i)
