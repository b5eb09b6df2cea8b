"""The training loop: data, model, losses, weighting, AdamW + warm-up/cosine, early stopping,
checkpoints, resume, and DistributedDataParallel under `torchrun`.

Rank 0 validates and writes every file; other ranks only train and follow rank 0's
early-stopping decision. Each epoch is seeded from (seed, epoch), so a resumed run draws the
same batches as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import csv
import gc
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from mtqa import __version__
from mtqa.checkpoint import (
    MODEL_FILE,
    load_training_state,
    load_weights,
    save_checkpoint,
    save_training_state,
)
from mtqa.config import RunConfig
from mtqa.data import DataBundle, build_datasets, class_stats
from mtqa.evaluate.jsonsafe import dumps
from mtqa.evaluate.thresholds import save_thresholds, select_thresholds
from mtqa.losses import MultiTaskLoss, pos_weight_from_rates
from mtqa.models import build_model
from mtqa.models.encoders import encoder_normalisation
from mtqa.train.distributed import DistEnv, close_distributed, init_distributed
from mtqa.train.optim import build_optimizer
from mtqa.train.progress import TrainProgress
from mtqa.train.schedule import warmup_cosine
from mtqa.train.seeding import seed_everything, worker_init
from mtqa.train.validation import ValidationResult, validate
from mtqa.weighting import build_weighting

METRICS_FILE = "metrics.csv"
SUMMARY_FILE = "summary.json"
STATS_ITEMS = 256  # train items sampled for the positive rates behind pos_weight


class TrainError(RuntimeError):
    """Training cannot start or continue (e.g. resume without a previous run)."""


@dataclass
class TrainResult:
    """What a finished run reports; the files are in `run_dir`."""

    run_dir: Path
    best_epoch: int
    best_score: float
    epochs_run: int
    seconds: float
    val: dict[str, float] = field(default_factory=dict)
    test: dict[str, float] = field(default_factory=dict)
    # what ended the run: "time budget", "epoch cap" or "early stopping" (rank 0 knows)
    stopped_by: str = ""


def autocast_factory(amp: str, device: torch.device) -> Any:
    """A zero-argument context factory: bf16 autocast (CPU, or CUDA with bf16) or nothing."""
    use = amp in ("auto", "bf16")
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        use = False
    if not use:
        return contextlib.nullcontext
    return lambda: torch.autocast(device.type, dtype=torch.bfloat16)


def checkpoint_config(cfg: RunConfig, bundle: DataBundle, source: str) -> dict[str, Any]:
    """The readable `config.json` of a run (contract keys first, then every config section)."""
    sections = cfg.to_dict()
    return {
        "classes": list(bundle.classes),
        "grades": list(bundle.grades),
        "grade_rule": bundle.grade_rule,
        "image_size": int(bundle.image_size),
        "resize": cfg.data.resize,
        "mean": [float(v) for v in bundle.mean],
        "std": [float(v) for v in bundle.std],
        "name": cfg.name,
        "model": sections["model"],
        "loss": sections["loss"],
        "weighting": sections["weighting"],
        "train": sections["train"],
        "data": {"source": source, "resolved": bundle.source, **sections["data"]},
        "mtqa_version": __version__,
    }


def run_config_from_checkpoint(config: dict[str, Any]) -> RunConfig:
    """Recover the `RunConfig` a run was started with from its `config.json`."""
    data = {k: v for k, v in config["data"].items() if k not in ("source", "resolved")}
    sections = {k: config[k] for k in ("model", "loss", "weighting", "train")}
    return RunConfig.from_dict({"name": config.get("name", "custom"), **sections, "data": data})


def _normalisation(cfg: RunConfig) -> tuple[tuple, tuple] | None:
    """The (mean, std) a pretrained encoder expects, None to measure the data's own."""
    norm = encoder_normalisation(cfg.model)
    return None if norm is None else (norm.mean, norm.std)


