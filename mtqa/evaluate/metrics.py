"""Metric functions for the three heads: presence (multi-label), segmentation and grade.

Conventions used throughout (see docs/evaluation.md):
- a decision is positive when ``prob >= threshold`` (the convention of scikit-learn's
  ``precision_recall_curve``, so thresholds chosen on its curve reproduce exactly);
- a metric that is undefined (a class absent from both prediction and truth, AUROC with a single
  label value, precision with no predicted positives) is ``NaN`` and excluded from every mean;
- confusion matrices have truth in rows and prediction in columns, like scikit-learn.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    cohen_kappa_score,
    confusion_matrix,
    f1_score,
    roc_auc_score,
)

PRESENCE_METRICS = ("accuracy", "precision", "recall", "f1", "auroc", "ap")


class MetricInputError(ValueError):
    """Raised when arrays given to a metric have the wrong shape, range or length."""


def nanmean(values: Sequence[float] | np.ndarray) -> float:
    """Mean of the defined (non-NaN) values; NaN when none is defined, without a warning."""
    arr = np.asarray(values, dtype=np.float64)
    arr = arr[~np.isnan(arr)]
    return float(arr.mean()) if arr.size else float("nan")


def _check_multilabel(probs: np.ndarray, targets: np.ndarray, n_classes: int) -> None:
    if probs.ndim != 2 or probs.shape != targets.shape:
        raise MetricInputError(
            f"probs and targets must both be [N, K]; got {probs.shape} and {targets.shape}"
        )
    if probs.shape[1] != n_classes:
        raise MetricInputError(f"expected {n_classes} classes, arrays have {probs.shape[1]}")
    if not np.isin(targets, (0, 1)).all():
        raise MetricInputError("targets must be 0/1 (multi-hot)")


def threshold_vector(
    thresholds: Sequence[float] | np.ndarray | float, n_classes: int
) -> np.ndarray:
    """Per-class thresholds as a float array of length K (a scalar applies to every class)."""
    arr = np.broadcast_to(np.asarray(thresholds, dtype=np.float64), (n_classes,)).copy()
    if np.isnan(arr).any() or (arr < 0).any() or (arr > 1).any():
        raise MetricInputError(f"thresholds must lie in [0, 1]; got {arr.tolist()}")
    return arr


def _binary_scores(y_true: np.ndarray, y_prob: np.ndarray) -> tuple[float, float]:
    """AUROC and average precision for one class; NaN where undefined."""
    auroc = float(roc_auc_score(y_true, y_prob)) if 0 < y_true.sum() < y_true.size else np.nan
    ap = float(average_precision_score(y_true, y_prob)) if y_true.sum() > 0 else np.nan
    return auroc, ap


def _binary_decisions(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Accuracy, precision, recall and F1 of one class's 0/1 decisions, the positive label
    being 1 (counted by hand: scikit-learn reads an ``[N, 1]`` array as binary, where
    ``labels=[0]`` names the negative label). Precision without a predicted positive, recall
    without a positive and F1 with neither are NaN."""
    tp = float(np.sum((y_pred == 1) & (y_true == 1)))
    fp = float(np.sum((y_pred == 1) & (y_true == 0)))
    fn = float(np.sum((y_pred == 0) & (y_true == 1)))
    return {
        "accuracy": float(np.mean(y_pred == y_true)),
        "precision": tp / (tp + fp) if tp + fp else np.nan,
        "recall": tp / (tp + fn) if tp + fn else np.nan,
        "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else np.nan,
    }


