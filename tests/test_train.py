"""Training: a real short run beats chance on fresh images, run files, resume, CLI errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from mtqa.checkpoint import load_checkpoint
from mtqa.config import apply_overrides, named_config
from mtqa.data import build_datasets
from mtqa.evaluate.metrics import SegmentationMeter, presence_metrics
from mtqa.evaluate.thresholds import threshold_arrays
from mtqa.train import train
from mtqa_cli.main import main

FAST = [
    "model.widths=[8,16,16]",
    "model.blocks=[1,0,0]",
    "model.decoder_width=8",
    "model.refine_width=8",
    "train.batch_size=8",
    "train.num_workers=0",
    "train.threads=1",
    "data.image_size=64",
    "data.synth_sizes=[32,16,16]",
]


def strict_json(text: str) -> dict:
    """Parse JSON as strict parsers do: NaN and Infinity are errors."""

    def reject(token: str) -> None:
        raise ValueError(f"not JSON: {token}")

    return json.loads(text, parse_constant=reject)


def rows(run: Path) -> list[dict[str, str]]:
    with (run / "metrics.csv").open() as fh:
        return list(csv.DictReader(fh))


def test_tiny_run_beats_chance_on_fresh_images(tiny_run: Path) -> None:
    """Presence macro-F1 and defect IoU on synthetic images from an unseen seed must beat the
    best constant predictor (everything positive) measured on those same images."""
    ckpt = load_checkpoint(tiny_run)
    fresh = build_datasets(
        "synth", ckpt.image_size, seed=2024, augment=False, synth_sizes=(1, 1, 96)
    ).test
    # A new bundle measures its own statistics: normalise as the checkpoint was trained.
    fresh.mean, fresh.std = tuple(ckpt.mean), tuple(ckpt.std)
    loader = torch.utils.data.DataLoader(fresh, batch_size=32)
    presence_thr, seg_thr = threshold_arrays(ckpt.thresholds, ckpt.classes)
    meter = SegmentationMeter(ckpt.classes, seg_thr)
    probs, targets, pixel_pos, pixels = [], [], np.zeros(len(ckpt.classes)), 0
    with torch.no_grad():
        for batch in loader:
            out = ckpt.model(batch["image"])
            probs.append(torch.sigmoid(out["presence_logits"]).numpy())
            targets.append(batch["presence"].numpy())
            masks = batch["mask"].numpy()
            meter.update(torch.sigmoid(out["seg_logits"]).numpy(), masks)
            pixel_pos += masks.sum(axis=(0, 2, 3))
            pixels += masks.shape[0] * masks.shape[2] * masks.shape[3]
    t = np.concatenate(targets)
    f1 = presence_metrics(np.concatenate(probs), t, ckpt.classes, presence_thr)["presence_macro_f1"]
    iou = meter.result()["defect_iou"]
    prevalence = t.mean(axis=0)
    chance_f1 = float(np.mean(2 * prevalence / (1 + prevalence)))
    chance_iou = float(np.mean(pixel_pos / pixels))
    print(f"fresh images: F1 {f1:.3f} (chance {chance_f1:.3f}), IoU {iou:.3f} ({chance_iou:.3f})")
    assert f1 > chance_f1 + 0.05
    assert iou > chance_iou + 0.05


def test_run_directory_contents(tiny_run: Path) -> None:
    config = json.loads((tiny_run / "config.json").read_text())
    for key in ("classes", "grades", "grade_rule", "image_size", "mean", "std", "model", "train"):
        assert key in config
    assert config["data"]["source"] == "synth"
    thresholds = json.loads((tiny_run / "thresholds.json").read_text())
    assert thresholds["selected_on"] == "val" and set(thresholds["presence"]) == set(
        config["classes"]
    )
    history = rows(tiny_run)
    assert [int(r["epoch"]) for r in history] == list(range(len(history)))
    assert sum(int(r["best"]) for r in history) >= 1
    assert {"loss_total", "val_presence_macro_f1", "val_defect_iou", "score"} <= set(history[0])
    assert (tiny_run / "last" / "state.json").is_file()


def test_resume_continues_from_saved_epoch(tmp_path: Path) -> None:
    cfg = apply_overrides(
        named_config("tiny"), [*FAST, "train.epochs=1", "weighting.name=uncertainty"]
    )
    first = train(cfg, "synth", tmp_path, progress=False, device="cpu")
    assert first.epochs_run == 1
    steps = 32 // 8
    apply_overrides(cfg, ["train.epochs=2"])
    second = train(cfg, "synth", tmp_path, resume=True, progress=False, device="cpu")
    assert second.epochs_run == 1  # only the missing epoch
    assert [int(r["epoch"]) for r in rows(tmp_path)] == [0, 1]
    assert json.loads((tmp_path / "last" / "state.json").read_text())["epoch"] == 1
    with safe_open(str(tmp_path / "last" / "optimizer.safetensors"), "pt") as fh:
        # AdamW's step count carried over: two epochs of steps, not one.
        assert float(fh.get_tensor("state/0/step")) == 2 * steps


@pytest.mark.parametrize("arch,weighting", [("soft", "pcgrad"), ("hard", "pcgrad")])
def test_other_architectures_and_weightings_train(
    tmp_path: Path, arch: str, weighting: str
) -> None:
    cfg = apply_overrides(
        named_config("tiny"),
        [*FAST, "train.epochs=1", f"model.arch={arch}", f"weighting.name={weighting}"],
    )
    result = train(cfg, "synth", tmp_path, progress=False, device="cpu")
    assert np.isfinite(result.best_score)
    assert load_checkpoint(tmp_path).config["model"]["arch"] == arch


def test_single_task_run(tmp_path: Path) -> None:
    cfg = apply_overrides(
        named_config("tiny"), [*FAST, "train.epochs=1", "model.tasks=[segmentation]"]
    )
    train(cfg, "synth", tmp_path, progress=False, device="cpu")
    history = rows(tmp_path)
    assert "loss_presence" not in history[0] and "loss_segmentation" in history[0]


def test_cli_trains_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    sets = [arg for item in FAST for arg in ("--set", item)]
    # a one-image test split: AUROC is undefined there (one label value per class)
    sets += ["--set", "data.synth_sizes=[32,16,1]"]
    rc = main(["train", "--out", str(tmp_path / "run"), "--epochs", "1", "--no-progress", *sets])
    assert rc == 0
    printed = strict_json(capsys.readouterr().out)  # undefined figures are null, never NaN
    assert printed["best_epoch"] == 0
    assert printed["test"]["presence_macro_auroc"] is None
    strict_json((tmp_path / "run" / "summary.json").read_text())
    strict_json((tmp_path / "run" / "thresholds.json").read_text())


@pytest.mark.parametrize(
    "args,message",
    [
        (["--config", "enormous"], "unknown config"),
        (["--set", "train.lr=fast"], "train.lr"),
        (["--resume"], "no such run directory"),
        (["--data", "/no/such/dataset"], "/no/such/dataset"),
    ],
)
def test_cli_errors_are_clear(
    tmp_path: Path, capsys: pytest.CaptureFixture, args: list[str], message: str
) -> None:
    assert main(["train", "--out", str(tmp_path / "run"), "--no-progress", *args]) == 3
    err = capsys.readouterr().err
    assert "mtqa train: error:" in err and message in err


def test_time_budget_stops_training_and_drives_the_cosine(tmp_path: Path) -> None:
    """A budget far below one epoch stops after the first epoch with the learning rate at its
    floor (the cosine follows the clock); a generous one runs `train.epochs`, barely decayed."""
    cfg = apply_overrides(named_config("tiny"), [*FAST, "train.epochs=3", "train.time_budget=1e-3"])
    short = train(cfg, "synth", tmp_path / "short", progress=False, device="cpu")
    assert short.epochs_run == 1
    floor = cfg.train.lr * cfg.train.min_lr_ratio
    assert float(rows(tmp_path / "short")[-1]["lr"]) == pytest.approx(floor, rel=1e-3)
    assert short.stopped_by == "time budget"
    apply_overrides(cfg, ["train.epochs=2", "train.time_budget=1e6"])
    long = train(cfg, "synth", tmp_path / "long", progress=False, device="cpu")
    assert long.epochs_run == 2 and long.stopped_by == "epoch cap"
    assert float(rows(tmp_path / "long")[-1]["lr"]) > 0.99 * cfg.train.lr


def test_a_command_line_budget_is_not_capped_by_the_config(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """`--set train.time_budget=S` on a config with an epoch count (here 2): the budget, not the
    config's epochs, ends the run, and the last line says so; epochs given there too cap it."""
    config = tmp_path / "two_epochs.json"
    config.write_text(json.dumps({"train": {"epochs": 2, "patience": 100}}))
    sets = [arg for item in [*FAST, "train.time_budget=8"] for arg in ("--set", item)]
    common = ["train", "--config", str(config), "--no-progress", *sets]
    assert main([*common, "--out", str(tmp_path / "run")]) == 0
    captured = capsys.readouterr()
    printed = strict_json(captured.out)
    assert printed["epochs_run"] > 2 and printed["stopped_by"] == "time budget"
    assert "not the configured train.epochs=2" in captured.err
    assert "stopped by time budget (8 s spent)" in captured.err
    summary = strict_json((tmp_path / "run" / "summary.json").read_text())
    assert summary["stopped_by"] == "time budget"
    # epochs on the command line as well: they cap the budget
    assert main([*common, "--epochs", "1", "--out", str(tmp_path / "capped")]) == 0
    capped = strict_json(capsys.readouterr().out)
    assert capped["epochs_run"] == 1 and capped["stopped_by"] == "epoch cap"


