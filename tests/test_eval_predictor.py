"""evaluate_predictor end to end on a small in-memory dataset with real numpy predictors.

The images carry their own labels (channel 0 holds the pixel class / 3, channel 1 the grade / 3),
so an "oracle" predictor can read the truth back from the pixels it is given: that pins every
headline figure to 1.0 exactly, and an all-background predictor pins them to hand-computed values.
"""

import json
import math

import numpy as np
import pytest
import torch

from mtqa.evaluate import EvaluationError, evaluate_predictor, run_evaluation, torch_predict_fn

CLASSES = ["a", "b", "c"]
GRADES = ["ok", "minor", "major", "reject"]
S = 16


def _dataset(n: int = 12, seed: int = 0, no_mask_every: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    items = []
    for i in range(n):
        label = np.zeros((S, S), dtype=np.int64)
        for k in range(1, 4):
            if rng.random() < 0.6:
                y, x = rng.integers(0, S - 5, size=2)
                label[y : y + 4, x : x + 5] = k
        mask = np.stack([label == k for k in range(1, 4)]).astype(np.float32)
        grade = int(rng.integers(0, 4))
        image = np.stack([label / 3, np.full((S, S), grade / 3), rng.random((S, S))])
        items.append(
            {
                "image": image.astype(np.float32),
                "mask": mask,
                "has_mask": not (no_mask_every and i % no_mask_every == 0),
                "presence": mask.reshape(3, -1).max(axis=1),
                "grade": grade,
                "id": f"s{i}",
            }
        )
    return items


def oracle(images: np.ndarray) -> dict[str, np.ndarray]:
    label = np.rint(images[:, 0] * 3).astype(np.int64)
    seg = np.stack([np.where(label == k, 8.0, -8.0) for k in range(1, 4)], axis=1)
    grade = np.rint(images[:, 1, 0, 0] * 3).astype(np.int64)
    return {
        "presence_logits": seg.max(axis=(2, 3)),
        "seg_logits": seg,
        "grade_logits": np.eye(4)[grade] * 5,
    }


def background_only(images: np.ndarray) -> dict[str, np.ndarray]:
    n = len(images)
    return {
        "presence_logits": np.full((n, 3), -8.0),
        "seg_logits": np.full((n, 3, S, S), -8.0),
        "grade_logits": np.tile([5.0, 0, 0, 0], (n, 1)),
    }


def test_oracle_scores_perfectly():
    m = evaluate_predictor(oracle, _dataset(), CLASSES, GRADES, batch_size=5)
    for key in ("presence_macro_f1", "presence_micro_f1", "miou", "miou_defects", "defect_iou"):
        assert m[key] == 1.0, key
    assert m["grade_accuracy"] == 1.0 and m["grade_qwk"] == 1.0
    assert m["pixel_accuracy"] == 1.0
    json.dumps(m, allow_nan=False)  # JSON-safe: undefined values are None, never NaN


def test_background_predictor_matches_hand_computation():
    data = _dataset()
    m = evaluate_predictor(background_only, data, CLASSES, GRADES)
    labels = np.stack([np.rint(d["image"][0] * 3) for d in data])
    bg_iou = (labels == 0).sum() / labels.size  # every pixel predicted background
    assert m["iou/background"] == pytest.approx(bg_iou)
    assert m["iou/a"] == 0.0
    assert m["miou"] == pytest.approx(bg_iou / 4)
    assert m["miou_defects"] == 0.0 and m["defect_iou"] == 0.0
    assert m["presence_macro_f1"] == 0.0
    assert m["presence_macro_precision"] is None  # nothing predicted: undefined, not 0
    grades = np.array([d["grade"] for d in data])
    assert m["grade_accuracy"] == pytest.approx((grades == 0).mean())


def test_batch_size_does_not_change_results():
    data = _dataset(n=9, seed=3)
    rng = np.random.default_rng(0)
    noise = {i: rng.normal(0, 3, size=(3, S, S)) for i in range(9)}

    def noisy(images: np.ndarray) -> dict[str, np.ndarray]:
        out = oracle(images)
        # key noise by image content so it is the same whatever the batching
        idx = [
            next(i for i, d in enumerate(data) if np.array_equal(d["image"], im)) for im in images
        ]
        out["seg_logits"] = out["seg_logits"] + np.stack([noise[i] for i in idx])
        out["presence_logits"] = out["seg_logits"].mean(axis=(2, 3))
        return out

    thresholds = {
        "presence": dict.fromkeys(CLASSES, 0.3),
        "segmentation": dict.fromkeys(CLASSES, 0.6),
    }
    one = evaluate_predictor(noisy, data, CLASSES, GRADES, thresholds, batch_size=1)
    four = evaluate_predictor(noisy, data, CLASSES, GRADES, thresholds, batch_size=4)
    assert one == four
    assert 0 < one["miou"] < 1
    assert one["threshold_segmentation/a"] == 0.6


def test_images_without_masks_are_left_out_of_segmentation():
    data = _dataset(n=10, no_mask_every=2)
    result = run_evaluation(oracle, data, CLASSES, GRADES, keep_samples=3)
    assert result.metrics["n_images"] == 10 and result.metrics["n_images_with_masks"] == 5
    with_masks = [d for d in data if d["has_mask"]]
    assert result.pixel_confusion.sum() == len(with_masks) * S * S
    assert [s.id for s in result.samples] == [d["id"] for d in with_masks[:3]]


def test_bad_predictor_outputs_and_datasets_raise_clear_errors():
    data = _dataset(n=2)

    def no_grade(images: np.ndarray) -> dict[str, np.ndarray]:
        return {k: v for k, v in oracle(images).items() if k != "grade_logits"}

    with pytest.raises(EvaluationError, match="lacks grade_logits"):
        evaluate_predictor(no_grade, data, CLASSES, GRADES)
    with pytest.raises(EvaluationError, match="seg_logits has shape"):
        evaluate_predictor(
            lambda x: {**oracle(x), "seg_logits": np.zeros((len(x), 3, 8, 8))},
            data,
            CLASSES,
            GRADES,
        )
    with pytest.raises(EvaluationError, match="empty"):
        evaluate_predictor(oracle, [], CLASSES, GRADES)
    with pytest.raises(EvaluationError, match="lack the key 'mask'"):
        evaluate_predictor(oracle, [{"image": np.zeros((3, S, S))}], CLASSES, GRADES)


def test_torch_predict_fn_adapts_a_module():
    class Net(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            out = oracle(x.numpy())
            return {k: torch.from_numpy(v).float() for k, v in out.items()}

    m = evaluate_predictor(torch_predict_fn(Net().eval()), _dataset(n=4), CLASSES, GRADES)
    assert m["miou"] == 1.0 and not math.isnan(m["presence_macro_f1"])
