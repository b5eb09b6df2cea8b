"""PCGrad: gradient surgery for multi-task learning (Yu et al., NeurIPS 2020)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from mtqa.weighting.base import Weighting


def project_conflicting(grads: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """PCGrad on flattened per-task gradients `[T, P]`: for each task, in random order, remove
    the component along every other task's gradient it conflicts with (negative dot product).
    Returns the sum of the projected gradients `[P]`."""
    projected = grads.clone()
    for i in range(grads.shape[0]):
        for j in torch.randperm(grads.shape[0], generator=generator).tolist():
            if j == i:
                continue
            dot = torch.dot(projected[i], grads[j])
            if dot < 0:
                projected[i] -= dot / grads[j].pow(2).sum().clamp_min(1e-20) * grads[j]
    return projected.sum(0)


class PCGradWeighting(Weighting):
    """Weighted task losses; on the shared parameters, conflicting task gradients are projected
    onto each other's normal plane before summing. Task-specific parameters get the plain sum.

    Cost: one extra backward pass per task (gradients w.r.t. the shared parameters). Under data
    parallelism each rank projects its local gradients and the correction is averaged over ranks.
    """

    def __init__(
        self, tasks: Sequence[str], weights: dict[str, float] | None = None, seed: int = 0
    ) -> None:
        super().__init__(tasks, weights)
        self.generator = torch.Generator().manual_seed(seed)

    def combine(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        return sum(self.weights[t] * loss for t, loss in losses.items())

    def backward(
        self,
        losses: dict[str, torch.Tensor],
        shared_params: Sequence[nn.Parameter],
        extra: torch.Tensor | None = None,
    ) -> torch.Tensor:
        shared = [p for p in shared_params if p.requires_grad]
        if len(losses) < 2 or not shared:
            return super().backward(losses, shared_params, extra)
        per_task = []
        for t, loss in losses.items():
            grads = torch.autograd.grad(
                self.weights[t] * loss, shared, retain_graph=True, allow_unused=True
            )
            per_task.append(
                torch.cat(
                    [
                        (torch.zeros_like(p) if g is None else g).reshape(-1)
                        for g, p in zip(grads, shared, strict=True)
                    ]
                )
            )
        stacked = torch.stack(per_task)
        # The plain backward below adds sum_t g_t to the shared parameters; this delta turns that
        # sum into the projected sum while keeping the extra term's gradient.
        delta = self.reduce(project_conflicting(stacked, self.generator) - stacked.sum(0))
        total = super().backward(losses, shared_params, extra)
        offset = 0
        for p in shared:
            n = p.numel()
            p.grad.add_(delta[offset : offset + n].view_as(p))
            offset += n
        return total
