"""Homoscedastic-uncertainty weighting (Kendall, Gal and Cipolla, CVPR 2018)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from mtqa.weighting.base import Weighting


class UncertaintyWeighting(Weighting):
    """`sum_t exp(-s_t) * L_t + s_t` with learned `s_t = log sigma_t^2` (initialised at 0).

    This is twice Kendall et al.'s `L/(2 sigma^2) + log sigma` (same minimiser, `exp(s_t) = L_t`),
    so every task starts at weight 1 like the fixed strategy. Config weights are not used.
    """

    def __init__(self, tasks: Sequence[str], weights: dict[str, float] | None = None) -> None:
        super().__init__(tasks, weights)
        self.log_vars = nn.ParameterDict({t: nn.Parameter(torch.zeros(())) for t in self.tasks})

    def combine(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        return sum(
            torch.exp(-self.log_vars[t]) * loss + self.log_vars[t] for t, loss in losses.items()
        )

    def task_weights(self) -> dict[str, float]:
        return {t: float(torch.exp(-s.detach())) for t, s in self.log_vars.items()}
