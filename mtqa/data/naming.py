"""What folder and file names mean in the layouts users bring: defect-free folders, split
folders, class names from folder names, mask folders and files, a YOLO dataset's yaml.

Shared by the importers and by the loaders that read folders directly (`mtqa.data.folders`,
`mtqa.data.formats`); it imports nothing heavy, so the base install reads them too.
"""

from __future__ import annotations

import os
import re

from mtqa.data.records import SPLITS

# Folder names (lower case, after prefix stripping) that hold defect-free images, never a class.
DEFECT_FREE_NAMES = frozenset(
    {
        "good",
        "ok",
        "free",
        "normal",
        "clean",
        "defect-free",
        "defect_free",
        "defectfree",
        "no-defect",
        "no_defect",
        "nodefect",
        "non-defective",
        "non_defective",
        "negative",
    }
)

# Where a folder of masks or a mask file says what it is (the masks importer; and the loaders,
# which must not take a mask folder for a class folder of images).
MASK_DIRS = frozenset({"mask", "masks", "gt", "ground_truth", "groundtruth", "label", "labels"})
MASK_SUFFIXES = ("_mask", "-mask", "_gt", "-gt", "_label", "-label", "_seg")
_SEPARATORS = "_- ."
_WORDS = re.compile(r"[_\- .]+")
YAML_NAMES = ("data.yaml", "data.yml", "dataset.yaml", "dataset.yml")  # a YOLO dataset's yaml

# Folder names of a split in the formats' usual layouts (Roboflow writes "valid").
SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
    "testing": "test",
}


def split_of_folder(name: str) -> str | None:
    """The split a folder name stands for (``train``, ``valid`` ...), else None."""
    split = SPLIT_ALIASES.get(name.lower())
    return split if split in SPLITS else None


def class_names(folders: list[str]) -> dict[str, str]:
    """Folder name -> class name: the prefix shared by all folders stripped, lower-cased."""
    prefix = os.path.commonprefix(folders) if len(folders) > 1 else ""
    cut = max((prefix.rfind(c) for c in _SEPARATORS), default=-1)
    prefix = prefix[: cut + 1]
    return {f: (f[len(prefix) :] or f).strip(_SEPARATORS).lower() for f in folders}


def is_defect_free(name: str) -> bool:
    """Whether a folder's name says its images are defect-free (``ok``, ``OK_front``)."""
    name = name.lower()
    return name in DEFECT_FREE_NAMES or _WORDS.split(name)[0] in DEFECT_FREE_NAMES