def presence_metrics(
    probs: np.ndarray,
    targets: np.ndarray,
    classes: Sequence[str],
    thresholds: Sequence[float] | np.ndarray | float = 0.5,
) -> dict[str, float]:
    """Per-class and averaged metrics of the multi-label presence head.

    ``probs`` are sigmoid probabilities ``[N, K]``, ``targets`` the 0/1 truth ``[N, K]`` (any K,
    one included). Returns a flat dict: ``presence_<m>/<class>`` for m in accuracy, precision,
    recall, f1, auroc, ap, plus ``presence_macro_<m>`` (NaN-excluding mean over classes) and
    ``presence_micro_<m>`` (all (image, class) decisions pooled; accuracy there is the
    per-decision accuracy), ``presence_exact_match`` (images whose whole K-vector is right) and
    ``presence_any_auroc`` / ``presence_any_ap``: the image-level "any defect" ranking, each
    image scored by its highest class probability against "has any defect".
    """
    probs = np.asarray(probs, dtype=np.float64)
    targets = np.asarray(targets).astype(np.int64)
    _check_multilabel(probs, targets, len(classes))
    thr = threshold_vector(thresholds, len(classes))
    preds = (probs >= thr).astype(np.int64)
    out: dict[str, float] = {}
    per_class: dict[str, list[float]] = {m: [] for m in PRESENCE_METRICS}
    for k, name in enumerate(classes):
        auroc, ap = _binary_scores(targets[:, k], probs[:, k])
        values = {**_binary_decisions(targets[:, k], preds[:, k]), "auroc": auroc, "ap": ap}
        for metric, value in values.items():
            out[f"presence_{metric}/{name}"] = value
            per_class[metric].append(value)
    for metric, values in per_class.items():
        out[f"presence_macro_{metric}"] = nanmean(values)
    micro = _binary_decisions(targets.ravel(), preds.ravel())
    mauroc, map_ = _binary_scores(targets.ravel(), probs.ravel())
    any_auroc, any_ap = _binary_scores(targets.max(axis=1), probs.max(axis=1))
    out.update(
        presence_micro_accuracy=micro["accuracy"],
        presence_micro_precision=micro["precision"],
        presence_micro_recall=micro["recall"],
        presence_micro_f1=micro["f1"],
        presence_micro_auroc=mauroc,
        presence_micro_ap=map_,
        presence_exact_match=float((preds == targets).all(axis=1).mean()),
        presence_any_auroc=any_auroc,
        presence_any_ap=any_ap,
    )
    return out


def presence_confusions(
    probs: np.ndarray, targets: np.ndarray, thresholds: Sequence[float] | np.ndarray | float
) -> np.ndarray:
    """Per-class 2x2 presence confusion matrices ``[K, 2, 2]``: [[tn, fp], [fn, tp]]."""
    probs = np.asarray(probs, dtype=np.float64)
    targets = np.asarray(targets).astype(np.int64)
    _check_multilabel(probs, targets, targets.shape[-1])
    preds = (probs >= threshold_vector(thresholds, probs.shape[1])).astype(np.int64)
    return np.stack(
        [confusion_matrix(targets[:, k], preds[:, k], labels=[0, 1]) for k in range(probs.shape[1])]
    )


