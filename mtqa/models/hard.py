"""Hard parameter sharing: one encoder and decoder for all tasks, one small head per task."""

from __future__ import annotations

import torch
from torch import nn

from mtqa.config import ModelConfig
from mtqa.models.base import MultiTaskNet, build_head
from mtqa.models.blocks import UNetDecoder, global_pool, seg_evidence
from mtqa.models.encoders import build_encoder


class HardSharingNet(MultiTaskNet):
    """Shared encoder (`model.encoder`: the ResNet-ish one or EfficientNet-Lite0) and U-Net
    decoder (the decoder only when a per-pixel task, segmentation, is on), one head per task.

    Per-image heads (presence, grade) read the avg+max pooled deepest map; when segmentation is
    active they also read its (detached) per-class area and peak logit, which is what tells a
    4-pixel-wide scratch apart from texture and what the area-based grade rule depends on.
    """

    def __init__(self, cfg: ModelConfig, num_classes: int, num_grades: int) -> None:
        super().__init__(cfg, num_classes, num_grades)
        self.encoder = build_encoder(cfg)
        pixel = [t for t in self.active if t.per_pixel]
        k, g = num_classes, num_grades
        # avg+max pooled deepest map, plus each per-pixel task's area and peak per channel
        pooled = 2 * self.encoder.skip_channels[-1] + sum(2 * t.channels(k, g) for t in pixel)
        self.pool_decoder = bool(cfg.pool_decoder) and bool(pixel)
        if self.pool_decoder:
            pooled += 2 * cfg.decoder_width
        # Built in this order (pooled heads, decoder, per-pixel heads): the parameter order is
        # what optimizer state and seeded initialisation depend on.
        self.heads = nn.ModuleDict()
        for task in self.active:
            if not task.per_pixel:
                self.heads[task.name] = build_head(task, cfg, pooled, k, g)
        if pixel:
            self.decoder = UNetDecoder(
                self.encoder.skip_channels,
                cfg.decoder_width,
                cfg.upsample,
                cfg.refine_width,
                cfg.decoder_fuse,
            )
            for task in pixel:
                self.heads[task.name] = build_head(
                    task, cfg, self.decoder.out_channels, k, g, self.decoder.refine_channels
                )

    def _forward_tasks(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = self.encoder(x)
        pooled = global_pool(feats[-1])
        out = {}
        pixel = [t for t in self.active if t.per_pixel]
        if pixel:
            decoded = self.decoder(feats, x)
            for task in pixel:
                out[task.output] = self.heads[task.name](decoded, x)
            # Detached like the per-pixel evidence: the heads read the decoder, do not pull it.
            extra = [global_pool(decoded[0].detach())] if self.pool_decoder else []
            evidence = [seg_evidence(out[t.output]) for t in pixel]
            pooled = torch.cat([pooled, *extra, *evidence], dim=1)
        for task in self.active:
            if not task.per_pixel:
                out[task.output] = self.heads[task.name](pooled)
        return out

    def shared_parameters(self) -> list[nn.Parameter]:
        return list(self.encoder.parameters())
