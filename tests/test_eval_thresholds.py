"""Threshold selection (presence and pixel histograms) and the thresholds.json round trip."""

import json

import numpy as np
import pytest
from sklearn.metrics import f1_score, recall_score

from mtqa.evaluate.thresholds import (
    PixelHistogram,
    ThresholdError,
    default_thresholds,
    load_thresholds,
    save_thresholds,
    select_thresholds,
    threshold_arrays,
)


def test_max_f1_picks_the_right_cut():
    # sorted scores: positives at 0.9, 0.8, 0.6, 0.3; negatives at 0.7, 0.2, 0.1.
    # cut at 0.6 -> tp 3, fp 1, fn 1: F1 0.75; cut 0.3 -> tp 4, fp 1: F1 0.889 (best);
    # cut 0.8 -> F1 0.667. The stored cut lies between 0.3 and the next lower score 0.2.
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.3, 0.2, 0.1])
    truth = np.array([1, 1, 0, 1, 1, 0, 0])
    t = select_thresholds(scores[:, None], truth[:, None], ["a"])["a"]
    assert 0.2 < t <= 0.3
    assert t == pytest.approx(0.25)
    assert f1_score(truth, scores >= t) == pytest.approx(8 / 9)


def test_max_f1_is_the_best_f1_on_random_data():
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 2, size=300)
    scores = np.clip(truth * 0.25 + rng.random(300) * 0.75, 0, 1)
    t = select_thresholds(scores[:, None], truth[:, None], ["a"])["a"]
    best = max(f1_score(truth, scores >= c) for c in np.unique(scores))
    assert f1_score(truth, scores >= t) == pytest.approx(best)


@pytest.mark.parametrize("target", [0.5, 0.9, 0.95, 1.0])
def test_target_recall_meets_the_recall(target):
    rng = np.random.default_rng(2)
    truth = rng.integers(0, 2, size=(400, 2))
    scores = np.clip(truth * 0.3 + rng.random((400, 2)) * 0.7, 0, 1)
    cuts = select_thresholds(scores, truth, ["a", "b"], rule="target_recall", target_recall=target)
    for k, name in enumerate(["a", "b"]):
        preds = scores[:, k] >= cuts[name]
        assert recall_score(truth[:, k], preds) >= target
        # the cut is the highest that does: kept scores are >= cut, the lowest kept one is the
        # chosen point, and cutting at the next distinct score above it loses recall.
        kept = np.unique(scores[:, k][preds])
        if kept.size > 1:
            assert recall_score(truth[:, k], scores[:, k] >= kept[1]) < target


def test_class_without_positives_keeps_default():
    cuts = select_thresholds(np.array([[0.2], [0.9]]), np.zeros((2, 1)), ["a"])
    assert cuts == {"a": 0.5}


def test_presence_cut_falls_back_when_val_cannot_decide(tmp_path):
    # every val image defective: max-F1 would cut below the lowest score (call all defective)
    probs = np.array([[0.99, 0.9, 0.04], [0.98, 0.4, 0.03], [0.97, 0.8, 0.01], [0.985, 0.1, 0.005]])
    truth = np.array([[1, 1, 1], [1, 0, 1], [1, 1, 0], [1, 0, 0]])
    cuts = select_thresholds(probs, truth, ["all", "clear", "faint"])
    assert cuts["all"] == 0.5 and "no negative" in cuts.notes["all"]
    assert 0.4 < cuts["clear"] < 0.8 and "clear" not in cuts.notes
    # positives at 0.04 / 0.03, negatives at 0.01 / 0.005: the best cut (0.02) is below the floor
    assert cuts["faint"] == 0.5 and "below the floor" in cuts.notes["faint"]
    confident = select_thresholds(
        np.array([[0.995], [0.999], [0.97]]), np.array([[1], [1], [0]]), ["a"]
    )
    assert confident["a"] == 0.95 and "lowered" in confident.notes["a"]
    # with enough of both sides a high cut is kept: an under-trained head's shifted probabilities
    shifted = np.r_[np.full(12, 0.999), np.full(20, 0.97)][:, None]
    kept = select_thresholds(shifted, np.r_[np.ones(12), np.zeros(20)][:, None], ["a"])
    assert 0.97 < kept["a"] < 0.999 and "a" not in kept.notes
    save_thresholds(tmp_path, cuts, cuts, "val", "max_f1")
    notes = load_thresholds(tmp_path)["notes"]
    assert set(notes["presence"]) == {"all", "faint"} and "no negative" in notes["presence"]["all"]