class Trainer:
    """One training run; construct, then `run()`."""

    def __init__(
        self, cfg: RunConfig, source: str, out: Path, env: DistEnv, progress: bool
    ) -> None:
        self.cfg, self.source, self.out, self.env = cfg, source, Path(out), env
        t = cfg.train
        if env.device.type == "cpu":
            per_proc = max(1, (os.cpu_count() or 1) // max(env.world_size, 1))
            torch.set_num_threads(t.threads or per_proc)
        seed_everything(t.seed + env.rank)
        d = cfg.data
        self.bundle = build_datasets(
            source,
            d.image_size,
            seed=t.seed,
            augment=d.augment,
            synth_sizes=tuple(d.synth_sizes),
            classes=d.classes,
            grade_rule=d.grade_rule,
            limit=d.limit,
            resize=d.resize,
            crop_size=d.crop_size,
            defect_crop_share=d.defect_crop_share,
            epoch_items=d.epoch_items,
            normalisation=_normalisation(cfg),
        )
        self.classes, self.grades = list(self.bundle.classes), list(self.bundle.grades)
        self.tasks = tuple(cfg.model.tasks)
        # Same initial weights on every rank (DDP also broadcasts them; this keeps runs comparable).
        torch.manual_seed(t.seed)
        self.model = build_model(cfg.model, len(self.classes), len(self.grades)).to(env.device)
        self.memory_format = torch.channels_last if t.channels_last else torch.preserve_format
        self.model = self.model.to(memory_format=self.memory_format)
        self.weighting = build_weighting(cfg.weighting, self.tasks).to(env.device)
        self.weighting.reduce = env.mean
        stats = class_stats(self.bundle.train, self.classes, max_items=STATS_ITEMS)
        mx = cfg.loss.max_pos_weight
        self.criterion = MultiTaskLoss(
            cfg.loss,
            self.tasks,
            pos_weight_from_rates(stats.presence_rate, mx),
            pos_weight_from_rates(stats.pixel_rate, mx),
        ).to(env.device)
        self.net = (
            DistributedDataParallel(
                self.model, device_ids=[env.local_rank] if env.device.type == "cuda" else None
            )
            if env.enabled
            else self.model
        )
        self.train_loader, self.sampler = self._train_loader()
        self.val_loader = self._eval_loader(self.bundle.val)
        self.steps_per_epoch = len(self.train_loader)
        if self.steps_per_epoch == 0:
            raise TrainError(
                f"training split has {len(self.bundle.train)} images: fewer than one batch of "
                f"{t.batch_size} per process"
            )
        self.optimizer = build_optimizer(self.model, self.weighting, t.lr, t.weight_decay)
        self.epoch_cap = t.epochs  # 0: none (a time budget alone ends the run)
        self.scheduler = warmup_cosine(
            self.optimizer,
            round(t.warmup_epochs * self.steps_per_epoch),
            # under a time budget the cosine follows the clock; this only bounds the warm-up
            max(self.epoch_cap, math.ceil(t.warmup_epochs) + 1) * self.steps_per_epoch,
            t.min_lr_ratio,
        )
        self.autocast = autocast_factory(t.amp, env.device)
        self.progress_enabled = progress and env.is_main
        self.config_json = checkpoint_config(cfg, self.bundle, source)

    def _train_loader(self) -> tuple[DataLoader, DistributedSampler | None]:
        t, env = self.cfg.train, self.env
        sampler = (
            DistributedSampler(
                self.bundle.train,
                env.world_size,
                env.rank,
                shuffle=True,
                seed=t.seed,
                drop_last=True,
            )
            if env.enabled
            else None
        )
        self.generator = torch.Generator()
        loader = DataLoader(
            self.bundle.train,
            batch_size=t.batch_size,
            shuffle=sampler is None,
            sampler=sampler,
            generator=self.generator,
            drop_last=True,
            num_workers=t.num_workers,
            worker_init_fn=worker_init,
            pin_memory=env.device.type == "cuda",
        )
        return loader, sampler

    def _eval_loader(self, dataset: Dataset) -> DataLoader:
        t = self.cfg.train
        return DataLoader(
            dataset, batch_size=t.batch_size * 2, shuffle=False, num_workers=t.num_workers
        )

    # -- the run ----------------------------------------------------------------------------
    def _elapsed(self) -> float:
        """Training seconds including those of the runs this one resumes."""
        return self.prior_seconds + time.perf_counter() - self.t0

    def run(self, resume: bool) -> TrainResult:
        self.t0 = time.perf_counter()
        state = {"epoch": -1, "best_score": -1.0, "best_epoch": -1, "bad_epochs": 0, "seconds": 0.0}
        if resume:
            state = load_training_state(self.out, self.model, self.optimizer, self.weighting)
            self.scheduler.load_state_dict(state.pop("scheduler"))
        elif self.env.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / METRICS_FILE).unlink(missing_ok=True)
            (self.out / "config.json").write_text(json.dumps(self.config_json, indent=2) + "\n")
        self.prior_seconds = float(state["seconds"])
        first = state["epoch"] + 1
        epochs_run = 0
        stopped_by = "epoch cap"
        cap = self.epoch_cap or sys.maxsize
        budget = self.cfg.train.time_budget
        with TrainProgress(
            self.epoch_cap * self.steps_per_epoch or None,
            self.progress_enabled,
            completed=self.prior_seconds if budget > 0 else first * self.steps_per_epoch,
            budget_s=budget if budget > 0 else None,
        ) as bar:
            for epoch in range(first, cap):
                started = self._elapsed()
                losses = self._train_epoch(epoch, bar)
                epochs_run += 1
                reason = None
                if self.env.is_main:
                    reason = self._end_epoch(epoch, losses, state, bar, started)
                if self.env.broadcast_flag(reason is not None):
                    stopped_by = reason or ""
                    break
            if self.env.is_main:
                line = self._stop_line(stopped_by, state)
                if self.progress_enabled:
                    bar.log(line)
                else:  # the one line a quiet run still writes: why it ended
                    print(f"mtqa train: {line}", file=sys.stderr)
        result = TrainResult(
            run_dir=self.out,
            best_epoch=state["best_epoch"],
            best_score=state["best_score"],
            epochs_run=epochs_run,
            seconds=self._elapsed(),
            stopped_by=stopped_by if self.env.is_main else "",
        )
        if self.env.is_main:
            self._finish(result)
        self.env.barrier()
        return result

    def _stop_line(self, stopped_by: str, state: dict[str, Any]) -> str:
        """The last log line: what ended the run, and where the best epoch was."""
        t = self.cfg.train
        detail = {
            "time budget": f"{t.time_budget:g} s spent",
            "epoch cap": f"train.epochs={t.epochs}",
            "early stopping": f"no better val score in {t.patience} epochs after the first "
            f"{self._min_epochs_text()}",
        }.get(stopped_by, "")
        return (
            f"stopped by {stopped_by} ({detail}) after {state['epoch'] + 1} epochs, "
            f"{self._elapsed():.0f} s; best epoch {state['best_epoch']} "
            f"(score {state['best_score']:.4f})"
        )

    def _min_epochs_text(self) -> str:
        t = self.cfg.train
        if t.min_epochs >= 0:
            return f"{t.min_epochs} epochs (train.min_epochs)"
        if t.time_budget > 0:
            return f"quarter of the budget ({t.time_budget / 4:g} s)"
        return f"{math.ceil(t.epochs / 4)} epochs (a quarter of train.epochs)"

    def _counts_patience(self, epoch: int) -> bool:
        """Whether epoch `epoch` (0-based, just validated) is past the minimum run
        (`train.min_epochs`; -1: a quarter of `epochs`, or of the time budget)."""
        t = self.cfg.train
        if t.min_epochs >= 0:
            return epoch + 1 > t.min_epochs
        if t.time_budget > 0:
            return self._elapsed() > t.time_budget / 4
        return epoch + 1 > math.ceil(t.epochs / 4)

    def _over_budget(self, epoch_seconds: float) -> bool:
        """`train.time_budget` (rank 0): whether another epoch as long as the last one would
        end more than 5% past the budget (the cosine has reached its floor by then anyway)."""
        return self._elapsed() + epoch_seconds > 1.05 * self.cfg.train.time_budget

    def _train_epoch(self, epoch: int, bar: TrainProgress) -> dict[str, float]:
        """One pass over the training split; returns mean per-task and total losses."""
        t = self.cfg.train
        if hasattr(self.bundle.train, "set_epoch"):
            self.bundle.train.set_epoch(epoch)
        if self.sampler is not None:
            self.sampler.set_epoch(epoch)
        self.generator.manual_seed(t.seed * 100_003 + epoch)
        torch.manual_seed(t.seed * 100_003 + epoch * 7 + self.env.rank)
        self.net.train()
        shared = self.model.shared_parameters()
        sums: dict[str, float] = {}
        for batch in self.train_loader:
            batch = {
                k: v.to(self.env.device, non_blocking=True) if torch.is_tensor(v) else v
                for k, v in batch.items()
            }
            x = batch["image"].contiguous(memory_format=self.memory_format)
            with self.autocast():
                out = self.net(x)
            task_losses = self.criterion(out, batch)
            extra = None
            if self.cfg.model.arch == "soft":
                extra = self.cfg.weighting.sharing_weight * self.model.sharing_penalty()
            self.optimizer.zero_grad(set_to_none=True)
            total = self.weighting.backward(task_losses, shared, extra)
            self._sync_weighting_grads()
            if t.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), t.grad_clip)
            self.optimizer.step()
            if t.time_budget > 0:
                # The cosine follows the clock (rank 0's, so every rank uses the same rate).
                fraction = self.env.broadcast_float(self._elapsed() / t.time_budget)
                self.scheduler.lr_lambdas[0].time_fraction = fraction
            self.scheduler.step()
            loss = float(total)
            if not np.isfinite(loss):
                raise TrainError(f"loss became {loss} at epoch {epoch}; lower train.lr")
            for key, value in {
                "total": loss,
                **{k: float(v.detach()) for k, v in task_losses.items()},
            }.items():
                sums[key] = sums.get(key, 0.0) + value
            bar.step(epoch, loss, self._elapsed())
        return {k: v / self.steps_per_epoch for k, v in sums.items()}

    def _sync_weighting_grads(self) -> None:
        """Weighting parameters live outside DDP: average their gradients by hand."""
        if not self.env.enabled:
            return
        for p in self.weighting.parameters():
            if p.grad is not None:
                p.grad.copy_(self.env.mean(p.grad))

    def _end_epoch(
        self,
        epoch: int,
        losses: dict[str, float],
        state: dict[str, Any],
        bar: TrainProgress,
        started: float,
    ) -> bool:
        """Validate, log, save best and last; return what ends the run now, or None to go on
        (rank 0 only)."""
        val = self._validate(self.val_loader)
        budget = self.cfg.train.time_budget
        over_budget = budget > 0 and self._over_budget(self._elapsed() - started)
        improved = val.score > state["best_score"]
        state.update(epoch=epoch, seconds=round(self._elapsed(), 2))
        if improved:
            state.update(best_score=val.score, best_epoch=epoch, bad_epochs=0)
            save_checkpoint(self.out, self.model, self.config_json)
        elif self._counts_patience(epoch):
            state["bad_epochs"] += 1
        row = {
            "epoch": epoch,
            "step": (epoch + 1) * self.steps_per_epoch,
            "lr": self.scheduler.get_last_lr()[0],
            "seconds": state["seconds"],
            **{f"loss_{k}": round(v, 5) for k, v in losses.items()},
            **{f"weight_{k}": round(v, 4) for k, v in self.weighting.task_weights().items()},
            **{f"val_{k}": round(v, 5) for k, v in val.metrics.items()},
            "score": round(val.score, 5),
            "best": int(improved),
        }
        self._append_metrics(row)
        save_training_state(
            self.out,
            self.model,
            self.optimizer,
            self.weighting,
            {**state, "scheduler": self.scheduler.state_dict()},
        )
        bar.metrics = (
            f"F1 {val.metrics['presence_macro_f1']:.3f} IoU {val.metrics['defect_iou']:.3f}"
        )
        bar.log(
            f"epoch {epoch}: loss {losses['total']:.4f} score {val.score:.4f} "
            f"({bar.metrics}, grade acc {val.metrics['grade_accuracy']:.3f})"
            + (" *" if improved else "")
        )
        if state["bad_epochs"] >= self.cfg.train.patience:
            return "early stopping"
        return "time budget" if over_budget else None

    def _validate(
        self,
        loader: DataLoader,
        collect: bool = False,
        thresholds: tuple[np.ndarray, np.ndarray] | None = None,
        per_class: bool = False,
    ) -> ValidationResult:
        return validate(
            self.model,
            loader,
            self.classes,
            self.grades,
            self.tasks,
            self.env.device,
            self.autocast,
            channels_last=self.cfg.train.channels_last,
            collect=collect,
            thresholds=thresholds,
            per_class=per_class,
        )

    def _append_metrics(self, row: dict[str, Any]) -> None:
        path = self.out / METRICS_FILE
        new = not path.is_file()
        with path.open("a", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow(row)

    def _finish(self, result: TrainResult) -> None:
        """Reload the best weights, select thresholds on val, score val and test, write files."""
        load_weights(self.model, self.out / MODEL_FILE)
        val = self._validate(self.val_loader, collect=True, per_class=True)
        presence = select_thresholds(val.presence_probs, val.presence_targets, self.classes)
        segmentation = val.histogram.select(self.classes)
        save_thresholds(self.out, presence, segmentation, selected_on="val", rule="max_f1")
        vectors = (
            np.array([presence[c] for c in self.classes]),
            np.array([segmentation[c] for c in self.classes]),
        )
        result.val = val.metrics
        if self.bundle.test is not None:
            test_loader = self._eval_loader(self.bundle.test)
            result.test = self._validate(test_loader, thresholds=vectors, per_class=True).metrics
        summary = {
            "best_epoch": result.best_epoch,
            "best_score": result.best_score,
            "epochs_run": result.epochs_run,
            "stopped_by": result.stopped_by,
            "seconds": round(result.seconds, 2),
            "val_at_0.5": result.val,
            "test_at_selected_thresholds": result.test,
        }
        (self.out / SUMMARY_FILE).write_text(dumps(summary) + "\n")


def train(
    cfg: RunConfig,
    source: str,
    out: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    device: str = "auto",
) -> TrainResult:
    """Train `cfg` on `source` (`synth`, `neu_seg` or a dataset path) into `out`.

    Under `torchrun` every process calls this; the process group is joined and left here.
    """
    env = init_distributed(device)
    trainer = None
    try:
        trainer = Trainer(cfg, source, Path(out), env, progress)
        return trainer.run(resume)
    finally:
        # DDP's reducer holds the process group: free it before the group goes, or gloo may
        # abort at interpreter exit (2 of 19 loaded test runs before, 0 of 36 after).
        trainer = None
        gc.collect()
        close_distributed(env)
