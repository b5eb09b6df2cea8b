"""The task table: each task of the multi-task network declared once.

A `Task` says what the models, losses, evaluation and export need to know about one task: its
config name, the network output it produces (also the ONNX output and the `mtqa_net` output in
Triton), the shape of that output and so the kind of head that makes it, the batch key holding
its label, its headline metric and the outputs the served ensemble derives from it. Models,
losses and evaluation iterate over `TASKS`; other packages import the names from here instead
of spelling them out.

The table is plain data with no torch import, so light code (export checks, benchmarks, tools)
can read it; each consumer maps a task to its implementation (`mtqa.models.base.build_head`,
`mtqa.losses.MultiTaskLoss`), and tests/test_tasks.py checks that every task has one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Task:
    """One task of the network, as every component sees it."""

    name: str  # key in `model.tasks`, in the loss dict and in the weighting
    output: str  # network output key = ONNX output name = `mtqa_net` output in Triton
    per_pixel: bool  # logits [N, C, H, W] from the decoder; else [N, C] from pooled features
    counts: str  # what the C logits stand for: "classes" (one per defect class) or "grades"
    label: str  # batch key of its training target
    metric: str  # headline metric key (`mtqa.evaluate.metrics`) of the task
    served: tuple[str, ...]  # ensemble outputs `mtqa_postprocess` derives from `output`

    def channels(self, num_classes: int, num_grades: int) -> int:
        """C, the number of logits per image (per pixel when `per_pixel`)."""
        return num_classes if self.counts == "classes" else num_grades

    def shape(self, n: int, num_classes: int, num_grades: int, size: Sequence[int]) -> tuple:
        """The shape of the task's logits for a batch of `n` images of spatial `size` (H, W)."""
        c = self.channels(num_classes, num_grades)
        return (n, c, *size) if self.per_pixel else (n, c)


PRESENCE = Task(
    name="presence",
    output="presence_logits",
    per_pixel=False,
    counts="classes",
    label="presence",
    metric="presence_macro_f1",
    served=("presence_prob", "presence_decision"),
)
SEGMENTATION = Task(
    name="segmentation",
    output="seg_logits",
    per_pixel=True,
    counts="classes",
    label="mask",
    metric="defect_iou",
    served=("masks_packed", "regions"),
)
GRADE = Task(
    name="grade",
    output="grade_logits",
    per_pixel=False,
    counts="grades",
    label="grade",
    metric="grade_accuracy",
    served=("grade_prob", "grade_index"),
)

# Table order is the order of the network's (and the ONNX graph's) outputs: do not reorder.
TASKS: tuple[Task, ...] = (PRESENCE, SEGMENTATION, GRADE)
TASK_NAMES: tuple[str, ...] = tuple(t.name for t in TASKS)
OUTPUT_KEYS: tuple[str, ...] = tuple(t.output for t in TASKS)
BY_NAME: dict[str, Task] = {t.name: t for t in TASKS}


def selected(names: Iterable[str]) -> tuple[Task, ...]:
    """The tasks named (e.g. `model.tasks`), in table order; unknown names raise KeyError."""
    wanted = set(names)
    unknown = wanted - set(BY_NAME)
    if unknown:
        raise KeyError(f"unknown tasks {sorted(unknown)}; known: {list(TASK_NAMES)}")
    return tuple(t for t in TASKS if t.name in wanted)
