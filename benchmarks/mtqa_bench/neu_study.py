"""The multi-task study on NEU-Seg: single-task baselines vs hard vs soft sharing, and fixed vs
uncertainty vs PCGrad loss weighting, each arm trained under the same wall-clock budget.

Every arm is one `mtqa train` subprocess (same preset, seed and data; only the arm's overrides
differ). When an arm's budget runs out its process is stopped and the best checkpoint saved so far
is used. Each arm's thresholds are then chosen on the val split (`calibrate_run`, max-F1) and it is
scored on the test split with `evaluate_predictor`'s code, so all arms are measured alike. Writes
`OUT/ARM/` run folders, `OUT/results.json` and the Markdown table (default `docs/results.md`).

    python -m mtqa_bench.neu_study --budget 3600 --out runs/neu_study            # the real study
    python -m mtqa_bench.neu_study --budget 60 --arms hard_fixed,single_segmentation \\
        --set data.image_size=96 --out /tmp/neu_smoke --results /tmp/neu_smoke/results.md

For a fair comparison on a quiet machine, choose `--epochs` so that every arm finishes inside
`--budget` (then the cosine schedule completes and no arm is cut short).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mtqa.calibrate import calibrate_run, checkpoint_split
from mtqa.checkpoint import load_checkpoint
from mtqa.evaluate import evaluate_predictor, torch_predict_fn
from mtqa.evaluate.jsonsafe import dumps
from mtqa.overrides import add_overrides_option

# arm name -> config overrides (`--set` values) that define it
ARMS: dict[str, dict[str, Any]] = {
    "single_presence": {"model.tasks": ["presence"]},
    "single_segmentation": {"model.tasks": ["segmentation"]},
    "single_grade": {"model.tasks": ["grade"]},
    "hard_fixed": {"model.arch": "hard", "weighting.name": "fixed"},
    "soft_fixed": {"model.arch": "soft", "weighting.name": "fixed"},
    "hard_uncertainty": {"model.arch": "hard", "weighting.name": "uncertainty"},
    "hard_pcgrad": {"model.arch": "hard", "weighting.name": "pcgrad"},
}
# The figures reported per task; a single-task arm reports only its own task's.
TASK_METRICS = {
    "presence": ("presence_macro_f1", "presence_macro_auroc"),
    "segmentation": ("miou", "miou_with_background", "defect_iou"),
    "grade": ("grade_accuracy", "grade_qwk"),
}
ALL_TASKS = ("presence", "segmentation", "grade")
STOP_GRACE_S = 30


class StudyError(RuntimeError):
    """An arm that cannot be run or scored (bad arm name, training failure)."""


@dataclass
class ArmOutcome:
    """What one arm produced: training facts and test metrics (None when it made no model)."""

    arm: str
    tasks: list[str]
    epochs_done: int
    train_seconds: float
    cut_by_budget: bool
    metrics: dict[str, Any] | None
    note: str = ""


def _train_command(args: argparse.Namespace, arm: str, run_dir: Path) -> list[str]:
    overrides = [f"{key}={json.dumps(value)}" for key, value in ARMS[arm].items()]
    overrides += list(args.overrides)
    if args.threads:
        overrides.append(f"train.threads={args.threads}")
    cmd = [
        sys.executable,
        "-m",
        "mtqa_cli.main",
        "train",
        "--data",
        args.data,
        "--config",
        args.config,
    ]
    cmd += ["--out", str(run_dir), "--seed", str(args.seed), "--no-progress"]
    if args.epochs:
        cmd += ["--epochs", str(args.epochs)]
    for item in overrides:
        cmd += ["--set", item]
    return cmd


def _stop(proc: subprocess.Popen) -> None:
    """Stop the training process group we started: SIGTERM, then SIGKILL after a grace period."""
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def train_arm(args: argparse.Namespace, arm: str, run_dir: Path) -> tuple[float, bool]:
    """Run `mtqa train` for one arm under the budget; returns (seconds, cut_by_budget)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    log = (run_dir / "train.log").open("w")
    start = time.monotonic()
    # own process group, so stopping it also stops its data-loader workers
    proc = subprocess.Popen(
        _train_command(args, arm, run_dir),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        proc.wait(timeout=args.budget)
        cut = False
    except subprocess.TimeoutExpired:
        _stop(proc)
        cut = True
    finally:
        log.close()
    if not cut and proc.returncode != 0:
        tail = (run_dir / "train.log").read_text()[-2000:]
        raise StudyError(f"training arm {arm} failed (exit {proc.returncode}):\n{tail}")
    return time.monotonic() - start, cut


def _epochs_done(run_dir: Path) -> int:
    path = run_dir / "metrics.csv"
    return max(0, len(path.read_text().splitlines()) - 1) if path.is_file() else 0


def score_arm(args: argparse.Namespace, run_dir: Path) -> dict[str, Any]:
    """Thresholds on val (max-F1), then the flat metrics on test."""
    calibrate_run(run_dir, split="val", limit=args.eval_limit)
    ckpt = load_checkpoint(run_dir)
    dataset, _ = checkpoint_split(ckpt, "test", limit=args.eval_limit)
    return evaluate_predictor(
        torch_predict_fn(ckpt.model), dataset, ckpt.classes, ckpt.grades, ckpt.thresholds
    )


def run_arm(args: argparse.Namespace, arm: str) -> ArmOutcome:
    """Train and score one arm."""
    tasks = list(ARMS[arm].get("model.tasks", ALL_TASKS))
    run_dir = args.out / arm
    seconds, cut = train_arm(args, arm, run_dir)
    epochs = _epochs_done(run_dir)
    if not (run_dir / "model.safetensors").is_file():
        return ArmOutcome(arm, tasks, epochs, seconds, cut, None, "no epoch finished in budget")
    return ArmOutcome(arm, tasks, epochs, seconds, cut, score_arm(args, run_dir))


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.4f}"


