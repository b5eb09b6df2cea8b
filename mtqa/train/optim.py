"""AdamW with decoupled weight decay on conv/linear weights only.

Norm parameters, biases, cross-stitch mixing matrices and loss-weighting parameters are excluded
from decay: shrinking them toward zero is not regularisation, it changes what they mean.
"""

from __future__ import annotations

import torch
from torch import nn


def decay_split(module: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(decay, no_decay) parameter lists: only weights of Conv and Linear layers decay."""
    decay, no_decay = [], []
    for sub in module.modules():
        for name, param in sub.named_parameters(recurse=False):
            if not param.requires_grad:
                continue
            is_weight = name == "weight" and isinstance(sub, nn.Conv2d | nn.Linear)
            (decay if is_weight else no_decay).append(param)
    return decay, no_decay


def build_optimizer(
    model: nn.Module, weighting: nn.Module, lr: float, weight_decay: float
) -> torch.optim.AdamW:
    """AdamW over the model (two groups) and the weighting's parameters (no decay)."""
    decay, no_decay = decay_split(model)
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
        {"params": list(weighting.parameters()), "weight_decay": 0.0},
    ]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=lr, fused=True)
