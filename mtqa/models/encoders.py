"""Encoder choice (`model.encoder`) and the input normalisation a pretrained encoder needs.

Every encoder maps `[N,3,H,W]` to feature maps at strides 2, 4, 8, ... (shallow to deep) and
exposes `skip_channels`, their channel counts, which is all `UNetDecoder` and the heads read.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from mtqa.config import ENCODERS, ConfigError, ModelConfig
from mtqa.models.blocks import Encoder
from mtqa.models.efficientnet_lite import (
    INPUT_MEAN,
    INPUT_STD,
    EfficientNetLite0Encoder,
    load_imagenet_weights,
)


@dataclass(frozen=True)
class Normalisation:
    """Per-channel mean and std on 0..1 RGB pixels: the network sees `(x - mean) / std`."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]


def build_encoder(cfg: ModelConfig) -> nn.Module:
    """The encoder named by `cfg.encoder`, with its ImageNet weights when `cfg.pretrained`."""
    if cfg.encoder == "resnet":
        if cfg.pretrained:
            raise ConfigError("model.pretrained: the resnet encoder has no pretrained weights")
        return Encoder(cfg.widths, cfg.blocks)
    if cfg.encoder == "efficientnet_lite0":
        encoder = EfficientNetLite0Encoder()
        if cfg.pretrained:
            load_imagenet_weights(encoder)
        return encoder
    raise ConfigError(f"model.encoder must be one of {ENCODERS}, got {cfg.encoder!r}")


def encoder_normalisation(cfg: ModelConfig) -> Normalisation | None:
    """The input normalisation `cfg`'s pretrained weights were trained with, or None when the
    encoder starts from scratch (then any normalisation works: the data's own statistics)."""
    if cfg.encoder == "efficientnet_lite0" and cfg.pretrained:
        return Normalisation(INPUT_MEAN, INPUT_STD)
    return None
