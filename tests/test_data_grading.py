"""The quality grade rule: ordering, weights, area thresholds, presence-only fallback."""

from __future__ import annotations

import numpy as np

from mtqa.data.grading import (
    decided_grade,
    default_grade_rule,
    grade_from_areas,
    grade_from_mask,
    grade_from_presence,
    validate_rule,
)

CLASSES = ["scratch", "crack", "stain", "deformation"]


def test_default_rule_grades():
    rule = validate_rule(default_grade_rule())
    assert grade_from_areas(rule, CLASSES, np.zeros(4)) == 0  # no defect -> ok
    assert grade_from_areas(rule, CLASSES, np.array([0.005, 0, 0, 0])) == 1  # small scratch
    assert grade_from_areas(rule, CLASSES, np.array([0, 0.001, 0, 0])) == 2  # any crack: major
    assert grade_from_areas(rule, CLASSES, np.array([0.03, 0, 0, 0])) == 2  # large scratch
    assert grade_from_areas(rule, CLASSES, np.array([0, 0, 0.03, 0])) == 1  # stain weighs 0.5
    assert grade_from_areas(rule, CLASSES, np.array([0.05, 0, 0, 0.03])) == 3  # 0.05 + 0.045


def test_reject_weight_and_custom_rule():
    rule = validate_rule({"weights": {"crack": 5.0}, "min_area": 0.01})
    assert rule["major_area"] == default_grade_rule()["major_area"]  # defaults fill the rest
    assert grade_from_areas(rule, CLASSES, np.array([0, 0.02, 0, 0])) == 3
    assert grade_from_areas(rule, CLASSES, np.array([0, 0.005, 0, 0])) == 0  # below min_area
    assert grade_from_areas(rule, ["unknown"], np.array([0.015])) == 1  # default weight 1


def test_mask_and_presence_forms():
    rule = default_grade_rule()
    mask = np.zeros((4, 10, 10), dtype=bool)
    mask[0, :3, :3] = True  # 9 % scratch -> weighted 0.09 >= reject_area
    assert grade_from_mask(rule, CLASSES, mask) == 3
    assert grade_from_presence(rule, CLASSES, np.array([1, 0, 0, 0])) == 1
    assert grade_from_presence(rule, CLASSES, np.array([0, 1, 0, 0])) == 2
    assert grade_from_presence(rule, CLASSES, np.zeros(4)) == 0


def test_reported_grade_is_ok_exactly_when_no_defect_is_decided():
    from mtqa_builder.triton_models import postprocess_core

    rng = np.random.default_rng(0)
    scores = rng.random((64, 4))
    present = rng.random((64, 3)) > 0.7
    grade = decided_grade(scores, present)
    assert ((grade == 0) == ~present.any(axis=1)).all()
    defective = present.any(axis=1)
    assert (grade[defective] == 1 + scores[defective, 1:].argmax(axis=1)).all()
    # the served postprocess (a self-contained copy) decides the same
    assert (postprocess_core.decided_grade(scores, present) == grade).all()
    # an image with no defect decided is ok even when the grade head favours "reject"
    assert decided_grade(np.array([[0.1, 0.1, 0.1, 0.7]]), np.zeros((1, 3), bool))[0] == 0
