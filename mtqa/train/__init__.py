"""Training: `train(cfg, source, out)` runs the loop in `mtqa.train.loop`."""

from mtqa.train.loop import TrainError, TrainResult, run_config_from_checkpoint, train

__all__ = ["TrainError", "TrainResult", "run_config_from_checkpoint", "train"]
