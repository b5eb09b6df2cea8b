"""Accuracy gate: each precision variant, run on its runtime, must match the FP32 ONNX per head.

Metrics come from mtqa.evaluate.evaluate_predictor (the same code that scores training and the
served model). A head fails when the variant's metric is more than `tolerance` points (1 point =
0.01 of a metric in [0, 1]) below the FP32 reference; a metric undefined on the split is skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from mtqa.evaluate import evaluate_predictor
from mtqa.progress import NO_PROGRESS, Progress
from mtqa_builder.export import INPUT_NAME, OUTPUT_NAMES

HEAD_METRICS = {
    "presence": "presence_macro_f1",
    "segmentation": "miou",
    "grade": "grade_accuracy",
}
DEFAULT_TOLERANCE = 1.0  # points


@dataclass
class GateResult:
    """Outcome for one variant: per-head reference, candidate and drop (points)."""

    passed: bool
    heads: dict[str, dict[str, float | None]]
    tolerance: dict[str, float]
    metrics: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """JSON form for the variant's manifest.json."""
        return {
            "passed": self.passed,
            "heads": self.heads,
            "tolerance_points": self.tolerance,
            "metrics": self.metrics,
        }

    def failures(self) -> list[str]:
        """Human-readable lines for each failing head."""
        return [
            f"{head}: {h['metric']} {h['reference']:.4f} -> {h['candidate']:.4f} "
            f"(-{h['drop_points']:.2f} pts > {self.tolerance[head]:.2f})"
            for head, h in self.heads.items()
            if h.get("failed")
        ]


def ort_predict_fn(onnx_path: Path, threads: int = 2) -> Callable[[np.ndarray], dict]:
    """An evaluate_predictor-compatible predictor running `onnx_path` on ORT's CPU provider."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])

    def predict(images: np.ndarray) -> dict[str, np.ndarray]:
        batch = np.ascontiguousarray(images, dtype=np.float32)
        return dict(
            zip(OUTPUT_NAMES, session.run(list(OUTPUT_NAMES), {INPUT_NAME: batch}), strict=True)
        )

    return predict


def evaluate_onnx(
    onnx_path: Path,
    dataset,
    classes: Sequence[str],
    grades: Sequence[str],
    thresholds: Mapping[str, Any],
    batch_size: int = 16,
    progress: Progress = NO_PROGRESS,
    predict: Callable[[np.ndarray], dict] | None = None,
) -> dict[str, Any]:
    """Flat metrics of one ONNX file on `dataset` with the checkpoint's thresholds; `progress`
    advances by the images scored."""
    return evaluate_predictor(
        predict or ort_predict_fn(onnx_path),  # the OpenVINO variants pass their runtime
        dataset,
        classes,
        grades,
        thresholds,
        batch_size=batch_size,
        progress=progress,
    )


def judge(
    reference: Mapping[str, Any],
    candidate: Mapping[str, Any],
    tolerance: Mapping[str, float] | float = DEFAULT_TOLERANCE,
) -> GateResult:
    """Compare `candidate` metrics to `reference` head by head."""
    if not isinstance(tolerance, Mapping):
        tolerance = dict.fromkeys(HEAD_METRICS, float(tolerance))
    tol = {head: float(tolerance.get(head, DEFAULT_TOLERANCE)) for head in HEAD_METRICS}
    heads: dict[str, dict] = {}
    for head, metric in HEAD_METRICS.items():
        ref, cand = reference.get(metric), candidate.get(metric)
        if ref is None or cand is None:
            heads[head] = {"metric": metric, "reference": ref, "candidate": cand, "skipped": True}
            continue
        drop = (float(ref) - float(cand)) * 100.0
        heads[head] = {
            "metric": metric,
            "reference": float(ref),
            "candidate": float(cand),
            "drop_points": round(drop, 4),
            "failed": bool(drop > tol[head]),
        }
    passed = not any(h.get("failed") for h in heads.values())
    return GateResult(passed=passed, heads=heads, tolerance=tol, metrics=dict(candidate))
