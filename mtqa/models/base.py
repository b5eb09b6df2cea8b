"""The tiny base class every multi-task architecture derives from."""

from __future__ import annotations

import torch
from torch import nn

from mtqa.config import ModelConfig
from mtqa.models.blocks import MLPHead, SegHead
from mtqa.tasks import OUTPUT_KEYS, TASKS, Task, selected

__all__ = ["OUTPUT_KEYS", "MultiTaskNet", "build_head", "load_exactly"]


def load_exactly(module: nn.Module, state: dict[str, torch.Tensor]) -> str | None:
    """Load `state` into `module`, every tensor in its place; why it does not fit, or None."""
    try:
        result = module.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches
        return str(exc)
    if result.missing_keys or result.unexpected_keys:
        return f"missing {result.missing_keys[:5]}, unexpected {result.unexpected_keys[:5]}"
    return None


def build_head(
    task: Task,
    cfg: ModelConfig,
    in_channels: int,
    num_classes: int,
    num_grades: int,
    refine_channels: int = 0,
) -> nn.Module:
    """The head that turns features into `task`'s logits: a 1x1-conv `SegHead` on the decoder
    map for per-pixel tasks, an `MLPHead` on the pooled feature vector for per-image ones."""
    out = task.channels(num_classes, num_grades)
    if task.per_pixel:
        return SegHead(in_channels, out, cfg.upsample, refine_channels)
    return MLPHead(in_channels, cfg.head_hidden, out, cfg.dropout)


class MultiTaskNet(nn.Module):
    """Images `[N,3,S,S]` in, a dict with exactly `OUTPUT_KEYS` out.

    `tasks` holds the configured task names (config order), `active` their `mtqa.tasks.Task`
    entries in table order. Subclasses implement `_forward_tasks`, returning logits for the
    active tasks only, keyed by `Task.output`. Outputs of inactive tasks (single-task study
    variants) are constant zero logits of the right shape, so the exported graph always has the
    three contract outputs while making it plain that no head was trained for them (sigmoid 0.5
    / uniform softmax).
    """

    def __init__(self, cfg: ModelConfig, num_classes: int, num_grades: int) -> None:
        super().__init__()
        if num_classes < 1 or num_grades < 2:
            raise ValueError(f"need >= 1 class and >= 2 grades, got {num_classes}, {num_grades}")
        self.cfg = cfg
        self.tasks = tuple(cfg.tasks)
        self.active = selected(self.tasks)
        self.num_classes = num_classes
        self.num_grades = num_grades

    def _forward_tasks(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self._forward_tasks(x)
        n, k, g, size = x.shape[0], self.num_classes, self.num_grades, x.shape[-2:]
        return {
            t.output: out[t.output] if t.output in out else x.new_zeros(t.shape(n, k, g, size))
            for t in TASKS
        }

    def sharing_penalty(self) -> torch.Tensor:
        """Soft-sharing regulariser; zero for architectures that share parameters outright."""
        return torch.zeros((), device=next(self.parameters()).device)

    def shared_parameters(self) -> list[nn.Parameter]:
        """Parameters every task's loss flows through (what gradient weightings act on)."""
        return []
