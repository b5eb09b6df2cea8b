"""Multi-task architectures behind one base class; `build_model` picks one by `cfg.arch`."""

from __future__ import annotations

from mtqa.config import ConfigError, ModelConfig
from mtqa.models.base import OUTPUT_KEYS, MultiTaskNet
from mtqa.models.encoders import Normalisation, encoder_normalisation
from mtqa.models.hard import HardSharingNet
from mtqa.models.soft import SoftSharingNet

ARCHITECTURES: dict[str, type[MultiTaskNet]] = {"hard": HardSharingNet, "soft": SoftSharingNet}

__all__ = [
    "ARCHITECTURES",
    "OUTPUT_KEYS",
    "MultiTaskNet",
    "Normalisation",
    "build_model",
    "encoder_normalisation",
]


def build_model(cfg: ModelConfig, num_classes: int, num_grades: int) -> MultiTaskNet:
    """Instantiate the architecture named by `cfg.arch` for K classes and G grades."""
    if cfg.arch not in ARCHITECTURES:
        raise ConfigError(f"unknown architecture {cfg.arch!r}; known: {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[cfg.arch](cfg, num_classes, num_grades)
