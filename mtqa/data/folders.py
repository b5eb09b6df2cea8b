"""Index a folder of image folders: one folder per class, image-level labels, no masks.

The layout inspection photos are often sorted into before anyone draws a mask (torchvision's
ImageFolder; the Kaggle casting set's ``train/def_front``, ``train/ok_front``):

- ``<root>/<class>/**/*.jpg`` — split seeded and stratified by class (val and test 15 % each);
- ``<root>/<split>/<class>/**/*.jpg`` with split folders ``train``, ``val`` / ``valid``, ``test``
  — kept; without a val split, a stratified 15 % of train becomes val.

A folder named like good / ok / normal / defect-free (``ok_front`` too: its first word counts)
holds defect-free images and is not a class. Class names are the folder names with a prefix
shared by all stripped, lower-cased (as `mtqa data import --from masks` names them). There are
no masks (`has_mask` False): the segmentation loss is masked out and presence and grade learn
from the folder labels.
"""

from __future__ import annotations

from pathlib import Path

from mtqa.data.errors import DatasetError
from mtqa.data.naming import class_names, is_defect_free, split_of_folder
from mtqa.data.records import IMAGE_SUFFIXES, Record, SourceIndex, images_under, is_image
from mtqa.data.splits import complete_splits, shown_by_presence


def _folders(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def _split_folders(root: Path) -> dict[str, Path] | None:
    """Split name -> folder when every folder of `root` names a split, else None."""
    folders = _folders(root)
    splits = {f: split_of_folder(f.name) for f in folders}
    if not folders or None in splits.values():
        return None
    found: dict[str, Path] = {}
    for folder, split in splits.items():
        if split in found:
            raise DatasetError(f"{root}: {found[split].name}/ and {folder.name}/ both name {split}")
        found[split] = folder
    return found


def looks_like_folders(root: Path) -> bool:
    """Whether `root` holds class folders of images, directly or inside split folders."""
    splits = _split_folders(root)
    parents = list(splits.values()) if splits else [root]
    return any(any(map(is_image, c.rglob("*"))) for p in parents for c in _folders(p))


def load_folders(root: Path, seed: int = 0) -> SourceIndex:
    """Index `root` (see the module docstring); ids are ``[<split>/]<folder>/<stem>``."""
    splits = _split_folders(root)
    groups = {s: _folders(f) for s, f in splits.items()} if splits else {None: _folders(root)}
    names = sorted({c.name for cs in groups.values() for c in cs if not is_defect_free(c.name)})
    if not names:
        raise DatasetError(
            f"{root}: no defect class folder (only defect-free ones: good, ok, normal ...)"
        )
    named = class_names(names)
    classes = sorted(set(named.values()))
    records: dict[str | None, list[Record]] = {}
    for split, folders in groups.items():
        for folder in folders:
            cls = None if is_defect_free(folder.name) else classes.index(named[folder.name])
            presence = tuple(int(k == cls) for k in range(len(classes)))
            prefix = f"{split}/" if split else ""
            for image in images_under(folder):
                rel = image.relative_to(folder).with_suffix("").as_posix()
                rid = f"{prefix}{folder.name}/{rel}"
                rec = Record(id=rid, image=image, has_mask=False, presence=presence)
                records.setdefault(split, []).append(rec)
    if not any(records.values()):
        raise DatasetError(f"{root}: the class folders hold no image ({', '.join(IMAGE_SUFFIXES)})")
    pooled = [r for part in records.values() for r in part]
    out = complete_splits(records, shown_by_presence(pooled), seed)
    return SourceIndex("folders", root, classes, out)
