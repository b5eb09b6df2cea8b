"""Loss weightings: each one lowers the task losses on a tiny problem; PCGrad's projection."""

from __future__ import annotations

import pytest
import torch

from mtqa.config import ConfigError, LossConfig, ModelConfig, WeightingConfig
from mtqa.losses import MultiTaskLoss
from mtqa.models import build_model
from mtqa.train.optim import build_optimizer, decay_split
from mtqa.weighting import STRATEGIES, build_weighting
from mtqa.weighting.pcgrad import project_conflicting

TASKS = ("presence", "segmentation", "grade")


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: tiny tensors gain nothing from two, and on a busy machine OpenMP
    threads waiting on each other make them many times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_problem() -> tuple[torch.nn.Module, dict]:
    torch.manual_seed(0)
    cfg = ModelConfig(widths=[8, 16], blocks=[1, 0], decoder_width=8, head_hidden=16)
    model = build_model(cfg, 2, 4)
    n, s = 8, 32
    mask = torch.zeros(n, 2, s, s)
    mask[: n // 2, 0, 8:16, 8:24] = 1
    mask[n // 4 : 3 * n // 4, 1, 20:28, 4:12] = 1
    x = torch.randn(n, 3, s, s) * 0.1 + mask.sum(1, keepdim=True)
    data = {
        "image": x,
        "mask": mask,
        "has_mask": torch.ones(n, dtype=torch.bool),
        "presence": mask.amax((2, 3)),
        "grade": mask.sum((1, 2, 3)).gt(0).long() + mask[:, 1].amax((1, 2)).long(),
    }
    return model, data


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_strategy_lowers_task_losses(name: str) -> None:
    model, data = tiny_problem()
    weighting = build_weighting(WeightingConfig(name=name), TASKS)
    criterion = MultiTaskLoss(LossConfig(), TASKS)
    optimizer = build_optimizer(model, weighting, lr=3e-3, weight_decay=1e-4)

    def task_sum() -> float:
        # Batch statistics (train mode): 25 steps are too few for BN running averages to settle.
        with torch.no_grad():
            return float(sum(criterion(model(data["image"]), data).values()))

    model.train()
    start = task_sum()
    for _ in range(25):
        optimizer.zero_grad(set_to_none=True)
        losses = criterion(model(data["image"]), data)
        total = weighting.backward(losses, model.shared_parameters())
        assert torch.isfinite(total)
        optimizer.step()
    assert task_sum() < 0.8 * start


def test_uncertainty_parameters_are_learned_without_decay() -> None:
    model, data = tiny_problem()
    weighting = build_weighting(WeightingConfig(name="uncertainty"), TASKS)
    optimizer = build_optimizer(model, weighting, lr=1e-2, weight_decay=0.1)
    groups = {id(p): g["weight_decay"] for g in optimizer.param_groups for p in g["params"]}
    assert all(groups[id(p)] == 0.0 for p in weighting.parameters())
    losses = MultiTaskLoss(LossConfig(), TASKS)(model(data["image"]), data)
    weighting.backward(losses, model.shared_parameters())
    optimizer.step()
    assert weighting.task_weights() != dict.fromkeys(TASKS, 1.0)


def test_decay_only_on_conv_and_linear_weights() -> None:
    model, _ = tiny_problem()
    decay, no_decay = decay_split(model)
    assert all(p.ndim > 1 for p in decay)
    assert all(p.ndim == 1 for p in no_decay)  # BN weights/biases, linear/conv biases
    assert len(decay) + len(no_decay) == len(list(model.parameters()))


def test_pcgrad_projection_removes_conflict() -> None:
    g = torch.tensor([[1.0, 0.0], [-1.0, 1.0]])
    total = project_conflicting(g, torch.Generator().manual_seed(0))
    # Each projected gradient is orthogonal to the other task's original: no conflict left.
    assert torch.dot(total, g[0]) > 0 and torch.dot(total, g[1]) > 0
    agree = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    assert torch.allclose(project_conflicting(agree, torch.Generator()), agree.sum(0))


def test_unknown_strategy() -> None:
    with pytest.raises(ConfigError, match="unknown weighting"):
        build_weighting(WeightingConfig(name="magic"), TASKS)
