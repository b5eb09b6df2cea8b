"""Checkpoint directories (`runs/NAME/`, see docs/architecture.md): save, load, resume state.

Weights and optimizer state are safetensors, everything else JSON: nothing is pickled and
`torch.load` is never called. `load_checkpoint` rebuilds the network from the `model` section of
`config.json` and returns it in eval mode, fp32, on the CPU.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from mtqa.config import ModelConfig
from mtqa.evaluate.thresholds import ThresholdError, default_thresholds, load_thresholds
from mtqa.models import MultiTaskNet, build_model
from mtqa.models.base import load_exactly

MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
THRESHOLDS_FILE = "thresholds.json"
LAST_DIR = "last"
OPTIMIZER_FILE = "optimizer.safetensors"
WEIGHTING_FILE = "weighting.safetensors"
STATE_FILE = "state.json"
REQUIRED_KEYS = ("classes", "grades", "image_size", "mean", "std", "model")


class CheckpointError(ValueError):
    """A checkpoint directory that is missing, incomplete or inconsistent with its config."""


@dataclass
class Checkpoint:
    """A loaded run: the network (eval, fp32, CPU) and what is needed to feed and read it."""

    model: MultiTaskNet
    config: dict[str, Any]
    thresholds: dict[str, Any]
    classes: list[str]
    grades: list[str]
    image_size: int
    mean: list[float]
    std: list[float]
    run_dir: Path
    # how images become the square model input (mtqa.data.preprocess.fit_size); runs that
    # predate the choice were squashed
    resize: str = "squash"


def _state_tensors(module: nn.Module) -> dict[str, torch.Tensor]:
    """A module's state as contiguous fp32/int CPU tensors (safetensors needs contiguous)."""
    module = getattr(module, "module", module)  # unwrap DistributedDataParallel
    out = {}
    for key, value in module.state_dict().items():
        value = value.detach().cpu()
        out[key] = (value.float() if value.is_floating_point() else value).contiguous()
    return out


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _atomic_save_tensors(tensors: dict[str, torch.Tensor], path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp))
    os.replace(tmp, path)


def save_checkpoint(
    run_dir: str | Path,
    model: nn.Module,
    config: dict[str, Any],
    thresholds: dict[str, Any] | None = None,
) -> Path:
    """Write `model.safetensors` and `config.json` (and `thresholds.json` when given)."""
    missing = [k for k in REQUIRED_KEYS if k not in config]
    if missing:
        raise CheckpointError(f"checkpoint config lacks {missing}")
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    _atomic_save_tensors(_state_tensors(model), run_dir / MODEL_FILE)
    _atomic_write_text(run_dir / CONFIG_FILE, json.dumps(config, indent=2) + "\n")
    if thresholds is not None:
        _atomic_write_text(run_dir / THRESHOLDS_FILE, json.dumps(thresholds, indent=2) + "\n")
    return run_dir


def read_config(run_dir: str | Path) -> dict[str, Any]:
    """The run's `config.json`, checked for the keys every consumer relies on."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(f"{run_dir} is not a checkpoint directory: {path} is missing")
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path} is not valid JSON: {exc}") from exc
    missing = [k for k in REQUIRED_KEYS if k not in config]
    if missing:
        raise CheckpointError(f"{path} lacks {missing}")
    return config


def model_config_from(config: dict[str, Any]) -> ModelConfig:
    """The `ModelConfig` stored in a run config (unknown keys are an error, not ignored)."""
    known = {f.name for f in fields(ModelConfig)}
    extra = set(config["model"]) - known
    if extra:
        raise CheckpointError(f"model config has unknown keys {sorted(extra)}")
    return ModelConfig(**config["model"])


def load_weights(module: nn.Module, path: Path) -> None:
    """Load a safetensors file into a module strictly, with a readable error on mismatch."""
    if not path.is_file():
        raise CheckpointError(f"weights file {path} is missing")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"cannot read {path}: {exc}") from exc
    misfit = load_exactly(module, tensors)
    if misfit:
        raise CheckpointError(f"{path} does not match the configured network: {misfit}")


def load_checkpoint(run_dir: str | Path) -> Checkpoint:
    """Rebuild the best model of a run with its config and thresholds."""
    run_dir = Path(run_dir)
    config = read_config(run_dir)
    classes, grades = list(config["classes"]), list(config["grades"])
    model = build_model(model_config_from(config), len(classes), len(grades))
    load_weights(model, run_dir / MODEL_FILE)
    model.float().eval()
    thresholds = default_thresholds(classes)
    if (run_dir / THRESHOLDS_FILE).is_file():
        try:
            thresholds = load_thresholds(run_dir, classes)
        except ThresholdError as exc:
            raise CheckpointError(str(exc)) from exc
    return Checkpoint(
        model=model,
        config=config,
        thresholds=thresholds,
        classes=classes,
        grades=grades,
        image_size=int(config["image_size"]),
        mean=[float(v) for v in config["mean"]],
        std=[float(v) for v in config["std"]],
        run_dir=run_dir,
        resize=str(config.get("resize", "squash")),
    )


def _flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split `optimizer.state_dict()` into tensors (`state/<param>/<key>`) and JSON leftovers."""
    tensors, scalars = {}, {}
    for idx, per_param in state["state"].items():
        for key, value in per_param.items():
            if torch.is_tensor(value):
                tensors[f"state/{idx}/{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{idx}/{key}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        _, idx, key = name.split("/", 2)
        state.setdefault(int(idx), {})[key] = value
    for name, value in meta["scalars"].items():
        idx, key = name.split("/", 1)
        state.setdefault(int(idx), {})[key] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def save_training_state(
    run_dir: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    weighting: nn.Module,
    state: dict[str, Any],
) -> Path:
    """Write `last/`: model, optimizer (flattened), weighting parameters, `state.json`."""
    last = Path(run_dir) / LAST_DIR
    last.mkdir(parents=True, exist_ok=True)
    _atomic_save_tensors(_state_tensors(model), last / MODEL_FILE)
    opt_tensors, opt_meta = _flatten_optimizer(optimizer.state_dict())
    _atomic_save_tensors(opt_tensors, last / OPTIMIZER_FILE)
    _atomic_save_tensors(_state_tensors(weighting), last / WEIGHTING_FILE)
    _atomic_write_text(
        last / STATE_FILE, json.dumps({**state, "optimizer": opt_meta}, indent=2) + "\n"
    )
    return last


def load_training_state(
    run_dir: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    weighting: nn.Module,
) -> dict[str, Any]:
    """Restore `last/` into the given objects; return the saved `state.json` (epoch, best, ...)."""
    last = Path(run_dir) / LAST_DIR
    state_path = last / STATE_FILE
    if not state_path.is_file():
        raise CheckpointError(f"cannot resume: {state_path} is missing")
    state = json.loads(state_path.read_text())
    load_weights(getattr(model, "module", model), last / MODEL_FILE)
    load_weights(weighting, last / WEIGHTING_FILE)
    opt_state = _unflatten_optimizer(load_file(str(last / OPTIMIZER_FILE)), state.pop("optimizer"))
    try:
        optimizer.load_state_dict(opt_state)
    except (ValueError, KeyError) as exc:
        raise CheckpointError(f"optimizer state in {last} does not fit this run: {exc}") from exc
    return state
