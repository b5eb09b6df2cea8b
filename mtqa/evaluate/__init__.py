"""Evaluation of mtqa predictors: metrics, decision thresholds and the `mtqa evaluate` report.

Every stage (PyTorch checkpoint, ONNX fp32/fp16/int8 in the builder's accuracy gate, a served
model) is measured by the same ``evaluate_predictor``, so figures are comparable end to end.
"""

from mtqa.evaluate.evaluation import (
    EvaluationError,
    EvaluationResult,
    evaluate_predictor,
    run_evaluation,
    torch_predict_fn,
)
from mtqa.evaluate.thresholds import (
    ThresholdError,
    load_thresholds,
    save_thresholds,
    select_thresholds,
)

__all__ = [
    "EvaluationError",
    "EvaluationResult",
    "ThresholdError",
    "evaluate_predictor",
    "load_thresholds",
    "run_evaluation",
    "save_thresholds",
    "select_thresholds",
    "torch_predict_fn",
]
