"""The base class of loss-weighting strategies: turn per-task losses into one backward pass."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

Reducer = Callable[[torch.Tensor], torch.Tensor]


class Weighting(nn.Module):
    """Combines a dict of per-task scalar losses and runs the backward pass.

    Strategies that only re-weight implement `combine` (a differentiable total). Gradient
    methods override `backward` and then need the shared parameters. Learnable strategy
    parameters live in the module, so the optimizer can own them (without weight decay).
    `reduce` averages a tensor over data-parallel ranks (identity on one process); strategies
    that edit gradients by hand use it so every rank applies the same update.
    """

    def __init__(self, tasks: Sequence[str], weights: dict[str, float] | None = None) -> None:
        super().__init__()
        self.tasks = tuple(tasks)
        weights = weights or {}
        self.weights = {t: float(weights.get(t, 1.0)) for t in self.tasks}
        self.reduce: Reducer = lambda t: t

    def combine(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def backward(
        self,
        losses: dict[str, torch.Tensor],
        shared_params: Sequence[nn.Parameter],
        extra: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Back-propagate the combined loss plus an unweighted `extra` regulariser; return the
        detached total that was optimised."""
        total = self.combine(losses)
        if extra is not None:
            total = total + extra
        total.backward()
        return total.detach()

    def task_weights(self) -> dict[str, float]:
        """Current effective weight of each task (for logging)."""
        return dict(self.weights)
