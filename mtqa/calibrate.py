"""Datasets matched to a checkpoint, and `calibrate_run`: thresholds chosen on a run's val split.

A checkpoint is always fed the way it was trained: its own classes, image size, grade rule and
normalisation mean/std (from `config.json`), whatever source the images come from. By default
the source, seed and synthetic sizes are the run's own, so `split="val"` is the validation split
the run was selected on (whole: a `data.limit` the run trained under is not inherited).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mtqa.checkpoint import load_checkpoint
from mtqa.data import DatasetError, build_datasets
from mtqa.evaluate.evaluation import EvaluationResult, run_evaluation, torch_predict_fn
from mtqa.evaluate.thresholds import RULES, ThresholdError, save_thresholds, select_thresholds
from mtqa.progress import NO_PROGRESS, Progress, stage

SPLITS = ("train", "val", "test")


def run_source(config: dict[str, Any]) -> str:
    """The data source a run was trained on (``config.json`` -> ``data.source``)."""
    source = config.get("data", {}).get("source")
    if not source:
        raise ThresholdError("the run's config.json names no data source; pass one explicitly")
    return str(source)


def checkpoint_split(
    checkpoint: Any,
    split: str,
    source: str | None = None,
    limit: int | None = None,
    synth_size: int = 0,
) -> tuple[Any, str]:
    """(dataset, source) of ``split`` prepared for ``checkpoint`` (a loaded ``Checkpoint``).

    ``source`` defaults to the run's own; ``limit`` caps the split (None: the whole split, not
    the cap the run may have trained under: a score on part of a split must be asked for). The
    dataset's normalisation is set to the checkpoint's, since statistics measured on another
    source would feed the network inputs it was never trained on. A synthetic split is a
    stream, so it can be read further than the run did: at least ``synth_size`` images (the
    run's own first, then the ones after them).
    """
    if split not in SPLITS:
        raise DatasetError(f"split must be one of {', '.join(SPLITS)}; got {split!r}")
    config = checkpoint.config
    data_cfg = config.get("data", {})
    source = source or run_source(config)
    sizes = list(data_cfg.get("synth_sizes", (2048, 256, 256)))
    if source == "synth":
        index = SPLITS.index(split)
        sizes[index] = max(int(sizes[index]), synth_size)
    bundle = build_datasets(
        source,
        checkpoint.image_size,
        seed=int(config.get("train", {}).get("seed", 0)),
        augment=False,
        synth_sizes=tuple(sizes),
        classes=list(checkpoint.classes),
        grade_rule=config.get("grade_rule"),
        resize=checkpoint.resize,
        limit=limit,
    )
    dataset = getattr(bundle, split)
    if dataset is None:
        raise DatasetError(f"data source {source!r} has no {split!r} split")
    if list(bundle.classes) != list(checkpoint.classes):
        raise DatasetError(
            f"data source {source!r} yields classes {bundle.classes}, "
            f"the checkpoint expects {checkpoint.classes}"
        )
    dataset.mean, dataset.std = tuple(checkpoint.mean), tuple(checkpoint.std)
    return dataset, source


def score_split(
    checkpoint,
    split: str,
    source: str | None,
    limit: int | None,
    batch_size: int,
    progress: Progress,
    *,
    label: str,
    thresholds: dict[str, Any] | None = None,
    keep_samples: int = 0,
    detail: str = "",
) -> tuple[EvaluationResult, str]:
    """Run the checkpoint's model over `split` of its data source (or `source`) as one progress
    stage named `label`: (the evaluation result, the source used)."""
    dataset, used = checkpoint_split(checkpoint, split, source, limit)
    with stage(progress, label, total=len(dataset)) as scoring:
        result = run_evaluation(
            torch_predict_fn(checkpoint.model),
            dataset,
            checkpoint.classes,
            checkpoint.grades,
            thresholds,
            batch_size=batch_size,
            keep_samples=keep_samples,
            progress=progress,
        )
        scoring.detail = f"{len(dataset)} images{detail}"
    return result, used


def calibrate_run(
    run_dir: str | Path,
    source: str | None = None,
    split: str = "val",
    rule: str = "max_f1",
    target_recall: float = 0.95,
    batch_size: int = 32,
    limit: int | None = None,
    progress: Progress = NO_PROGRESS,
) -> dict[str, Any]:
    """Choose presence and segmentation thresholds on ``split`` of the run's data source (or
    ``source``), write them to ``run_dir/thresholds.json`` and return what was written.
    ``progress`` gets one stage, "calibrate on SPLIT", over its images."""
    if rule not in RULES:
        raise ThresholdError(f"unknown threshold rule {rule!r}; choose one of {', '.join(RULES)}")
    checkpoint = load_checkpoint(run_dir)
    result, used = score_split(
        checkpoint,
        split,
        source,
        limit,
        batch_size,
        progress,
        label=f"calibrate on {split}",
        detail=f", rule {rule}",
    )
    presence = select_thresholds(
        result.presence_probs, result.presence_targets, checkpoint.classes, rule, target_recall
    )
    segmentation = result.pixel_histogram.select(checkpoint.classes, rule, target_recall)
    extra: dict[str, Any] = {"source": used, "n_images": int(result.metrics["n_images"])}
    if rule == "target_recall":
        extra["target_recall"] = target_recall
    save_thresholds(run_dir, presence, segmentation, selected_on=split, rule=rule, **extra)
    return {
        "presence": presence,
        "segmentation": segmentation,
        "selected_on": split,
        "rule": rule,
        "notes": {"presence": presence.notes, "segmentation": segmentation.notes},
        **extra,
    }
