"""Hard parameter sharing: one encoder and decoder for all tasks, one small head per task."""

from __future__ import annotations

import torch
from torch import nn

from mtqa.config import ModelConfig
from mtqa.models.base import MultiTaskNet
from mtqa.models.blocks import Encoder, PooledHead, SegHead, UNetDecoder


class HardSharingNet(MultiTaskNet):
    """Shared ResNet-ish encoder; presence and grade heads pool its deepest map, the
    segmentation head sits on the shared U-Net decoder (built only when segmentation is active).
    """

    def __init__(self, cfg: ModelConfig, num_classes: int, num_grades: int) -> None:
        super().__init__(cfg, num_classes, num_grades)
        self.encoder = Encoder(cfg.widths, cfg.blocks)
        deep = self.encoder.widths[-1]
        self.heads = nn.ModuleDict()
        if "presence" in self.tasks:
            self.heads["presence"] = PooledHead(deep, cfg.head_hidden, num_classes, cfg.dropout)
        if "grade" in self.tasks:
            self.heads["grade"] = PooledHead(deep, cfg.head_hidden, num_grades, cfg.dropout)
        if "segmentation" in self.tasks:
            self.decoder = UNetDecoder(self.encoder.skip_channels, cfg.decoder_width, cfg.upsample)
            self.heads["segmentation"] = SegHead(cfg.decoder_width, num_classes, cfg.upsample)

    def _forward_tasks(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = self.encoder(x)
        out = {}
        if "presence" in self.heads:
            out["presence_logits"] = self.heads["presence"](feats[-1])
        if "grade" in self.heads:
            out["grade_logits"] = self.heads["grade"](feats[-1])
        if "segmentation" in self.heads:
            out["seg_logits"] = self.heads["segmentation"](self.decoder(feats), x)
        return out

    def shared_parameters(self) -> list[nn.Parameter]:
        return list(self.encoder.parameters())