def results_markdown(args: argparse.Namespace, outcomes: list[ArmOutcome]) -> str:
    """The results page: settings, one row per arm, and how to read it."""
    columns = [k for t in ALL_TASKS for k in TASK_METRICS[t]]
    header = ["arm", "tasks", "epochs", "train s", "cut", *columns]
    lines = [
        "# NEU-Seg multi-task study",
        "",
        f"Written by `mtqa_bench.neu_study` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC "
        f"({platform.machine()}, {os.cpu_count()} CPUs). Data `{args.data}`, preset "
        f"`{args.config}`, seed {args.seed}, budget {args.budget:.0f} s per arm, epochs "
        f"{args.epochs or 'preset'}, overrides `{' '.join(args.overrides) or '-'}`, "
        f"eval limit {args.eval_limit or 'none'}.",
        "",
        "Test split, thresholds chosen on val (max-F1). A single-task arm is scored on its own "
        "task only (`-`); `cut` marks an arm stopped by the budget (its best checkpoint so far is "
        "scored). `miou` is the mean over the defect classes, `miou_with_background` counts "
        "background too (mmsegmentation's mIoU); definitions in "
        "[evaluation.md](evaluation.md).",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join(" --- " for _ in header) + "|",
    ]
    for o in outcomes:
        cells = []
        for task in ALL_TASKS:
            for key in TASK_METRICS[task]:
                active = task in o.tasks and o.metrics is not None
                cells.append(_fmt(o.metrics.get(key)) if active else "-")
        row = [o.arm, "+".join(o.tasks), str(o.epochs_done), f"{o.train_seconds:.0f}"]
        row += ["yes" if o.cut_by_budget else "no", *cells]
        lines.append("| " + " | ".join(row) + " |")
    notes = [f"- {o.arm}: {o.note}" for o in outcomes if o.note]
    if notes:
        lines += ["", *notes]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="neu_seg", help="neu_seg (default) | synth | PATH")
    parser.add_argument("--config", default="neu", help="training preset or config file")
    parser.add_argument("--arms", default=",".join(ARMS), help="comma-separated arm names")
    parser.add_argument("--budget", type=float, default=3600.0, help="wall seconds per arm")
    parser.add_argument("--epochs", type=int, help="epochs per arm (default: the preset's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, help="torch threads per arm")
    parser.add_argument("--eval-limit", type=int, help="cap val/test images when scoring")
    add_overrides_option(parser, "extra config override for every arm (repeatable)")
    parser.add_argument("--out", type=Path, default=Path("runs/neu_study"))
    parser.add_argument("--results", type=Path, default=Path("docs/results.md"))
    args = parser.parse_args(argv)
    args.arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    unknown = [a for a in args.arms if a not in ARMS]
    if unknown:
        parser.error(f"unknown arm(s) {unknown}; known: {', '.join(ARMS)}")
    if args.budget <= 0:
        parser.error("--budget must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    outcomes = []
    for arm in args.arms:
        print(f"[neu_study] arm {arm}: training (budget {args.budget:.0f} s)", flush=True)
        try:
            outcome = run_arm(args, arm)
        except StudyError as exc:
            print(f"[neu_study] {exc}", file=sys.stderr)
            return 2
        outcomes.append(outcome)
        print(
            f"[neu_study] arm {arm}: {outcome.epochs_done} epochs, "
            f"{outcome.train_seconds:.0f} s, cut={outcome.cut_by_budget}",
            flush=True,
        )
        # rewrite after every arm so a long study leaves partial results behind
        (args.out / "results.json").write_text(dumps([o.__dict__ for o in outcomes]) + "\n")
        args.results.parent.mkdir(parents=True, exist_ok=True)
        args.results.write_text(results_markdown(args, outcomes))
    print(f"[neu_study] wrote {args.results} and {args.out / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
