"""Metric functions against hand-computed cases and against scikit-learn."""

import json
import math

import numpy as np
import pytest
from sklearn.metrics import (
    average_precision_score,
    cohen_kappa_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from mtqa.evaluate.metrics import (
    MetricInputError,
    SegmentationMeter,
    grade_metrics,
    iou_dice_from_confusion,
    mask_labels,
    nanmean,
    pixel_labels,
    presence_confusions,
    presence_metrics,
)

CLASSES = ["scratch", "crack", "stain"]


def test_presence_hand_case():
    probs = np.array([[0.9, 0.2], [0.6, 0.7], [0.4, 0.1], [0.2, 0.8]])
    targets = np.array([[1, 0], [0, 1], [1, 0], [0, 1]])
    m = presence_metrics(probs, targets, ["a", "b"], thresholds=[0.5, 0.5])
    # class a: preds 1,1,0,0 vs truth 1,0,1,0 -> tp 1, fp 1, fn 1, tn 1
    assert m["presence_accuracy/a"] == 0.5
    assert m["presence_precision/a"] == 0.5
    assert m["presence_recall/a"] == 0.5
    assert m["presence_f1/a"] == 0.5
    # scores of positives (0.9, 0.4) vs negatives (0.6, 0.2): 3 of 4 pairs ordered right
    assert m["presence_auroc/a"] == 0.75
    # class b: perfect
    assert m["presence_f1/b"] == 1.0 and m["presence_auroc/b"] == 1.0
    assert m["presence_macro_f1"] == 0.75
    # micro: tp 3, fp 1, fn 1 -> f1 = 6 / 8
    assert m["presence_micro_f1"] == pytest.approx(0.75)
    assert m["presence_micro_accuracy"] == 0.75
    assert m["presence_exact_match"] == 0.5


def test_presence_matches_sklearn():
    rng = np.random.default_rng(0)
    targets = rng.integers(0, 2, size=(200, 3))
    probs = np.clip(targets * 0.3 + rng.random((200, 3)) * 0.7, 0, 1)
    thr = np.array([0.4, 0.5, 0.6])
    m = presence_metrics(probs, targets, CLASSES, thr)
    preds = (probs >= thr).astype(int)
    for k, name in enumerate(CLASSES):
        assert m[f"presence_precision/{name}"] == pytest.approx(
            precision_score(targets[:, k], preds[:, k])
        )
        assert m[f"presence_recall/{name}"] == pytest.approx(
            recall_score(targets[:, k], preds[:, k])
        )
        assert m[f"presence_f1/{name}"] == pytest.approx(f1_score(targets[:, k], preds[:, k]))
        assert m[f"presence_auroc/{name}"] == pytest.approx(
            roc_auc_score(targets[:, k], probs[:, k])
        )
        assert m[f"presence_ap/{name}"] == pytest.approx(
            average_precision_score(targets[:, k], probs[:, k])
        )
    assert m["presence_macro_f1"] == pytest.approx(f1_score(targets, preds, average="macro"))
    assert m["presence_micro_f1"] == pytest.approx(f1_score(targets, preds, average="micro"))
    assert m["presence_micro_precision"] == pytest.approx(
        precision_score(targets, preds, average="micro")
    )
    assert m["presence_micro_auroc"] == pytest.approx(
        roc_auc_score(targets, probs, average="micro")
    )
    assert m["presence_macro_ap"] == pytest.approx(
        average_precision_score(targets, probs, average="macro")
    )
    cms = presence_confusions(probs, targets, thr)
    for k in range(3):
        np.testing.assert_array_equal(cms[k], confusion_matrix(targets[:, k], preds[:, k]))


def test_presence_absent_class_is_nan_and_excluded():
    probs = np.array([[0.9, 0.1], [0.1, 0.2]])
    targets = np.array([[1, 0], [0, 0]])
    m = presence_metrics(probs, targets, ["a", "b"])
    for metric in ("precision", "recall", "f1", "auroc", "ap"):
        assert math.isnan(m[f"presence_{metric}/b"]), metric
    assert m["presence_accuracy/b"] == 1.0
    assert m["presence_macro_f1"] == 1.0  # class b does not drag the mean down


def test_presence_one_class_scores_the_positive_label():
    # K = 1: preds 1,1,0,0,1 vs truth 1,1,1,0,0 -> tp 2, fp 1, fn 1, tn 1 (scikit-learn given
    # [N, 1] with labels=[0] would score the negative label instead)
    probs = np.array([[0.9], [0.8], [0.3], [0.2], [0.6]])
    targets = np.array([[1], [1], [1], [0], [0]])
    m = presence_metrics(probs, targets, ["crack"])
    assert m["presence_precision/crack"] == pytest.approx(2 / 3)
    assert m["presence_recall/crack"] == pytest.approx(2 / 3)
    assert m["presence_f1/crack"] == pytest.approx(2 / 3)
    assert m["presence_macro_f1"] == pytest.approx(2 / 3)
    assert m["presence_f1/crack"] == pytest.approx(f1_score(targets[:, 0], probs[:, 0] >= 0.5))
    assert m["presence_auroc/crack"] == pytest.approx(roc_auc_score(targets[:, 0], probs[:, 0]))
    assert m["presence_macro_ap"] == pytest.approx(
        average_precision_score(targets[:, 0], probs[:, 0])
    )
    # every image defective and found: F1 1.0 beside accuracy 1.0 (was n/a)
    m = presence_metrics(np.array([[0.9], [0.7]]), np.array([[1], [1]]), ["crack"])
    assert m["presence_accuracy/crack"] == 1.0 and m["presence_f1/crack"] == 1.0
    assert math.isnan(m["presence_auroc/crack"]) and m["presence_ap/crack"] == 1.0


def test_presence_any_defect_ranking():
    # image score = highest class probability; truth = any class present
    probs = np.array([[0.9, 0.1], [0.2, 0.7], [0.3, 0.1], [0.6, 0.2]])
    targets = np.array([[1, 0], [0, 1], [0, 0], [0, 0]])
    m = presence_metrics(probs, targets, ["a", "b"])
    assert m["presence_any_auroc"] == pytest.approx(
        roc_auc_score([1, 1, 0, 0], [0.9, 0.7, 0.3, 0.6])
    )
    assert m["presence_any_ap"] == pytest.approx(
        average_precision_score([1, 1, 0, 0], [0.9, 0.7, 0.3, 0.6])
    )


def test_presence_rejects_bad_shapes():
    with pytest.raises(MetricInputError, match=r"\[N, K\]"):
        presence_metrics(np.zeros((3, 2)), np.zeros((3, 3)), ["a", "b"])
    with pytest.raises(MetricInputError, match="0/1"):
        presence_metrics(np.zeros((1, 2)), np.array([[2, 0]]), ["a", "b"])
    with pytest.raises(MetricInputError, match=r"\[0, 1\]"):
        presence_metrics(np.zeros((1, 2)), np.zeros((1, 2)), ["a", "b"], thresholds=1.5)


def test_iou_dice_hand_case_with_absent_class():
    # truth rows, prediction columns; class 2 never appears in truth or prediction
    cm = np.array([[5, 1, 0], [2, 3, 0], [0, 0, 0]])
    iou, dice = iou_dice_from_confusion(cm)
    assert iou[0] == pytest.approx(5 / 8) and iou[1] == pytest.approx(3 / 6)
    assert dice[0] == pytest.approx(10 / 13) and dice[1] == pytest.approx(6 / 9)
    assert math.isnan(iou[2]) and math.isnan(dice[2])
    assert nanmean(iou) == pytest.approx((5 / 8 + 3 / 6) / 2)


def test_pixel_and_mask_labels():
    probs = np.array([[[0.7, 0.3]], [[0.8, 0.35]]])  # [K=2, H=1, W=2]
    # pixel 0: argmax class 2 (0.8) passes 0.6 -> 2; pixel 1: class 2 (0.35) fails 0.6 -> bg,
    # even though class 1 (0.3) would pass its own 0.2: only the argmax is a candidate.
    np.testing.assert_array_equal(pixel_labels(probs, [0.2, 0.6]), [[2, 0]])
    masks = np.array([[[1, 0, 0]], [[1, 1, 0]]])
    np.testing.assert_array_equal(mask_labels(masks), [[1, 2, 0]])


def test_segmentation_meter_hand_case():
    # one image, K=2, 1x4 pixels
    probs = np.zeros((1, 2, 1, 4))
    probs[0, 0, 0] = [0.9, 0.9, 0.1, 0.1]
    probs[0, 1, 0] = [0.1, 0.2, 0.8, 0.1]
    masks = np.zeros((1, 2, 1, 4))
    masks[0, 0, 0] = [1, 0, 0, 0]
    masks[0, 1, 0] = [0, 0, 1, 1]
    meter = SegmentationMeter(["a", "b"], 0.5)
    meter.update(probs[:, :, :, :2], masks[:, :, :, :2])  # streaming: two half batches
    meter.update(probs[:, :, :, 2:], masks[:, :, :, 2:])
    # truth  a bg b b ; pred a a b bg
    np.testing.assert_array_equal(meter.confusion, [[0, 1, 0], [0, 1, 0], [1, 0, 1]])
    m = meter.result()
    assert m["iou/background"] == 0.0  # no tp but fp and fn: defined, IoU 0 (not NaN)
    assert m["iou/a"] == pytest.approx(1 / 2)
    assert m["iou/b"] == pytest.approx(1 / 2)
    assert m["miou"] == pytest.approx(0.5)  # defect classes only
    assert m["miou_with_background"] == pytest.approx(1 / 3)
    assert m["pixel_accuracy"] == pytest.approx(0.5)
    assert m["defect_iou/a"] == pytest.approx(1 / 2)
    assert m["defect_iou/b"] == pytest.approx(1 / 2)


def test_segmentation_meter_background_and_absent_class():
    probs = np.zeros((1, 2, 2, 2))
    probs[0, 0, 0, 0] = 0.9
    masks = np.zeros((1, 2, 2, 2))
    masks[0, 0, 0, 0] = 1
    meter = SegmentationMeter(["a", "b"], 0.5)
    meter.update(probs, masks)
    m = meter.result()
    assert m["iou/background"] == 1.0 and m["iou/a"] == 1.0
    assert math.isnan(m["iou/b"]) and math.isnan(m["defect_iou/b"])
    assert m["miou"] == 1.0 and m["miou_with_background"] == 1.0 and m["defect_iou"] == 1.0


def test_segmentation_meter_multilabel_masks():
    # a pixel true for both classes: defect IoU counts it for both, the single-label map for a
    probs = np.full((1, 2, 1, 1), 0.9)
    masks = np.ones((1, 2, 1, 1))
    meter = SegmentationMeter(["a", "b"], 0.5)
    meter.update(probs, masks)
    m = meter.result()
    assert m["defect_iou/a"] == 1.0 and m["defect_iou/b"] == 1.0
    assert m["iou/a"] == 1.0 and math.isnan(m["iou/b"])


def test_segmentation_meter_rejects_shape_mismatch():
    meter = SegmentationMeter(["a", "b"], 0.5)
    with pytest.raises(MetricInputError, match="B, 2, H, W"):
        meter.update(np.zeros((1, 3, 2, 2)), np.zeros((1, 3, 2, 2)))


def test_grade_metrics_hand_case_and_sklearn():
    true = np.array([0, 1, 2, 3, 3, 1])
    pred = np.array([0, 1, 3, 3, 2, 0])
    m, cm = grade_metrics(true, pred, ["ok", "minor", "major", "reject"])
    assert m["grade_accuracy"] == pytest.approx(3 / 6)
    assert m["grade_macro_f1"] == pytest.approx(f1_score(true, pred, average="macro"))
    assert m["grade_qwk"] == pytest.approx(cohen_kappa_score(true, pred, weights="quadratic"))
    np.testing.assert_array_equal(cm, confusion_matrix(true, pred, labels=[0, 1, 2, 3]))
    # QWK by hand: O = cm/n, E = outer(hist_true, hist_pred)/n^2, w_ij = (i-j)^2/9
    w = (np.subtract.outer(np.arange(4), np.arange(4)) ** 2) / 9
    e = np.outer(np.bincount(true, minlength=4), np.bincount(pred, minlength=4)) / 6
    assert m["grade_qwk"] == pytest.approx(1 - (w * cm).sum() / (w * e).sum())


def test_grade_metrics_absent_grades_and_undefined_kappa():
    m, cm = grade_metrics([0, 0, 1], [0, 0, 1], ["ok", "minor", "major", "reject"])
    assert m["grade_macro_f1"] == 1.0  # absent grades 2 and 3 are not averaged in as 0
    assert cm.shape == (4, 4)
    m, _ = grade_metrics([2, 2], [2, 2], ["ok", "minor", "major"])
    assert m["grade_accuracy"] == 1.0 and math.isnan(m["grade_qwk"])
    with pytest.raises(MetricInputError, match="grade indices"):
        grade_metrics([0, 4], [0, 1], ["ok", "minor"])


def test_metrics_json_has_null_not_nan():
    from mtqa.evaluate.jsonsafe import dumps

    text = dumps({"f1": float("nan"), "ap": np.float32(0.5), "cm": np.eye(2), "inf": math.inf})
    assert json.loads(text) == {"f1": None, "ap": 0.5, "cm": [[1.0, 0.0], [0.0, 1.0]], "inf": None}
    with pytest.raises(ValueError):  # json.dumps writes NaN, which is not JSON
        json.dumps({"f1": float("nan")}, allow_nan=False)
