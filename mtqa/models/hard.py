"""Hard parameter sharing: one encoder and decoder for all tasks, one small head per task."""

from __future__ import annotations

import torch
from torch import nn

from mtqa.config import ModelConfig
from mtqa.models.base import MultiTaskNet
from mtqa.models.blocks import MLPHead, SegHead, UNetDecoder, global_pool, seg_evidence
from mtqa.models.encoders import build_encoder


class HardSharingNet(MultiTaskNet):
    """Shared encoder (`model.encoder`: the ResNet-ish one or EfficientNet-Lite0) and U-Net
    decoder (the decoder only when segmentation is on).

    Presence and grade heads read the avg+max pooled deepest map; when segmentation is active
    they also read its (detached) per-class area and peak logit, which is what tells a
    4-pixel-wide scratch apart from texture and what the area-based grade rule depends on.
    """

    def __init__(self, cfg: ModelConfig, num_classes: int, num_grades: int) -> None:
        super().__init__(cfg, num_classes, num_grades)
        self.encoder = build_encoder(cfg)
        has_seg = "segmentation" in self.tasks
        pooled = 2 * self.encoder.skip_channels[-1] + (2 * num_classes if has_seg else 0)
        self.pool_decoder = bool(cfg.pool_decoder) and has_seg
        if self.pool_decoder:
            pooled += 2 * cfg.decoder_width
        self.heads = nn.ModuleDict()
        if "presence" in self.tasks:
            self.heads["presence"] = MLPHead(pooled, cfg.head_hidden, num_classes, cfg.dropout)
        if "grade" in self.tasks:
            self.heads["grade"] = MLPHead(pooled, cfg.head_hidden, num_grades, cfg.dropout)
        if has_seg:
            self.decoder = UNetDecoder(
                self.encoder.skip_channels,
                cfg.decoder_width,
                cfg.upsample,
                cfg.refine_width,
                cfg.decoder_fuse,
            )
            self.heads["segmentation"] = SegHead(
                self.decoder.out_channels, num_classes, cfg.upsample, self.decoder.refine_channels
            )

    def _forward_tasks(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = self.encoder(x)
        pooled = global_pool(feats[-1])
        out = {}
        if "segmentation" in self.heads:
            decoded = self.decoder(feats, x)
            out["seg_logits"] = self.heads["segmentation"](decoded, x)
            # Detached like the segmentation evidence: the heads read the decoder, do not pull it.
            extra = [global_pool(decoded[0].detach())] if self.pool_decoder else []
            pooled = torch.cat([pooled, *extra, seg_evidence(out["seg_logits"])], dim=1)
        if "presence" in self.heads:
            out["presence_logits"] = self.heads["presence"](pooled)
        if "grade" in self.heads:
            out["grade_logits"] = self.heads["grade"](pooled)
        return out

    def shared_parameters(self) -> list[nn.Parameter]:
        return list(self.encoder.parameters())
