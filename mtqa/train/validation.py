"""Validation pass during training: the figures early stopping and `metrics.csv` use.

Metric definitions are the evaluation component's (`mtqa.evaluate.metrics`): presence macro-F1,
per-class binary defect IoU (mean over defect classes, images with masks only), grade accuracy.
The score that selects the best epoch is the mean of presence macro-F1 and defect IoU over the
active tasks among those two (grade accuracy when it is the only task).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from mtqa.evaluate.metrics import SegmentationMeter, grade_metrics, presence_metrics
from mtqa.evaluate.thresholds import PixelHistogram
from mtqa.tasks import GRADE, PRESENCE, SEGMENTATION, selected

AutocastFactory = Callable[[], contextlib.AbstractContextManager]


# The figures of every epoch's validation (metrics.csv); `per_class_keys` adds each class's.
HEADLINE_KEYS = (
    "presence_macro_f1",
    "presence_macro_auroc",
    "presence_macro_ap",
    "presence_any_ap",
    "presence_exact_match",
    "miou",
    "mdice",
    "defect_iou",
)


def per_class_keys(classes: Sequence[str]) -> tuple[str, ...]:
    """Per-class presence F1 / AP and segmentation IoU / Dice keys (`mtqa.evaluate` names)."""
    return tuple(
        f"{metric}/{name}"
        for name in classes
        for metric in ("presence_f1", "presence_ap", "iou", "dice")
    )


@dataclass
class ValidationResult:
    """Flat metrics, the selection score, and (optionally) what threshold selection needs."""

    metrics: dict[str, float]
    score: float
    presence_probs: np.ndarray | None = None
    presence_targets: np.ndarray | None = None
    histogram: PixelHistogram | None = field(default=None, repr=False)


def selection_score(metrics: dict[str, float], tasks: Sequence[str]) -> float:
    """Mean of the active tasks' headline metrics (`Task.metric`) but grade's, which counts only
    when it is the one task. A metric the data cannot give (NaN: mIoU without masks) is left
    out, so a run on image-level labels scores its presence F1; 0 when none is defined."""
    keys = [t.metric for t in selected(tasks) if t is not GRADE] or [GRADE.metric]
    values = [v for v in (metrics.get(k, float("nan")) for k in keys) if not math.isnan(v)]
    return float(np.mean(values)) if values else 0.0


@torch.no_grad()
def validate(
    model: nn.Module,
    loader: DataLoader,
    classes: Sequence[str],
    grades: Sequence[str],
    tasks: Sequence[str],
    device: torch.device,
    autocast: AutocastFactory,
    channels_last: bool = False,
    collect: bool = False,
    thresholds: tuple[np.ndarray, np.ndarray] | None = None,
    per_class: bool = False,
) -> ValidationResult:
    """Run the model over `loader` at the given (presence, segmentation) per-class thresholds
    (0.5 by default); with `collect`, also keep presence probabilities and a pixel-probability
    histogram for threshold selection; with `per_class`, also report each class's figures
    (`per_class_keys`)."""
    presence_thr, seg_thr = thresholds if thresholds is not None else (0.5, 0.5)
    was_training = model.training
    model.eval()
    seg = SegmentationMeter(classes, seg_thr)
    hist = PixelHistogram(len(classes)) if collect else None
    probs, targets, grade_true, grade_pred = [], [], [], []
    for batch in loader:
        x = batch["image"].to(device)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast():
            out = model(x)
        probs.append(torch.sigmoid(out[PRESENCE.output].float()).cpu().numpy())
        targets.append(batch[PRESENCE.label].numpy())
        grade_pred.append(out[GRADE.output].float().argmax(1).cpu().numpy())
        grade_true.append(batch[GRADE.label].numpy())
        keep = batch["has_mask"].bool().numpy().reshape(-1)
        if keep.any():
            seg_prob = torch.sigmoid(out[SEGMENTATION.output].float()).cpu().numpy()[keep]
            masks = batch[SEGMENTATION.label].numpy()[keep]
            seg.update(seg_prob, masks)
            if hist is not None:
                hist.update(seg_prob, masks)
    model.train(was_training)
    p, t = np.concatenate(probs), np.concatenate(targets)
    presence = presence_metrics(p, t, classes, presence_thr)
    seg_result = seg.result()
    keep_keys = HEADLINE_KEYS + (per_class_keys(classes) if per_class else ())
    metrics = {k: v for k, v in {**presence, **seg_result}.items() if k in keep_keys}
    gm, _ = grade_metrics(np.concatenate(grade_true), np.concatenate(grade_pred), grades)
    metrics.update(grade_accuracy=gm["grade_accuracy"])
    return ValidationResult(
        metrics=metrics,
        score=selection_score(metrics, tasks),
        presence_probs=p if collect else None,
        presence_targets=t if collect else None,
        histogram=hist,
    )
