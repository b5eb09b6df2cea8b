"""Learning-rate schedule: linear warm-up, then cosine decay to `min_lr_ratio` of the peak."""

from __future__ import annotations

import math

import torch


class WarmupCosine:
    """The per-step factor of the peak learning rate. A callable object, not a closure, so that
    `LambdaLR.state_dict()` saves its fields (resume keeps them).

    With `time_fraction` set (a time budget: the trainer writes elapsed / budget before each
    step), the cosine follows the clock instead of the step count, so a run on a machine that
    is slower or busier than expected still anneals by the end of its budget."""

    def __init__(self, warmup_steps: int, total_steps: int, min_ratio: float) -> None:
        self.min_ratio = float(min_ratio)
        self.total_steps = max(int(total_steps), 1)
        self.warmup_steps = min(max(int(warmup_steps), 0), self.total_steps - 1)
        self.time_fraction: float | None = None

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / (self.warmup_steps + 1)
        if self.time_fraction is not None:
            progress = min(max(self.time_fraction, 0.0), 1.0)
        else:
            span = max(self.total_steps - self.warmup_steps, 1)
            progress = min((step - self.warmup_steps) / span, 1.0)
        return self.min_ratio + (1 - self.min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def warmup_cosine(
    optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int, min_ratio: float
) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-step LambdaLR; `warmup_steps` may be 0 and `total_steps` must be positive.
    `scheduler.lr_lambdas[0]` is the `WarmupCosine` (see `set_total`)."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, WarmupCosine(warmup_steps, total_steps, min_ratio)
    )
