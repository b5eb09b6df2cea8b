"""Checkpoint API: save/load round trip, training-state round trip, readable errors, no pickle."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from mtqa.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_training_state,
    save_checkpoint,
    save_training_state,
)
from mtqa.config import ModelConfig, WeightingConfig
from mtqa.models import build_model
from mtqa.train.optim import build_optimizer
from mtqa.weighting import build_weighting

CLASSES = ["scratch", "crack", "stain"]
GRADES = ["ok", "minor", "major", "reject"]


def small_model(arch: str = "hard") -> tuple[torch.nn.Module, dict]:
    cfg = ModelConfig(arch=arch, widths=[8, 16], blocks=[1, 1], decoder_width=8, head_hidden=8)
    torch.manual_seed(1)
    model = build_model(cfg, len(CLASSES), len(GRADES))
    model.train()
    with torch.no_grad():  # non-trivial BN running statistics
        model(torch.randn(4, 3, 32, 32) * 2 + 1)
    config = {
        "classes": CLASSES,
        "grades": GRADES,
        "grade_rule": None,
        "image_size": 32,
        "mean": [0.5, 0.5, 0.5],
        "std": [0.25, 0.25, 0.25],
        "model": cfg.__dict__,
    }
    return model.eval(), config


@pytest.mark.parametrize("arch", ["hard", "soft"])
def test_round_trip_gives_identical_outputs(tmp_path: Path, arch: str) -> None:
    model, config = small_model(arch)
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        a = model(x)
    save_checkpoint(tmp_path, model.to(memory_format=torch.channels_last), config)
    ckpt = load_checkpoint(tmp_path)
    assert not ckpt.model.training
    assert all(p.dtype == torch.float32 and p.device.type == "cpu" for p in ckpt.model.parameters())
    assert ckpt.classes == CLASSES and ckpt.grades == GRADES and ckpt.image_size == 32
    assert ckpt.thresholds["presence"] == dict.fromkeys(CLASSES, 0.5)
    with torch.no_grad():
        b = ckpt.model(x)
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_training_state_round_trip(tmp_path: Path) -> None:
    model, _ = small_model()
    weighting = build_weighting(WeightingConfig(name="uncertainty"), ["presence", "grade"])
    opt = build_optimizer(model, weighting, 1e-2, 1e-4)
    out = model(torch.randn(2, 3, 32, 32))
    (
        out["presence_logits"].sum() + out["grade_logits"].sum() + sum(weighting.log_vars.values())
    ).backward()
    opt.step()
    save_training_state(tmp_path, model, opt, weighting, {"epoch": 3, "best_score": 0.5})

    model2, _ = small_model()
    weighting2 = build_weighting(WeightingConfig(name="uncertainty"), ["presence", "grade"])
    opt2 = build_optimizer(model2, weighting2, 1e-2, 1e-4)
    state = load_training_state(tmp_path, model2, opt2, weighting2)
    assert state == {"epoch": 3, "best_score": 0.5}
    for p, q in zip(model.parameters(), model2.parameters(), strict=True):
        assert torch.equal(p, q)
    params = [p for g in opt.param_groups for p in g["params"]]
    params2 = [p for g in opt2.param_groups for p in g["params"]]
    assert len(opt.state) == len(opt2.state) > 0
    for p, p2 in zip(params, params2, strict=True):
        if p in opt.state:
            s, s2 = opt.state[p], opt2.state[p2]
            assert torch.equal(s["exp_avg"], s2["exp_avg"]) and float(s["step"]) == float(
                s2["step"]
            )
    assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
    assert weighting2.task_weights() == weighting.task_weights()


def test_files_are_safetensors_and_json_only(tmp_path: Path) -> None:
    model, config = small_model()
    save_checkpoint(tmp_path, model, config, thresholds={"presence": {}, "segmentation": {}})
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["config.json", "model.safetensors", "thresholds.json"]
    with safe_open(str(tmp_path / "model.safetensors"), "pt") as fh:
        assert len(list(fh.keys())) == len(model.state_dict())
    assert json.loads((tmp_path / "config.json").read_text())["classes"] == CLASSES


def test_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not a checkpoint directory"):
        load_checkpoint(tmp_path / "nothing")


def test_weights_of_another_network_are_rejected(tmp_path: Path) -> None:
    model, config = small_model()
    save_checkpoint(tmp_path, model, config)
    config["model"]["arch"] = "soft"
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="does not match"):
        load_checkpoint(tmp_path)


def test_corrupt_weights_are_a_clear_error(tmp_path: Path) -> None:
    model, config = small_model()
    save_checkpoint(tmp_path, model, config)
    (tmp_path / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_checkpoint(tmp_path)


def test_config_without_contract_keys_is_rejected(tmp_path: Path) -> None:
    model, config = small_model()
    del config["mean"]
    with pytest.raises(CheckpointError, match="mean"):
        save_checkpoint(tmp_path, model, config)


def test_resume_without_state_is_a_clear_error(tmp_path: Path) -> None:
    model, _ = small_model()
    weighting = build_weighting(WeightingConfig(), ["presence"])
    opt = build_optimizer(model, weighting, 1e-3, 0.0)
    with pytest.raises(CheckpointError, match="cannot resume"):
        load_training_state(tmp_path, model, opt, weighting)
