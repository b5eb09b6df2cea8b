"""Data: synthetic generator, on-disk formats (indexed-mask, MVTec-AD, CSV), grading, datasets.

Public API: :func:`build_datasets` -> :class:`DataBundle`; :func:`preprocess_image` (shared with
the Triton preprocess model); :func:`load_image`; :func:`iter_raw`; :func:`class_stats`;
:class:`DatasetError`. See docs/data.md.
"""

from mtqa.data.bundle import NEU_SEG_CLASSES, DataBundle, build_datasets, iter_raw, neu_seg_path
from mtqa.data.errors import DatasetError
from mtqa.data.grading import DEFAULT_GRADE_RULE, default_grade_rule
from mtqa.data.preprocess import preprocess_image
from mtqa.data.records import load_image
from mtqa.data.stats import ClassStats, class_stats
from mtqa.data.synth import DEFECT_TYPES, SynthConfig, SynthGenerator

__all__ = [
    "DEFAULT_GRADE_RULE",
    "DEFECT_TYPES",
    "NEU_SEG_CLASSES",
    "ClassStats",
    "DataBundle",
    "DatasetError",
    "SynthConfig",
    "SynthGenerator",
    "build_datasets",
    "class_stats",
    "default_grade_rule",
    "iter_raw",
    "load_image",
    "neu_seg_path",
    "preprocess_image",
]
