"""Soft parameter sharing: one encoder tower per task, tied by an L2 distance penalty.

Towers have identical encoder shapes, so parameter `i` of one tower corresponds to parameter `i`
of every other; `sharing_penalty()` sums their squared distances over all tower pairs (Duong et
al. 2015). Optional cross-stitch units (Misra et al. 2016) mix corresponding feature maps after
the stem and after every stage with a learned TxT matrix.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn

from mtqa.config import ModelConfig
from mtqa.models.base import MultiTaskNet, build_head
from mtqa.models.blocks import Encoder, UNetDecoder, global_pool


class CrossStitch(nn.Module):
    """Learned linear mix of T same-shaped feature maps, initialised close to identity."""

    def __init__(self, num_towers: int) -> None:
        super().__init__()
        off = 0.1 / max(num_towers - 1, 1)
        init = torch.full((num_towers, num_towers), off)
        init.fill_diagonal_(0.9)
        self.alpha = nn.Parameter(init)

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        return [sum(self.alpha[i, j] * f for j, f in enumerate(feats)) for i in range(len(feats))]


class SoftSharingNet(MultiTaskNet):
    """One encoder per active task (the segmentation tower also owns the U-Net decoder); each
    pooled head reads only its own tower (avg+max pooled deepest map)."""

    def __init__(self, cfg: ModelConfig, num_classes: int, num_grades: int) -> None:
        super().__init__(cfg, num_classes, num_grades)
        self.towers = nn.ModuleDict({t: Encoder(cfg.widths, cfg.blocks) for t in self.tasks})
        pooled = 2 * cfg.widths[-1]
        k, g = num_classes, num_grades
        # Built in this order (pooled heads, decoder, per-pixel heads): the parameter order is
        # what optimizer state and seeded initialisation depend on.
        self.heads = nn.ModuleDict()
        for task in self.active:
            if not task.per_pixel:
                self.heads[task.name] = build_head(task, cfg, pooled, k, g)
        for task in self.active:
            if task.per_pixel:  # segmentation, the one per-pixel task: its tower owns `decoder`
                skips = self.towers[task.name].skip_channels
                self.decoder = UNetDecoder(
                    skips, cfg.decoder_width, cfg.upsample, cfg.refine_width, cfg.decoder_fuse
                )
                self.heads[task.name] = build_head(
                    task, cfg, self.decoder.out_channels, k, g, self.decoder.refine_channels
                )
        use_stitch = cfg.cross_stitch and len(self.tasks) > 1
        n_units = len(cfg.widths) + 1 if use_stitch else 0
        self.stitches = nn.ModuleList(CrossStitch(len(self.tasks)) for _ in range(n_units))

    def _tower_features(self, x: torch.Tensor) -> dict[str, list[torch.Tensor]]:
        """Run all towers level by level so cross-stitch units can mix between levels."""
        towers = [self.towers[t] for t in self.tasks]
        current = [tower.stem(x) for tower in towers]
        levels = [current]
        for depth in range(len(self.cfg.widths) + 1):
            if self.stitches:
                current = self.stitches[depth](current)
                levels[-1] = current
            if depth < len(self.cfg.widths):
                current = [tower.stages[depth](f) for tower, f in zip(towers, current, strict=True)]
                levels.append(current)
        return {t: [level[i] for level in levels] for i, t in enumerate(self.tasks)}

    def _forward_tasks(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = self._tower_features(x)
        out = {}
        for task in self.active:
            if task.per_pixel:
                decoded = self.decoder(feats[task.name], x)
                out[task.output] = self.heads[task.name](decoded, x)
            else:
                out[task.output] = self.heads[task.name](global_pool(feats[task.name][-1]))
        return out

    def sharing_penalty(self) -> torch.Tensor:
        """Sum over tower pairs of squared L2 distances between corresponding parameters."""
        penalty = super().sharing_penalty()
        for a, b in itertools.combinations(self.towers.values(), 2):
            for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
                penalty = penalty + (pa - pb).pow(2).sum()
        return penalty

    def shared_parameters(self) -> list[nn.Parameter]:
        return list(self.stitches.parameters())
