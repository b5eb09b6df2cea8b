"""Per-task losses: presence (BCE with pos_weight, or focal), segmentation (Dice + BCE, masked per
image by `has_mask`, plus an optional image-level term on each class's peak logit), grade
(cross-entropy, or soft ordinal labels).

`MultiTaskLoss` returns a dict of scalar losses, one per active task; how they are combined is
the weighting strategy's job (`mtqa.weighting`). Class imbalance is handled from the data's
positive rates: `pos_weight = (1 - p) / p`, clipped to `max_pos_weight`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from mtqa.config import LossConfig
from mtqa.tasks import GRADE, PRESENCE, SEGMENTATION, selected


def pos_weight_from_rates(rates: Sequence[float], max_weight: float) -> torch.Tensor:
    """`(1 - p) / p` per class, clipped to [1/max_weight, max_weight] (rates of 0 or 1 are safe)."""
    p = torch.as_tensor(rates, dtype=torch.float32).clamp(1e-6, 1 - 1e-6)
    return ((1 - p) / p).clamp(1.0 / max_weight, max_weight)


def focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float) -> torch.Tensor:
    """Binary focal loss (Lin et al. 2017), mean over elements, without alpha balancing."""
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = torch.exp(-bce)
    return ((1 - p_t) ** gamma * bce).mean()


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 - Dice per class over the batch and pixels, averaged over classes; `eps` keeps classes
    absent from a batch from dominating (an empty prediction then scores close to 1)."""
    prob = torch.sigmoid(logits)
    dims = (0, 2, 3)
    inter = (prob * target).sum(dims)
    denom = prob.sum(dims) + target.sum(dims)
    return (1 - (2 * inter + eps) / (denom + eps)).mean()


def ordinal_targets(grade: torch.Tensor, num_grades: int, temperature: float = 1.0) -> torch.Tensor:
    """Soft ordinal labels (SORD, Diaz & Marathe 2019): softmax of minus the grade distance."""
    ranks = torch.arange(num_grades, device=grade.device, dtype=torch.float32)
    return torch.softmax(-(ranks[None] - grade[:, None].float()).abs() / temperature, dim=1)


class MultiTaskLoss(nn.Module):
    """Computes `{task name: scalar loss}` for the active tasks, in `mtqa.tasks` table order."""

    def __init__(
        self,
        cfg: LossConfig,
        tasks: Sequence[str],
        presence_pos_weight: torch.Tensor | None = None,
        pixel_pos_weight: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        self.cfg = cfg
        self.tasks = tuple(tasks)
        self.active = selected(self.tasks)
        use = cfg.pos_weight
        self.register_buffer(
            "presence_pos_weight", presence_pos_weight if use else None, persistent=False
        )
        self.register_buffer(
            "pixel_pos_weight", pixel_pos_weight if use else None, persistent=False
        )

    def forward(
        self, outputs: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        terms = self.terms()
        return {t.name: terms[t.name](outputs[t.output].float(), batch) for t in self.active}

    def terms(self) -> dict[str, Callable[[torch.Tensor, dict], torch.Tensor]]:
        """Each task's loss from its fp32 logits and the batch, by task name (one per task of
        `mtqa.tasks.TASKS`)."""
        return {
            PRESENCE.name: lambda logits, batch: self.presence(logits, batch[PRESENCE.label]),
            SEGMENTATION.name: self.segmentation_term,
            GRADE.name: lambda logits, batch: self.grade(logits, batch[GRADE.label]),
        }

    def segmentation_term(self, logits: torch.Tensor, batch: dict) -> torch.Tensor:
        """`segmentation` plus, with `peak_weight`, the image-level `peak` term."""
        loss = self.segmentation(logits, batch[SEGMENTATION.label], batch["has_mask"])
        if self.cfg.peak_weight > 0:
            loss = loss + self.cfg.peak_weight * self.peak(logits, batch[PRESENCE.label])
        return loss

    def presence(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.cfg.presence == "focal":
            return focal_loss(logits, target, self.cfg.focal_gamma)
        return F.binary_cross_entropy_with_logits(
            logits, target, pos_weight=self.presence_pos_weight
        )

    def segmentation(
        self, logits: torch.Tensor, mask: torch.Tensor, has_mask: torch.Tensor
    ) -> torch.Tensor:
        """Dice + pixel BCE over the images that carry a mask; exactly 0 (still differentiable)
        when none in the batch does, so image-level-only batches train the other heads."""
        keep = has_mask.bool().reshape(-1)
        if not bool(keep.any()):
            return logits.sum() * 0.0
        if not bool(keep.all()):  # boolean indexing costs an index_put in backward: skip it
            logits, mask = logits[keep], mask[keep]
        pw = self.pixel_pos_weight
        pw = pw.view(1, -1, 1, 1) if pw is not None else None
        bce = F.binary_cross_entropy_with_logits(logits, mask, pos_weight=pw)
        return self.cfg.seg_bce_weight * bce + self.cfg.dice_weight * soft_dice_loss(logits, mask)

    def peak(self, logits: torch.Tensor, presence: torch.Tensor) -> torch.Tensor:
        """Image-level BCE of each class's peak pixel logit against the presence label (multiple
        instance learning): the masks' own loss barely notices one missed faint defect or one
        false peak on a clean image, yet the peak is what tells the presence head a defect is
        there. Needs only presence labels, so images without masks train the masks too."""
        return F.binary_cross_entropy_with_logits(
            logits.flatten(2).amax(2), presence, pos_weight=self.presence_pos_weight
        )

    def grade(self, logits: torch.Tensor, grade: torch.Tensor) -> torch.Tensor:
        if self.cfg.grade == "ordinal":
            target = ordinal_targets(grade, logits.shape[1])
            return -(target * F.log_softmax(logits, dim=1)).sum(1).mean()
        return F.cross_entropy(logits, grade.long(), label_smoothing=self.cfg.label_smoothing)
