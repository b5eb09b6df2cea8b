"""The task table drives the models, the loss and the evaluation; the names it holds are frozen."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from mtqa import config
from mtqa.config import LossConfig, ModelConfig
from mtqa.evaluate.evaluation import EvaluationError, Evaluator
from mtqa.losses import MultiTaskLoss
from mtqa.models import OUTPUT_KEYS as MODEL_OUTPUT_KEYS
from mtqa.models import build_model
from mtqa.tasks import GRADE, OUTPUT_KEYS, PRESENCE, SEGMENTATION, TASK_NAMES, TASKS, selected
from mtqa.train.validation import selection_score

K, G, S = 3, 4, 32
SMALL = {"widths": [8, 16], "blocks": [1, 1], "decoder_width": 8, "head_hidden": 16}
SUBSETS = [list(names) for r in (1, 2, 3) for names in itertools.combinations(TASK_NAMES, r)]


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: small tensors gain nothing from two (see test_weighting)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_names_are_the_frozen_contract() -> None:
    # Checkpoints (state-dict keys `heads.<name>`), thresholds.json, ONNX graphs and Triton
    # configs all carry these strings: changing one breaks every built artefact.
    assert TASK_NAMES == ("presence", "segmentation", "grade")
    assert OUTPUT_KEYS == ("presence_logits", "seg_logits", "grade_logits")
    assert TASKS == (PRESENCE, SEGMENTATION, GRADE)
    assert MODEL_OUTPUT_KEYS == OUTPUT_KEYS and config.TASKS == TASK_NAMES
    served = [name for t in TASKS for name in t.served]
    assert len(served) == len(set(served))


def test_selected_keeps_table_order_and_rejects_unknown_names() -> None:
    assert selected(["grade", "presence"]) == (PRESENCE, GRADE)
    with pytest.raises(KeyError, match="count"):
        selected(["presence", "count"])


@pytest.mark.parametrize("arch", ["hard", "soft"])
@pytest.mark.parametrize("names", SUBSETS, ids="+".join)
def test_model_has_a_head_and_a_live_output_per_declared_task(arch: str, names: list) -> None:
    model = build_model(ModelConfig(arch=arch, tasks=names, **SMALL), K, G).eval()
    assert set(model.heads) == set(names)
    state = model.state_dict()
    assert {key.split(".")[1] for key in state if key.startswith("heads.")} == set(names)
    has_pixel_task = any(t.per_pixel for t in selected(names))
    assert any(key.startswith("decoder.") for key in state) == has_pixel_task

    out = model(torch.randn(2, 3, S, S))
    assert tuple(out) == OUTPUT_KEYS
    for task in TASKS:
        assert out[task.output].shape == task.shape(2, K, G, (S, S))
        # undeclared tasks still have their output, as constant zero logits
        assert bool(out[task.output].abs().sum() > 0) == (task.name in names)


@pytest.mark.parametrize("names", SUBSETS, ids="+".join)
def test_loss_has_exactly_the_declared_tasks(names: list) -> None:
    model = build_model(ModelConfig(tasks=names, **SMALL), K, G)
    batch = {
        "presence": torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]]),
        "mask": torch.zeros(2, K, S, S),
        "has_mask": torch.tensor([True, True]),
        "grade": torch.tensor([1, 0]),
    }
    losses = MultiTaskLoss(LossConfig(peak_weight=0.5), names)(
        model(torch.randn(2, 3, S, S)), batch
    )
    assert list(losses) == [t.name for t in selected(names)]
    total = sum(losses.values())
    total.backward()
    for name in names:
        assert any(p.grad is not None for p in model.heads[name].parameters())


def test_every_task_has_a_loss_term() -> None:
    assert set(MultiTaskLoss(LossConfig(), TASK_NAMES).terms()) == set(TASK_NAMES)


def test_selection_score_reads_the_headline_metrics() -> None:
    metrics = {PRESENCE.metric: 0.8, SEGMENTATION.metric: 0.4, GRADE.metric: 0.1}
    assert selection_score(metrics, TASK_NAMES) == pytest.approx(0.6)
    assert selection_score(metrics, ["grade", "segmentation"]) == pytest.approx(0.4)
    assert selection_score(metrics, ["grade"]) == pytest.approx(0.1)
    no_masks = {**metrics, SEGMENTATION.metric: float("nan")}  # image-level labels only
    assert selection_score(no_masks, TASK_NAMES) == pytest.approx(0.8)
    assert selection_score({}, TASK_NAMES) == 0.0


def test_evaluator_checks_each_table_output() -> None:
    batch = {
        "image": np.zeros((2, 3, S, S), np.float32),
        "mask": np.zeros((2, K, S, S), np.float32),
        "has_mask": np.array([True, False]),
        "presence": np.zeros((2, K), np.float32),
        "grade": np.array([0, 1]),
        "id": ["a", "b"],
    }
    outputs = {t.output: np.zeros(t.shape(2, K, G, (S, S)), np.float32) for t in TASKS}
    evaluator = Evaluator(["a", "b", "c"], ["g0", "g1", "g2", "g3"])
    evaluator.update(outputs, batch)
    assert evaluator.result().metrics["n_images"] == 2
    for task in TASKS:
        with pytest.raises(EvaluationError, match=task.output):
            evaluator.update({k: v for k, v in outputs.items() if k != task.output}, batch)
