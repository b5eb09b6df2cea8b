"""evaluate_predictor end to end on a small in-memory dataset with real numpy predictors.

The oracle predictor reads the truth back from the labelled images (tests/fixtures/evaluation.py),
which pins every headline figure to 1.0 exactly; an all-background predictor pins them to
hand-computed values.
"""

import json
import math

import numpy as np
import pytest
import torch
from fixtures.evaluation import CLASSES, GRADES, S, background_only, labelled_dataset, oracle

from mtqa.evaluate import EvaluationError, evaluate_predictor, run_evaluation, torch_predict_fn


def test_oracle_scores_perfectly():
    m = evaluate_predictor(oracle, labelled_dataset(), CLASSES, GRADES, batch_size=5)
    for key in (
        "presence_macro_f1",
        "presence_micro_f1",
        "miou",
        "miou_with_background",
        "defect_iou",
    ):
        assert m[key] == 1.0, key
    assert m["grade_accuracy"] == 1.0 and m["grade_qwk"] == 1.0
    assert m["pixel_accuracy"] == 1.0
    json.dumps(m, allow_nan=False)  # JSON-safe: undefined values are None, never NaN


def test_background_predictor_matches_hand_computation():
    data = labelled_dataset()
    m = evaluate_predictor(background_only, data, CLASSES, GRADES)
    labels = np.stack([np.rint(d["image"][0] * 3) for d in data])
    bg_iou = (labels == 0).sum() / labels.size  # every pixel predicted background
    assert m["iou/background"] == pytest.approx(bg_iou)
    assert m["iou/a"] == 0.0
    assert m["miou_with_background"] == pytest.approx(bg_iou / 4)
    assert m["miou"] == 0.0 and m["mdice"] == 0.0 and m["defect_iou"] == 0.0
    assert m["presence_macro_f1"] == 0.0
    assert m["presence_macro_precision"] is None  # nothing predicted: undefined, not 0
    grades = np.array([d["grade"] for d in data])
    assert m["grade_accuracy"] == pytest.approx((grades == 0).mean())


def test_batch_size_does_not_change_results():
    data = labelled_dataset(n=9, seed=3)
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
    data = labelled_dataset(n=10, no_mask_every=2)
    result = run_evaluation(oracle, data, CLASSES, GRADES, keep_samples=3)
    assert result.metrics["n_images"] == 10 and result.metrics["n_images_with_masks"] == 5
    with_masks = [d for d in data if d["has_mask"]]
    assert result.pixel_confusion.sum() == len(with_masks) * S * S
    assert [s.id for s in result.samples] == [d["id"] for d in with_masks[:3]]


def test_bad_predictor_outputs_and_datasets_raise_clear_errors():
    data = labelled_dataset(n=2)

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
    with pytest.raises(EvaluationError, match="presence_logits contains NaN"):
        evaluate_predictor(
            lambda x: {**oracle(x), "presence_logits": np.full((len(x), 3), np.nan)},
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

    m = evaluate_predictor(torch_predict_fn(Net().eval()), labelled_dataset(n=4), CLASSES, GRADES)
    assert m["miou"] == 1.0 and not math.isnan(m["presence_macro_f1"])
