"""Typed errors raised by the builder; the CLI prints each as one line on stderr, exit code 1."""

from __future__ import annotations


class BuildError(Exception):
    """Base class for every error the builder reports to the user."""


class ExportError(BuildError):
    """The model could not be exported to ONNX, or the export disagrees with PyTorch."""


class CalibrationError(BuildError):
    """No usable calibration data (INT8 is refused rather than calibrated on nothing)."""


class GateError(BuildError):
    """A precision variant lost more accuracy than its tolerance allows."""


class TensorRTUnavailableError(BuildError):
    """TensorRT or a CUDA GPU is missing on this host, so engines cannot be compiled here."""


class RepositoryError(BuildError):
    """The model repository cannot be written as asked (bad target, missing engines, ...)."""


class ServingError(BuildError):
    """A serving setting (`configs.Serving`) is out of range; `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field} {message}")
        self.field, self.detail = field, message
