"""Loaders that index datasets on disk: indexed-mask format, MVTec-AD folders, CSV labels
(class folders of images: `mtqa.data.folders`).

Each loader returns a :class:`SourceIndex` (classes in file order plus records per split) without
decoding pixels; the dataset classes read images and masks lazily.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
from PIL import Image

from mtqa.data.errors import DatasetError
from mtqa.data.folders import looks_like_folders
from mtqa.data.naming import MASK_DIRS, MASK_SUFFIXES, YAML_NAMES
from mtqa.data.records import IMAGE_SUFFIXES, SPLITS, Record, SourceIndex, image_size_of
from mtqa.data.splits import (
    TEST_SHARE,
    VAL_SHARE,
    complete_splits,
    shown_by_presence,
    split_records,
)

VAL_FRACTION = 0.1  # share of train moved to val when a dataset ships without a val split
CLASSES = "classes.json"  # the indexed-mask format's class names


def detect(path: Path) -> str:
    """Name the format of a dataset path: ``indexed``, ``mvtec``, ``folders`` or ``csv``."""
    if not path.exists():
        raise DatasetError(f"dataset path does not exist: {path}")
    if path.is_file():
        if path.suffix.lower() == ".csv":
            return "csv"
        raise DatasetError(f"dataset file {path} is not a .csv of image-level labels")
    if (path / "images").is_dir() and ((path / "masks").is_dir() or (path / CLASSES).is_file()):
        return "indexed"
    if (path / "train" / "good").is_dir() and (path / "ground_truth").is_dir():
        return "mvtec"
    categories = sorted(
        p.name for p in path.iterdir() if (p / "train" / "good").is_dir() and (p / "test").is_dir()
    )
    if categories:
        raise DatasetError(
            f"{path} holds several MVTec-AD categories ({', '.join(categories)}); "
            "pass one category folder"
        )
    if fmt := import_format_of(path):
        raise DatasetError(
            f"{path} looks like a {fmt} dataset, which mtqa reads once imported: "
            f"mtqa data import --from {fmt} {path} --out DIR, then use DIR"
        )
    if looks_like_folders(path):
        return "folders"
    raise DatasetError(
        f"cannot tell the format of {path}: expected images/<split>/ (indexed-mask format), "
        "train/good/ with ground_truth/ (MVTec-AD category), class folders of images "
        "([<split>/]<class>/*.jpg) or a .csv file"
    )


def import_format_of(path: Path) -> str | None:
    """The `mtqa data import` format a folder's label files suggest (None: no label files).

    Checked before class folders of images are assumed, so that a VOC folder's JPEGImages/ or a
    mask folder's masks are never taken for a defect class.
    """
    if any((path / name).is_file() for name in YAML_NAMES) or (path / "labels").is_dir():
        return "yolo"
    docs: list[Path] = []  # JSON files, read after the walk (a stray metadata JSON is no label)
    masks = False
    for item in path.rglob("*"):  # one walk of the tree; VOC outranks what else it holds
        suffix = item.suffix.lower()
        if suffix == ".xml":
            return "voc"
        if suffix == ".json":
            docs.append(item)
        elif suffix in IMAGE_SUFFIXES:
            masks = masks or item.stem.lower().endswith(MASK_SUFFIXES)
        elif item.name.lower() in MASK_DIRS and item.is_dir():
            masks = True
    for doc in docs[:20]:
        with doc.open("rb") as fh:
            head = fh.read(65536)
        if b'"shapes"' in head:
            return "labelme"
        if b'"annotations"' in head:
            return "coco"
    return "masks" if masks else None


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def _carve_val(train: list[Record], fraction: float, seed: int) -> tuple[list, list]:
    """(train, val): a seeded `fraction` of `train` moved to val, stratified by the classes its
    masks show, so that sparse defects still reach val (a uniform draw of a tenth of 42 defect
    images among 320 can leave val with a handful)."""
    shown = {}
    for rec in train:
        with Image.open(rec.mask) as mask:
            shown[rec.id] = {int(v) for v in np.unique(np.asarray(mask)) if v > 0}
    drawn = split_records(train, shown, seed, fraction, 0.0)
    return drawn["train"], drawn["val"]


def read_classes_json(path: Path) -> list[str]:
    """The ``classes`` list of a classes.json file."""
    try:
        classes = json.loads(path.read_text())["classes"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DatasetError(f'{path} must hold {{"classes": [names...]}}: {exc}') from exc
    if not (isinstance(classes, list) and classes and all(isinstance(c, str) for c in classes)):
        raise DatasetError(f"{path}: 'classes' must be a non-empty list of names")
    return classes


def load_indexed(
    root: Path, classes: list[str] | None, seed: int = 0, limit: int | None = None
) -> SourceIndex:
    """Index ``images/<split>/<id>.*`` with ``masks/<split>/<id>.png`` (class-index masks).

    Class names come from ``classes.json`` or, when it is absent, from ``classes`` (as for the
    read-only NEU-Seg folder). Without a val split, a seeded tenth of train becomes val,
    stratified by class.
    ``limit`` keeps the first images of each split (sorted), so only those files are opened.
    """
    cj = root / CLASSES
    if cj.exists():
        file_classes = read_classes_json(cj)
    elif classes:
        file_classes = list(classes)
    else:
        raise DatasetError(f"{root} has no classes.json; pass the class names (classes=...)")
    splits: dict[str, list[Record]] = {}
    for split in SPLITS:
        folder = root / "images" / split
        if not folder.is_dir():
            continue
        records = []
        for img in _images_in(folder)[:limit]:
            mask = root / "masks" / split / f"{img.stem}.png"
            if not mask.exists():
                raise DatasetError(f"image {img} has no mask (expected {mask})")
            if image_size_of(img) != image_size_of(mask):
                raise DatasetError(
                    f"mask {mask} size {image_size_of(mask)} differs from image {img} "
                    f"size {image_size_of(img)} (height, width)"
                )
            records.append(Record(id=img.stem, image=img, mask=mask))
        splits[split] = records
    info: dict = {}
    if "train" in splits and "val" not in splits:
        splits["train"], splits["val"] = _carve_val(splits["train"], VAL_FRACTION, seed)
        info["val_from"] = "train"
    return SourceIndex("indexed", root, file_classes, splits, info)


def load_mvtec(root: Path, seed: int = 0) -> SourceIndex:
    """Index an MVTec-AD category folder; defect types are the folder names under ``test/``.

    MVTec-AD's own split keeps every defect in test (it is an anomaly-detection benchmark), which
    would leave a supervised network nothing to learn defects from. So all images (train/good,
    test/good and each test/<type>) are pooled and split seeded and stratified by type, as
    `mtqa data import` splits a source without splits: val and test 15 % each, every type with
    2+ (3+) images keeping one in val (test). Masks: ``ground_truth/<type>/<id>_mask.png``
    (binary); ``good`` images have empty masks.
    """
    test_dir = root / "test"
    if not test_dir.is_dir():
        raise DatasetError(f"MVTec folder {root} has no test/ folder")
    types = sorted(p.name for p in test_dir.iterdir() if p.is_dir() and p.name != "good")
    records = [Record(id=f"good/{p.stem}", image=p) for p in _images_in(root / "train" / "good")]
    for folder in sorted(p for p in test_dir.iterdir() if p.is_dir()):
        for img in _images_in(folder):
            if folder.name == "good":
                records.append(Record(id=f"test_good/{img.stem}", image=img))
                continue
            mask = root / "ground_truth" / folder.name / f"{img.stem}_mask.png"
            if not mask.exists():
                raise DatasetError(f"defect image {img} has no mask (expected {mask})")
            cls = types.index(folder.name) + 1
            records.append(
                Record(id=f"{folder.name}/{img.stem}", image=img, mask=mask, mask_class=cls)
            )
    shown = {r.id: {r.mask_class} if r.mask_class else set() for r in records}
    splits = split_records(records, shown, seed, VAL_SHARE, TEST_SHARE)
    return SourceIndex("mvtec", root, types, splits)


def load_csv(path: Path, grades: list[str], seed: int = 0) -> SourceIndex:
    """Index a CSV of image-level labels: ``image,<class>...`` (0/1), optional ``split`` and
    ``grade``.

    Image paths are relative to the CSV's folder. There are no masks (``has_mask`` False); a
    ``grade`` cell (name from ``grades`` or its index) is used as given, else the grade comes from
    presence through the grade rule. Rows without a split (no column, or an empty cell) are split
    seeded and stratified by class, val and test 15 % each; without val rows, a stratified 15 % of
    train becomes val.
    """
    try:
        with path.open(newline="") as fh:
            reader = csv.DictReader(fh)
            rows = list(reader)
            header = list(reader.fieldnames or [])
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"cannot read CSV {path}: {exc}") from exc
    if "image" not in header:
        raise DatasetError(f"CSV {path} needs columns image,[split,]<class>...; got {header}")
    if not rows:
        raise DatasetError(f"CSV {path} has no rows: the dataset is empty")
    classes = [c for c in header if c not in ("image", "split", "grade")]
    if not classes:
        raise DatasetError(f"CSV {path} has no class columns beside image, split and grade")
    splits: dict[str | None, list[Record]] = {}
    for line, row in enumerate(rows, start=2):
        where = f"{path} line {line}"
        split = (row.get("split") or "").strip()
        if split and split not in SPLITS:
            raise DatasetError(f"{where}: split {split!r} is not one of {SPLITS} (or empty)")
        try:
            presence = tuple(int(row[c]) for c in classes)
        except (TypeError, ValueError) as exc:
            raise DatasetError(f"{where}: class columns must be 0 or 1 ({exc})") from exc
        if any(v not in (0, 1) for v in presence):
            raise DatasetError(f"{where}: class columns must be 0 or 1, got {presence}")
        grade = _parse_grade(row.get("grade"), grades, where)
        image = (path.parent / row["image"]).resolve()
        if not image.exists():
            raise DatasetError(f"{where}: image file not found: {image}")
        # The relative path names the image: two folders may hold files of the same name.
        rid = Path(row["image"]).with_suffix("").as_posix()
        rec = Record(id=rid, image=image, has_mask=False, presence=presence, grade=grade)
        splits.setdefault(split or None, []).append(rec)
    pooled = [r for part in splits.values() for r in part]
    out = complete_splits(splits, shown_by_presence(pooled), seed)
    return SourceIndex("csv", path, classes, {k: v for k, v in out.items() if v})


def _parse_grade(cell: str | None, grades: list[str], where: str) -> int | None:
    if cell is None or cell == "":
        return None
    if cell in grades:
        return grades.index(cell)
    if cell.isdigit() and int(cell) < len(grades):
        return int(cell)
    raise DatasetError(f"{where}: grade {cell!r} is not one of {grades} (or an index)")
