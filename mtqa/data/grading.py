"""Quality grade from defect masks: a small, documented, JSON-able rule.

The rule maps per-class area fractions (defect pixels / image pixels) to one of four ordered grades
(default names ``ok, minor, major, reject``). Each class has a severity weight (``weights``, falling
back to ``default_weight``). With ``present`` = classes whose area fraction exceeds ``min_area`` and
``weighted_area`` = sum over present classes of weight * area fraction:

- no class present -> grade 0 (``ok``);
- any present class with weight >= ``reject_weight`` or weighted_area >= ``reject_area`` -> grade 3;
- else any present class with weight >= ``major_weight`` or weighted_area >= ``major_area`` -> 2;
- else grade 1 (``minor``).

Without masks (image-level labels only) the same rule runs on presence alone: the weight criteria
apply and the area criteria are skipped, so a labelled-present class of low weight grades ``minor``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np

from mtqa.data.errors import DatasetError

DEFAULT_GRADE_RULE: dict = {
    "grades": ["ok", "minor", "major", "reject"],
    "weights": {"scratch": 1.0, "crack": 2.0, "stain": 0.5, "deformation": 1.5},
    "default_weight": 1.0,
    "min_area": 0.0,
    "major_weight": 2.0,
    "reject_weight": 3.0,
    "major_area": 0.02,
    "reject_area": 0.06,
}

_NUMBERS = (
    "default_weight",
    "min_area",
    "major_weight",
    "reject_weight",
    "major_area",
    "reject_area",
)


def default_grade_rule() -> dict:
    """Return a fresh copy of the default rule (safe to modify)."""
    return copy.deepcopy(DEFAULT_GRADE_RULE)


def validate_rule(rule: dict) -> dict:
    """Check a rule dict and return a complete copy (missing keys taken from the default)."""
    if not isinstance(rule, dict):
        raise DatasetError(f"grade_rule must be a dict, got {type(rule).__name__}")
    unknown = set(rule) - set(DEFAULT_GRADE_RULE)
    if unknown:
        raise DatasetError(f"grade_rule has unknown keys {sorted(unknown)}")
    full = default_grade_rule()
    full.update(copy.deepcopy(rule))
    grades = full["grades"]
    if not (
        isinstance(grades, list) and len(grades) == 4 and all(isinstance(g, str) for g in grades)
    ):
        raise DatasetError(f"grade_rule['grades'] must list 4 names (ok..reject), got {grades!r}")
    for key in _NUMBERS:
        if not isinstance(full[key], (int, float)) or full[key] < 0:
            raise DatasetError(f"grade_rule[{key!r}] must be a number >= 0, got {full[key]!r}")
    if not isinstance(full["weights"], dict):
        raise DatasetError("grade_rule['weights'] must map class name -> weight")
    return full


def class_weights(rule: dict, classes: Sequence[str]) -> np.ndarray:
    """Per-class severity weights, float64 [K], in the order of ``classes``."""
    return np.array(
        [float(rule["weights"].get(c, rule["default_weight"])) for c in classes], dtype=np.float64
    )


def grade_from_areas(rule: dict, classes: Sequence[str], areas: np.ndarray) -> int:
    """Grade index from per-class area fractions [K] (see the module docstring)."""
    weights = class_weights(rule, classes)
    present = np.asarray(areas, dtype=np.float64) > rule["min_area"]
    if not present.any():
        return 0
    top_weight = weights[present].max()
    weighted = float((weights * np.asarray(areas, dtype=np.float64))[present].sum())
    if top_weight >= rule["reject_weight"] or weighted >= rule["reject_area"]:
        return 3
    if top_weight >= rule["major_weight"] or weighted >= rule["major_area"]:
        return 2
    return 1


def grade_from_mask(rule: dict, classes: Sequence[str], mask: np.ndarray) -> int:
    """Grade index from a multi-hot mask [K,H,W] (bool or 0/1) at any resolution."""
    mask = np.asarray(mask)
    areas = mask.reshape(mask.shape[0], -1).mean(axis=1, dtype=np.float64)
    return grade_from_areas(rule, classes, areas)


def grade_from_presence(rule: dict, classes: Sequence[str], presence: np.ndarray) -> int:
    """Grade index from image-level presence [K] only: weight criteria, no area criteria."""
    present = np.asarray(presence) > 0.5
    if not present.any():
        return 0
    top_weight = class_weights(rule, classes)[present].max()
    if top_weight >= rule["reject_weight"]:
        return 3
    if top_weight >= rule["major_weight"]:
        return 2
    return 1


def decided_grade(grade_scores: np.ndarray, present: np.ndarray) -> np.ndarray:
    """The grade an inspection reports from the grade head's scores [N, G] and the presence
    decisions [N, K]: grade 0 (ok) exactly when no defect class is decided present, else the
    likeliest of the defect grades. The rule above defines ok as "no class present", so an item
    reported free of defects is never graded otherwise, nor a defective one ok. Mirrored by
    `postprocess_core.decided_grade` in the served postprocess (a test keeps them equal).
    """
    scores = np.asarray(grade_scores)
    any_present = np.asarray(present, dtype=bool).reshape(len(scores), -1).any(axis=1)
    return np.where(any_present, 1 + scores[:, 1:].argmax(axis=1), 0).astype(np.int64)