def test_pixel_cut_below_the_floor_falls_back():
    # class a: the model barely fires on its pixels (0.002 vs 0.0005): the best Dice cut, 0.001,
    # would paint every faint speck; class b separates cleanly at 0.6
    probs = np.zeros((1, 2, 2, 4), dtype=np.float32)
    masks = np.zeros_like(probs)
    probs[0, 0] = [[0.002, 0.002, 0.0005, 0.0005], [0.0005] * 4]
    masks[0, 0, 0, :2] = 1
    probs[0, 1] = [[0.7, 0.7, 0.2, 0.2], [0.1] * 4]
    masks[0, 1, 0, :2] = 1
    hist = PixelHistogram(2)
    hist.update(probs, masks)
    cuts = hist.select(["a", "b"])
    assert cuts["a"] == 0.5 and "below the floor" in cuts.notes["a"]
    assert 0.2 < cuts["b"] <= 0.7 and "b" not in cuts.notes


def test_select_rejects_bad_input():
    with pytest.raises(ThresholdError, match="unknown threshold rule"):
        select_thresholds(np.zeros((2, 1)), np.zeros((2, 1)), ["a"], rule="best")
    with pytest.raises(ThresholdError, match="target_recall"):
        select_thresholds(np.zeros((2, 1)), np.zeros((2, 1)), ["a"], "target_recall", 1.5)
    with pytest.raises(ThresholdError, match=r"\[N, 2\]"):
        select_thresholds(np.zeros((2, 1)), np.zeros((2, 1)), ["a", "b"])


def test_pixel_histogram_max_f1_and_target_recall():
    rng = np.random.default_rng(3)
    masks = (rng.random((4, 2, 16, 16)) < 0.3).astype(np.float32)
    probs = np.clip(masks * 0.35 + rng.random(masks.shape) * 0.65, 0, 0.999).astype(np.float32)
    hist = PixelHistogram(2, bins=100)
    for i in range(4):  # streamed image by image
        hist.update(probs[i : i + 1], masks[i : i + 1])
    assert hist.counts.sum() == probs.size
    cuts = hist.select(["a", "b"])
    for k, name in enumerate(["a", "b"]):
        y, p = masks[:, k].ravel() > 0.5, probs[:, k].ravel()
        grid = np.arange(100) / 100
        best = max(f1_score(y, p >= c) for c in grid)
        assert f1_score(y, p >= cuts[name]) == pytest.approx(best, abs=1e-6)
    rec = hist.select(["a", "b"], rule="target_recall", target_recall=0.9)
    for k, name in enumerate(["a", "b"]):
        y, p = masks[:, k].ravel() > 0.5, probs[:, k].ravel()
        assert recall_score(y, p >= rec[name]) >= 0.9
        assert recall_score(y, p >= rec[name] + 0.01) < 0.9


def test_pixel_histogram_without_positive_pixels_keeps_default():
    hist = PixelHistogram(1, bins=10)
    hist.update(np.full((1, 1, 2, 2), 0.7), np.zeros((1, 1, 2, 2)))
    assert hist.select(["a"]) == {"a": 0.5}


def test_save_load_round_trip(tmp_path):
    path = save_thresholds(
        tmp_path, {"a": 0.3, "b": 0.7}, {"a": 0.4, "b": 0.55}, "val", "max_f1", source="synth"
    )
    assert path == tmp_path / "thresholds.json"
    data = json.loads(path.read_text())
    assert data["selected_on"] == "val" and data["rule"] == "max_f1"
    loaded = load_thresholds(tmp_path, classes=["a", "b"])
    assert loaded == data
    assert loaded["presence"] == {"a": 0.3, "b": 0.7}
    pres, seg = threshold_arrays(loaded, ["b", "a"])
    np.testing.assert_array_equal(pres, [0.7, 0.3])
    np.testing.assert_array_equal(seg, [0.55, 0.4])


def test_load_rejects_missing_and_malformed(tmp_path):
    with pytest.raises(ThresholdError, match="no thresholds file"):
        load_thresholds(tmp_path)
    (tmp_path / "thresholds.json").write_text("{not json")
    with pytest.raises(ThresholdError, match="not valid JSON"):
        load_thresholds(tmp_path)
    (tmp_path / "thresholds.json").write_text(json.dumps(default_thresholds(["a"])))
    with pytest.raises(ThresholdError, match="no threshold for b"):
        load_thresholds(tmp_path, classes=["a", "b"])
    bad = default_thresholds(["a"]) | {"presence": {"a": 1.5}}
    (tmp_path / "thresholds.json").write_text(json.dumps(bad))
    with pytest.raises(ThresholdError, match="not a number in"):
        load_thresholds(tmp_path)
    with pytest.raises(ThresholdError, match="does not exist"):
        save_thresholds(tmp_path / "nope", {"a": 0.5}, {"a": 0.5})
