"""Folders of binary masks, one folder per class, in the common layouts.

- class folders: ``<class>/<id>.jpg`` with its mask beside it (``<id>.png`` next to a non-PNG
  image, or ``<id>_mask.png`` / ``_gt`` / ``_label``), also inside a subfolder (``<class>/Imgs/``)
  or split into ``<class>/images/`` + ``<class>/masks/`` (Magnetic-tile, many Kaggle sets);
- shared images: ``images/<id>.*`` with ``masks/<class>/<id>[_mask].png`` (an image may be in
  several class folders), or with ``masks/<id>.png`` for a single class named ``defect``;
- MVTec-AD: ``train/good/``, ``test/<type>/``, ``ground_truth/<type>/<id>_mask.png``; its
  train/test split is an anomaly-detection split (no defect in train), so it is not kept.

A top level made only of split folders (``train/``, ``val/`` ...) keeps those splits. A folder
named like good / ok / free / normal / defect-free, or whose masks are all empty, holds
defect-free images and is not a class. A name prefix shared by every folder (``MT_Blowhole``,
``MT_Break`` -> ``blowhole``, ``break``) is stripped and names are lower-cased.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from mtqa.data.errors import DatasetError
from mtqa.data.importers.base import MaskFile, Sample, Source
from mtqa.data.importers.rasterise import read_binary_mask
from mtqa.data.naming import (
    MASK_DIRS,
    MASK_SUFFIXES,
    class_names,
    is_defect_free,
    split_of_folder,
)
from mtqa.data.records import images_under

SINGLE_CLASS = "defect"  # the class of an images/ + masks/<id>.png layout


def _mask_base(path: Path) -> str | None:
    """The image stem a file is the mask of, if its name or folder says it is a mask."""
    stem = path.stem
    for suffix in MASK_SUFFIXES:
        if stem.lower().endswith(suffix):
            return stem[: -len(suffix)]
    if path.parent.name.lower() in MASK_DIRS:
        return stem
    return None


def pairimages_under(folder: Path) -> tuple[dict[str, Path], dict[str, Path], list[dict]]:
    """(image per key, mask per key, skipped) for one class folder; key = stem under folder."""
    images: dict[str, list[Path]] = {}
    masks: dict[str, Path] = {}
    for path in images_under(folder):
        rel = path.relative_to(folder).parent
        parts = [p for p in rel.parts if p.lower() not in MASK_DIRS and p.lower() != "images"]
        base = _mask_base(path)
        if base is not None:
            masks["/".join([*parts, base])] = path
        else:
            images.setdefault("/".join([*parts, path.stem]), []).append(path)
    chosen: dict[str, Path] = {}
    skipped: list[dict] = []
    for key, paths in images.items():
        if len(paths) == 2 and key not in masks:  # <id>.jpg + <id>.png: the PNG is the mask
            pngs = [p for p in paths if p.suffix.lower() == ".png"]
            if len(pngs) == 1:
                masks[key] = pngs[0]
                chosen[key] = next(p for p in paths if p is not pngs[0])
                continue
        if len(paths) > 1:
            skipped.append(
                {"file": str(paths[0]), "reason": f"several images share the name: {paths}"}
            )
            continue
        chosen[key] = paths[0]
    for key, mask in masks.items():
        if key not in chosen and key not in images:
            skipped.append({"file": str(mask), "reason": "mask without an image"})
    return chosen, masks, skipped


def _any_defect(masks: list[Path]) -> bool:
    """Whether any readable mask marks a pixel (an unreadable one is skipped when written)."""
    for mask in masks:
        try:
            if read_binary_mask(mask).any():
                return True
        except DatasetError:
            continue
    return False


def _classify(folders: dict[str, Path], source: Source) -> dict[str, str | None]:
    """Folder -> class name, or None for a defect-free folder; notes why."""
    names = class_names(sorted(folders))
    result: dict[str, str | None] = {}
    for folder, name in names.items():
        if is_defect_free(name):
            source.notes.append(f"folder {folder!r} holds defect-free images (its name)")
            result[folder] = None
        else:
            result[folder] = name
    return result


def _drop_empty(source: Source, by_class: dict[str, list[Path]]) -> set[str]:
    """Class names whose masks are all empty (their folders hold defect-free images)."""
    empty = set()
    for name, masks in sorted(by_class.items()):
        if not _any_defect(masks):
            empty.add(name)
            source.notes.append(
                f"class folder {name!r}: all {len(masks)} masks are empty, so its "
                "images are defect-free and it is not a class"
            )
    return empty


def _finish(source: Source, samples: list[tuple[Sample, list[tuple[str, Path]]]]) -> Source:
    """Number the classes (sorted, minus all-empty ones) and attach mask labels to samples."""
    by_class: dict[str, list[Path]] = {}
    for _, labels in samples:
        for name, mask in labels:
            by_class.setdefault(name, []).append(mask)
    empty = _drop_empty(source, by_class)
    source.classes = sorted(n for n in by_class if n not in empty)
    class_of = {n: k for k, n in enumerate(source.classes, start=1)}
    for sample, labels in samples:
        sample.labels = [(class_of[n], MaskFile(m)) for n, m in labels if n in class_of]
        source.samples.append(sample)
    return source


def _unique_ids(samples: list[tuple[Sample, list]], prefixes: list[str]) -> None:
    counts = Counter(s.id for s, _ in samples)
    for (sample, _), prefix in zip(samples, prefixes, strict=True):
        if counts[sample.id] > 1:
            sample.id = f"{prefix}_{sample.id}"


def _read_mvtec(src: Path, source: Source) -> Source:
    source.keep_splits = False
    source.notes.append(
        "MVTec-AD layout: its train/test split has no defect in train, so splits are drawn anew"
    )
    gt_folders = {p.name: p for p in sorted((src / "ground_truth").iterdir()) if p.is_dir()}
    test_folders = {p.name: p for p in sorted((src / "test").iterdir()) if p.is_dir()}
    kinds = _classify({**gt_folders, **test_folders}, source)
    samples, prefixes = [], []
    for group in ("train", "test"):
        for folder in sorted((src / group).iterdir()) if (src / group).is_dir() else []:
            if not folder.is_dir():
                continue
            name = kinds.get(folder.name) if group == "test" else None
            for image in images_under(folder):
                sample = Sample(id=f"{folder.name}_{image.stem}", image=image)
                labels = []
                if name is not None:
                    mask = src / "ground_truth" / folder.name / f"{image.stem}_mask.png"
                    if mask.is_file():
                        labels = [(name, mask)]
                    else:
                        sample.has_label_file = False
                samples.append((sample, labels))
                prefixes.append(group)
    _unique_ids(samples, prefixes)
    return _finish(source, samples)


def _read_shared(src: Path, mask_root: Path, source: Source) -> Source:
    folders = _subfolders(mask_root)
    if folders:
        kinds = _classify(folders, source)
    else:  # masks/<id>.png: one class, named by nothing in the layout
        folders, kinds = {mask_root.name: mask_root}, {mask_root.name: SINGLE_CLASS}
        source.notes.append(
            f"{mask_root} holds masks, not class folders: one class named {SINGLE_CLASS!r}"
        )
    masks_of: dict[str, list[tuple[str, Path]]] = {}
    for folder, path in folders.items():
        for mask in images_under(path):
            if kinds[folder] is not None:
                base = _mask_base(mask) or mask.stem
                masks_of.setdefault(base, []).append((kinds[folder], mask))
    samples = []
    for image in images_under(src / "images"):
        rel = image.relative_to(src / "images")
        split = split_of_folder(rel.parts[0]) if len(rel.parts) > 1 else None
        labels = masks_of.get(image.stem, [])
        sample = Sample(id=image.stem, image=image, split=split, has_label_file=bool(labels))
        samples.append((sample, labels))
    return _finish(source, samples)


def _read_class_folders(
    folders: dict[str, Path], split: str | None, source: Source
) -> list[tuple[Sample, list[tuple[str, Path]]]]:
    kinds = _classify(folders, source)
    samples = []
    for folder, path in folders.items():
        images, masks, skipped = pairimages_under(path)
        source.skipped += skipped
        for key, image in sorted(images.items()):
            name = kinds[folder]
            sample = Sample(id=image.stem, image=image, split=split)
            labels = []
            if name is not None:
                if key in masks:
                    labels = [(name, masks[key])]
                else:
                    sample.has_label_file = False
            samples.append((sample, labels))
    return samples


def _subfolders(path: Path) -> dict[str, Path]:
    return {p.name: p for p in sorted(path.iterdir()) if p.is_dir() and not p.name.startswith(".")}


def read(src: Path) -> Source:
    """Read a folder of per-class binary masks in any of the layouts above."""
    if not src.is_dir():
        raise DatasetError(f"masks source must be a folder: {src}")
    source = Source(classes=[], samples=[])
    if (src / "ground_truth").is_dir() and (src / "test").is_dir():
        return _read_mvtec(src, source)
    for name in sorted(MASK_DIRS):
        if (src / "images").is_dir() and (src / name).is_dir():
            return _read_shared(src, src / name, source)
    top = _subfolders(src)
    if not top:
        raise DatasetError(f"{src}: expected one folder per class (or images/ + masks/<class>/)")
    samples: list[tuple[Sample, list]] = []
    prefixes: list[str] = []
    if all(split_of_folder(n) for n in top):
        for split_name, path in top.items():
            part = _read_class_folders(_subfolders(path), split_of_folder(split_name), source)
            samples += part
            prefixes += [re.sub(r"\W", "_", split_name)] * len(part)
    else:
        samples = _read_class_folders(top, None, source)
        prefixes = [s.image.relative_to(src).parts[0] for s, _ in samples]
    _unique_ids(samples, prefixes)
    return _finish(source, samples)