def test_early_stopping_waits_for_min_epochs(tmp_path: Path) -> None:
    """Patience is counted only after train.min_epochs: with patience 1 and a learning rate too
    small to learn anything, a run stops one epoch after the minimum, not after epoch 1."""
    base = [*FAST, "train.epochs=8", "train.patience=1", "train.lr=1e-9"]
    cfg = apply_overrides(named_config("tiny"), [*base, "train.time_budget=0"])
    apply_overrides(cfg, ["train.min_epochs=4"])
    waited = train(cfg, "synth", tmp_path / "waited", progress=False, device="cpu")
    assert waited.epochs_run >= 5
    assert waited.stopped_by in ("early stopping", "epoch cap")
    apply_overrides(cfg, ["train.min_epochs=0"])
    eager = train(cfg, "synth", tmp_path / "eager", progress=False, device="cpu")
    assert eager.stopped_by == "early stopping" and eager.epochs_run < waited.epochs_run


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["train.time_budget=0", "train.epochs=0"], "only with train.time_budget"),
        (["train.min_epochs=-2"], "train.min_epochs"),
        (["train.patience=0"], "train.patience"),
    ],
)
def test_stopping_settings_are_checked(overrides: list[str], message: str) -> None:
    from mtqa.config import ConfigError

    with pytest.raises(ConfigError, match=message):
        apply_overrides(named_config("tiny"), overrides)
    assert apply_overrides(named_config("tiny"), ["train.epochs=0"]).train.epochs == 0  # budget
