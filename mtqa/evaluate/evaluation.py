"""Predictor-agnostic evaluation: one metric code path for PyTorch, ONNX Runtime and Triton.

A predictor is any callable ``predict_fn(images float32 [B, 3, S, S]) -> {output key: logits}``
(numpy), one entry per task of ``mtqa.tasks.TASKS`` (``OUTPUT_KEYS``). ``evaluate_predictor``
streams a dataset through it in batches and keeps only O(K^2) pixel statistics, per-image
presence probabilities and grades, so a split's masks are never held in memory at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.special import expit

from mtqa.data.grading import decided_grade
from mtqa.evaluate.jsonsafe import json_safe
from mtqa.evaluate.metrics import (
    SegmentationMeter,
    grade_metrics,
    presence_confusions,
    presence_metrics,
)
from mtqa.evaluate.thresholds import PixelHistogram, threshold_arrays
from mtqa.evaluate.worst import WorstCase, WorstCases
from mtqa.progress import NO_PROGRESS, Progress
from mtqa.tasks import GRADE, OUTPUT_KEYS, PRESENCE, SEGMENTATION, TASKS

PredictFn = Callable[[np.ndarray], Mapping[str, np.ndarray]]


class EvaluationError(ValueError):
    """Raised for an empty dataset, malformed dataset items or malformed predictor outputs."""


@dataclass
class Sample:
    """One image kept for overlays: normalised image, true masks and probabilities [K,S,S]."""

    id: str
    image: np.ndarray
    mask: np.ndarray
    seg_prob: np.ndarray
    presence_prob: np.ndarray


@dataclass
class EvaluationResult:
    """Everything one evaluation pass produced: flat metrics plus the arrays behind the plots."""

    metrics: dict[str, float]
    classes: list[str]
    grades: list[str]
    presence_probs: np.ndarray
    presence_targets: np.ndarray
    presence_confusion: np.ndarray
    grade_confusion: np.ndarray
    pixel_confusion: np.ndarray
    pixel_histogram: PixelHistogram
    samples: list[Sample] = field(default_factory=list)
    # the worst missed / false presence decisions, worst first ("missed", "false" -> cases)
    worst: dict[str, list[WorstCase]] = field(default_factory=dict)

    def flat(self) -> dict[str, float | int | None]:
        """The metrics as a JSON-safe dict (NaN, i.e. undefined, becomes None)."""
        return json_safe(self.metrics)


def iter_batches(dataset: Sequence[Mapping[str, Any]], batch_size: int) -> Iterator[dict]:
    """Stack dataset items (dicts of arrays or CPU tensors) into numpy batches, in order."""
    if batch_size < 1:
        raise EvaluationError(f"batch_size must be >= 1; got {batch_size}")
    for start in range(0, len(dataset), batch_size):
        items = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        try:
            yield {
                "image": np.stack([np.asarray(it["image"], dtype=np.float32) for it in items]),
                "mask": np.stack([np.asarray(it["mask"], dtype=np.float32) for it in items]),
                "has_mask": np.array([bool(it["has_mask"]) for it in items]),
                "presence": np.stack([np.asarray(it["presence"]) for it in items]),
                "grade": np.array([int(it["grade"]) for it in items]),
                "id": [str(it.get("id", start + j)) for j, it in enumerate(items)],
            }
        except KeyError as exc:
            raise EvaluationError(f"dataset items lack the key {exc}") from exc


def _check_outputs(out: Mapping[str, np.ndarray], batch: dict, k: int, g: int) -> dict:
    missing = [name for name in OUTPUT_KEYS if name not in out]
    if missing:
        raise EvaluationError(f"predictor output lacks {', '.join(missing)}")
    n, size = len(batch["image"]), batch["mask"].shape[2:]
    expected = {t.output: t.shape(n, k, g, size) for t in TASKS}
    arrays = {name: np.asarray(out[name], dtype=np.float32) for name in OUTPUT_KEYS}
    for name, shape in expected.items():
        if arrays[name].shape != shape:
            raise EvaluationError(
                f"predictor output {name} has shape {arrays[name].shape}, expected {shape}"
            )
        if np.isnan(arrays[name]).any():
            # metrics of NaN scores would be silently wrong (or fail deep inside scikit-learn)
            raise EvaluationError(f"predictor output {name} contains NaN")
    return arrays


class Evaluator:
    """Streaming accumulator: feed (predictor outputs, batch) pairs, then call ``result``."""

    def __init__(
        self,
        classes: Sequence[str],
        grades: Sequence[str],
        thresholds: Mapping[str, Any] | None = None,
        keep_samples: int = 0,
        histogram_bins: int = 1000,
        worst_cases: int | None = None,
    ):
        self.classes, self.grades = list(classes), list(grades)
        self.presence_thr, self.seg_thr = threshold_arrays(thresholds, self.classes)
        self.seg = SegmentationMeter(self.classes, self.seg_thr)
        self.hist = PixelHistogram(len(self.classes), histogram_bins)
        self.keep_samples = keep_samples
        self.samples: list[Sample] = []
        # as many worst cases of each kind as samples, unless told
        per_kind = keep_samples if worst_cases is None else worst_cases
        self.worst = WorstCases(self.classes, self.presence_thr, per_kind)
        self._probs: list[np.ndarray] = []
        self._targets: list[np.ndarray] = []
        self._grade_true: list[np.ndarray] = []
        self._grade_pred: list[np.ndarray] = []
        self.n_images_with_masks = 0

    def update(self, outputs: Mapping[str, np.ndarray], batch: dict) -> None:
        """Add one batch of predictor outputs and the matching batch from ``iter_batches``."""
        out = _check_outputs(outputs, batch, len(self.classes), len(self.grades))
        pres = expit(out[PRESENCE.output])
        self._probs.append(pres)
        self._targets.append((batch[PRESENCE.label] > 0.5).astype(np.int64))
        self._grade_true.append(batch[GRADE.label])
        self._grade_pred.append(decided_grade(out[GRADE.output], pres >= self.presence_thr))
        sel = batch["has_mask"]
        self.n_images_with_masks += int(sel.sum())
        if sel.any():
            seg = expit(out[SEGMENTATION.output][sel])
            masks = batch[SEGMENTATION.label][sel]
            self.seg.update(seg, masks)
            self.hist.update(seg, masks)
            ids = [i for i, keep in zip(batch["id"], sel, strict=True) if keep]
            images = batch["image"][sel]
            for j in range(min(self.keep_samples - len(self.samples), len(ids))):
                self.samples.append(Sample(ids[j], images[j], masks[j], seg[j], pres[sel][j]))
            self.worst.update(ids, images, masks, seg, pres[sel], self._targets[-1][sel])

    def result(self) -> EvaluationResult:
        """Compute every metric from what was accumulated."""
        if not self._probs:
            raise EvaluationError("nothing to evaluate: the dataset is empty")
        probs, targets = np.concatenate(self._probs), np.concatenate(self._targets)
        grade_true, grade_pred = np.concatenate(self._grade_true), np.concatenate(self._grade_pred)
        metrics: dict[str, float] = {
            "n_images": int(len(probs)),
            "n_images_with_masks": self.n_images_with_masks,
        }
        metrics.update(presence_metrics(probs, targets, self.classes, self.presence_thr))
        metrics.update(self.seg.result())
        grade, grade_cm = grade_metrics(grade_true, grade_pred, self.grades)
        metrics.update(grade)
        for name, p, s in zip(self.classes, self.presence_thr, self.seg_thr, strict=True):
            metrics[f"threshold_presence/{name}"] = float(p)
            metrics[f"threshold_segmentation/{name}"] = float(s)
        return EvaluationResult(
            metrics=metrics,
            classes=self.classes,
            grades=self.grades,
            presence_probs=probs,
            presence_targets=targets,
            presence_confusion=presence_confusions(probs, targets, self.presence_thr),
            grade_confusion=grade_cm,
            pixel_confusion=self.seg.confusion.copy(),
            pixel_histogram=self.hist,
            samples=self.samples,
            worst=self.worst.cases,
        )


def run_evaluation(
    predict_fn: PredictFn,
    dataset: Sequence[Mapping[str, Any]],
    classes: Sequence[str],
    grades: Sequence[str],
    thresholds: Mapping[str, Any] | None = None,
    batch_size: int = 32,
    keep_samples: int = 0,
    progress: Progress = NO_PROGRESS,
) -> EvaluationResult:
    """Stream ``dataset`` through ``predict_fn`` and return the full result (arrays for plots and
    for threshold selection included); ``keep_samples`` images with masks are kept for overlays.
    ``progress`` is advanced by the images of each batch (the caller opens the stage)."""
    evaluator = Evaluator(classes, grades, thresholds, keep_samples=keep_samples)
    for batch in iter_batches(dataset, batch_size):
        evaluator.update(predict_fn(batch["image"]), batch)
        progress.advance(len(batch["image"]))
    return evaluator.result()


def evaluate_predictor(
    predict_fn: PredictFn,
    dataset: Sequence[Mapping[str, Any]],
    classes: Sequence[str],
    grades: Sequence[str],
    thresholds: Mapping[str, Any] | None = None,
    batch_size: int = 32,
    progress: Progress = NO_PROGRESS,
) -> dict[str, float | int | None]:
    """Evaluate any predictor on a dataset and return flat, JSON-safe metrics.

    ``thresholds`` is the ``thresholds.json`` mapping (None: 0.5 everywhere). Keys include
    ``presence_macro_f1``, ``miou`` (defect classes), ``miou_with_background``, ``defect_iou`` and
    ``grade_accuracy``; undefined metrics are None. See docs/evaluation.md for every key.
    """
    return run_evaluation(
        predict_fn, dataset, classes, grades, thresholds, batch_size, progress=progress
    ).flat()


def torch_predict_fn(model: Any) -> PredictFn:
    """Adapter: a PyTorch ``MultiTaskNet`` (in eval mode, on CPU) as a numpy predictor."""
    # Deferred: evaluating ONNX Runtime or Triton predictors never loads torch.
    import torch

    def predict(images: np.ndarray) -> dict[str, np.ndarray]:
        with torch.inference_mode():
            out = model(torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)))
        return {name: out[name].float().cpu().numpy() for name in OUTPUT_KEYS}

    return predict
