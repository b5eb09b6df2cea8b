"""Losses: masking by has_mask, imbalance weights, focal and ordinal variants."""

from __future__ import annotations

import torch

from mtqa.config import LossConfig
from mtqa.losses import MultiTaskLoss, focal_loss, ordinal_targets, pos_weight_from_rates

TASKS = ("presence", "segmentation", "grade")


def batch(n: int = 4, k: int = 3, s: int = 8) -> tuple[dict, dict]:
    g = torch.Generator().manual_seed(0)
    outputs = {
        "presence_logits": torch.randn(n, k, generator=g, requires_grad=True),
        "seg_logits": torch.randn(n, k, s, s, generator=g, requires_grad=True),
        "grade_logits": torch.randn(n, 4, generator=g, requires_grad=True),
    }
    targets = {
        "presence": (torch.rand(n, k, generator=g) > 0.5).float(),
        "mask": (torch.rand(n, k, s, s, generator=g) > 0.8).float(),
        "has_mask": torch.tensor([True, False] * (n // 2)),
        "grade": torch.randint(0, 4, (n,), generator=g),
    }
    return outputs, targets


def test_returns_one_finite_loss_per_active_task() -> None:
    outputs, targets = batch()
    losses = MultiTaskLoss(LossConfig(), TASKS)(outputs, targets)
    assert set(losses) == set(TASKS)
    assert all(torch.isfinite(v) and v.ndim == 0 for v in losses.values())
    only = MultiTaskLoss(LossConfig(), ["grade"])(outputs, targets)
    assert set(only) == {"grade"}


def test_segmentation_ignores_images_without_mask() -> None:
    outputs, targets = batch()
    loss = MultiTaskLoss(LossConfig(), TASKS)
    before = loss(outputs, targets)["segmentation"]
    changed = dict(outputs)
    seg = outputs["seg_logits"].detach().clone()
    seg[1] += 5.0  # image 1 has no mask
    changed["seg_logits"] = seg
    assert torch.allclose(loss(changed, targets)["segmentation"], before)
    seg[0] += 5.0  # image 0 has one
    assert not torch.allclose(loss(changed, targets)["segmentation"], before)


def test_segmentation_is_zero_but_differentiable_without_any_mask() -> None:
    outputs, targets = batch()
    targets["has_mask"] = torch.zeros(4, dtype=torch.bool)
    seg = MultiTaskLoss(LossConfig(), TASKS)(outputs, targets)["segmentation"]
    assert seg.item() == 0.0
    seg.backward()
    assert outputs["seg_logits"].grad is not None


def test_peak_term_reads_each_class_peak_pixel_and_needs_no_mask() -> None:
    outputs, targets = batch()
    plain = MultiTaskLoss(LossConfig(), TASKS)(outputs, targets)["segmentation"]
    peak = MultiTaskLoss(LossConfig(peak_weight=0.5), TASKS)(outputs, targets)["segmentation"]
    top = outputs["seg_logits"].flatten(2).amax(2)
    expected = torch.nn.functional.binary_cross_entropy_with_logits(top, targets["presence"])
    assert torch.allclose(peak, plain + 0.5 * expected)
    # Images without masks still train the masks through their presence labels...
    targets["has_mask"] = torch.zeros(4, dtype=torch.bool)
    seg = MultiTaskLoss(LossConfig(peak_weight=1.0), TASKS)(outputs, targets)["segmentation"]
    seg.backward()
    grad = outputs["seg_logits"].grad.flatten(2)
    # ...and only at each class's peak pixel.
    assert ((grad != 0).sum(2) == 1).all()
    assert torch.equal(grad.abs().argmax(2), outputs["seg_logits"].flatten(2).argmax(2))


def test_pos_weight_from_rates_and_its_effect() -> None:
    w = pos_weight_from_rates([0.5, 0.1, 0.0], max_weight=20.0)
    assert torch.allclose(w, torch.tensor([1.0, 9.0, 20.0]))
    outputs, targets = batch()
    targets["presence"] = torch.ones_like(targets["presence"])
    plain = MultiTaskLoss(LossConfig(pos_weight=False), TASKS, w, None)(outputs, targets)
    weighted = MultiTaskLoss(LossConfig(), TASKS, w, None)(outputs, targets)
    assert weighted["presence"] > plain["presence"]  # missed positives cost more


def test_focal_down_weights_easy_examples() -> None:
    logits = torch.tensor([[4.0, -4.0, 0.0]])
    target = torch.tensor([[1.0, 0.0, 1.0]])
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, target)
    assert focal_loss(logits, target, gamma=2.0) < bce
    outputs, targets = batch()
    assert MultiTaskLoss(LossConfig(presence="focal"), TASKS)(outputs, targets)["presence"] > 0


def test_ordinal_targets_peak_at_the_true_grade() -> None:
    t = ordinal_targets(torch.tensor([0, 2]), 4)
    assert torch.allclose(t.sum(1), torch.ones(2))
    assert t.argmax(1).tolist() == [0, 2]
    assert t[1, 1] > t[1, 0]  # nearer grades get more mass
    outputs, targets = batch()
    assert MultiTaskLoss(LossConfig(grade="ordinal"), TASKS)(outputs, targets)["grade"] > 0
