"""Fixed weighting: a weighted sum with weights from the config."""

from __future__ import annotations

import torch

from mtqa.weighting.base import Weighting


class FixedWeighting(Weighting):
    """`sum_t w_t * L_t` with `w_t` from `weighting.weights` (1.0 for a task not listed)."""

    def combine(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        return sum(self.weights[t] * loss for t, loss in losses.items())