def iou_dice_from_confusion(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-class IoU and Dice from a confusion matrix (truth rows, prediction columns).

    IoU = tp / (tp + fp + fn) and Dice = 2tp / (2tp + fp + fn), which is how mmsegmentation counts
    them over a whole split; a class absent from both truth and prediction gets NaN.
    """
    cm = np.asarray(cm, dtype=np.float64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise MetricInputError(f"confusion matrix must be square; got shape {cm.shape}")
    tp = np.diag(cm)
    fp = cm.sum(axis=0) - tp
    fn = cm.sum(axis=1) - tp
    return binary_iou_dice(tp, fp, fn)


def binary_iou_dice(
    tp: np.ndarray, fp: np.ndarray, fn: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """IoU and Dice from per-class counts; NaN where a class has no true and no predicted pixel."""
    tp, fp, fn = (np.asarray(a, dtype=np.float64) for a in (tp, fp, fn))
    denom = tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(denom > 0, tp / denom, np.nan)
        dice = np.where(denom > 0, 2 * tp / (denom + tp), np.nan)
    return iou, dice


def pixel_labels(probs: np.ndarray, thresholds: Sequence[float] | np.ndarray | float) -> np.ndarray:
    """Single-label pixel map from K sigmoid maps ``[..., K, H, W]``: 0 background, k = class k.

    The candidate is the argmax of the K probabilities; it is kept when it reaches its own class
    threshold, otherwise the pixel is background.
    """
    probs = np.asarray(probs)
    k_axis = probs.ndim - 3
    thr = threshold_vector(thresholds, probs.shape[k_axis])
    best = probs.argmax(axis=k_axis)
    best_prob = np.take_along_axis(probs, np.expand_dims(best, k_axis), axis=k_axis)
    best_prob = best_prob.squeeze(k_axis)
    return np.where(best_prob >= thr[best], best + 1, 0)


def mask_labels(masks: np.ndarray) -> np.ndarray:
    """Single-label truth map from multi-hot masks ``[..., K, H, W]``: 0 background, else the
    lowest-index class present at the pixel (NEU-Seg masks never overlap, so nothing is lost)."""
    masks = np.asarray(masks) > 0.5
    k_axis = masks.ndim - 3
    return np.where(masks.any(axis=k_axis), masks.argmax(axis=k_axis) + 1, 0)


class SegmentationMeter:
    """Streaming segmentation statistics: a (K+1)x(K+1) pixel confusion matrix (background + K)
    and per-class binary tp/fp/fn of ``prob >= thr`` against each (multi-hot) mask channel.

    Memory stays O(K^2) whatever the split size; call ``update`` once per batch.
    """

    def __init__(self, classes: Sequence[str], thresholds: Sequence[float] | np.ndarray | float):
        self.classes = list(classes)
        self.thresholds = threshold_vector(thresholds, len(self.classes))
        n = len(self.classes) + 1
        self.confusion = np.zeros((n, n), dtype=np.int64)
        self.tp = np.zeros(n - 1, dtype=np.int64)
        self.fp = np.zeros(n - 1, dtype=np.int64)
        self.fn = np.zeros(n - 1, dtype=np.int64)

    def update(self, probs: np.ndarray, masks: np.ndarray) -> None:
        """Add a batch: sigmoid ``probs`` and multi-hot ``masks``, both ``[B, K, H, W]``."""
        probs = np.asarray(probs)
        masks = np.asarray(masks) > 0.5
        k = len(self.classes)
        if probs.ndim != 4 or probs.shape != masks.shape or probs.shape[1] != k:
            raise MetricInputError(
                f"probs and masks must both be [B, {k}, H, W]; got {probs.shape}, {masks.shape}"
            )
        n = k + 1
        idx = mask_labels(masks).ravel() * n + pixel_labels(probs, self.thresholds).ravel()
        self.confusion += np.bincount(idx, minlength=n * n).reshape(n, n)
        pred = probs >= self.thresholds[None, :, None, None]
        self.tp += (pred & masks).sum(axis=(0, 2, 3))
        self.fp += (pred & ~masks).sum(axis=(0, 2, 3))
        self.fn += (~pred & masks).sum(axis=(0, 2, 3))

    def result(self) -> dict[str, float]:
        """Flat metrics: ``iou/<c>`` and ``dice/<c>`` (c in background + classes); ``miou`` and
        ``mdice``, the means over the defect classes (the headline: background, most of every
        image, would flatter them); ``miou_with_background``, ``mdice_with_background``
        (mmsegmentation's mIoU over background + classes); ``pixel_accuracy``;
        ``defect_iou/<class>``, ``defect_dice/<class>`` and their means ``defect_iou``,
        ``defect_dice`` (multi-label binary IoU per class)."""
        names = ["background", *self.classes]
        iou, dice = iou_dice_from_confusion(self.confusion)
        biou, bdice = binary_iou_dice(self.tp, self.fp, self.fn)
        total = self.confusion.sum()
        out: dict[str, float] = {}
        for name, i, d in zip(names, iou, dice, strict=True):
            out[f"iou/{name}"] = float(i)
            out[f"dice/{name}"] = float(d)
        for name, i, d in zip(self.classes, biou, bdice, strict=True):
            out[f"defect_iou/{name}"] = float(i)
            out[f"defect_dice/{name}"] = float(d)
        out.update(
            miou=nanmean(iou[1:]),
            mdice=nanmean(dice[1:]),
            miou_with_background=nanmean(iou),
            mdice_with_background=nanmean(dice),
            pixel_accuracy=float(np.trace(self.confusion) / total) if total else float("nan"),
            defect_iou=nanmean(biou),
            defect_dice=nanmean(bdice),
        )
        return out


def grade_metrics(
    true: np.ndarray, pred: np.ndarray, grades: Sequence[str]
) -> tuple[dict[str, float], np.ndarray]:
    """Grade accuracy, macro-F1 (over grades present in truth or prediction) and quadratic
    weighted kappa (the grades are ordered ok < minor < major < reject); plus the GxG confusion.

    Kappa is NaN when it is undefined (truth and prediction both constant and equal).
    """
    true = np.asarray(true).astype(np.int64).ravel()
    pred = np.asarray(pred).astype(np.int64).ravel()
    g = len(grades)
    if true.shape != pred.shape:
        raise MetricInputError(f"true and pred differ in length: {true.size} vs {pred.size}")
    if true.size == 0:
        raise MetricInputError("grade metrics need at least one sample")
    if min(true.min(), pred.min()) < 0 or max(true.max(), pred.max()) >= g:
        raise MetricInputError(f"grade indices must lie in [0, {g})")
    labels = list(range(g))
    present = np.union1d(true, pred).tolist()
    # Kappa's chance agreement is total (0/0) exactly when both sides are one and the same grade.
    constant = np.unique(np.concatenate([true, pred])).size == 1
    kappa = (
        float("nan")
        if constant
        else float(cohen_kappa_score(true, pred, labels=labels, weights="quadratic"))
    )
    out = {
        "grade_accuracy": float(accuracy_score(true, pred)),
        "grade_macro_f1": float(f1_score(true, pred, labels=present, average="macro")),
        "grade_qwk": kappa,
    }
    return out, confusion_matrix(true, pred, labels=labels)
