"""`mtqa train`: train a multi-task network and write a checkpoint directory."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from mtqa.overrides import add_overrides_option
from mtqa_cli import exits
from mtqa_cli.preconditions import first_problem, missing_data, missing_run, unwritable

if TYPE_CHECKING:
    from mtqa.config import RunConfig

HELP = "train the multi-task network (synthetic data, NEU-Seg or a dataset folder)"
EXAMPLE = "mtqa train --data synth --config tiny --out runs/tiny"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default="synth", help="synth | neu_seg | PATH to a dataset")
    parser.add_argument(
        "--config",
        default=None,
        help="tiny | small | neu | PATH.yaml/.json (default: planned from the data, see "
        "`mtqa plan`; `tiny` for --data synth)",
    )
    parser.add_argument("--out", required=True, type=Path, help="run directory, e.g. runs/tiny")
    parser.add_argument(
        "--epochs",
        type=int,
        help="override train.epochs (with a time budget: the most epochs; a budget set here "
        "without --epochs lifts the preset's epoch count; default: the config's)",
    )
    parser.add_argument("--seed", type=int, help="override train.seed (default: the config's)")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its last/ state (its config.json, then --set)",
    )
    add_overrides_option(
        parser, "override a config value, e.g. --set model.arch=soft (repeatable; default: none)"
    )
    parser.add_argument("--device", default="auto", help="auto (CUDA when available) | cpu | cuda")
    parser.add_argument("--no-progress", action="store_true", help="no live progress bar")


def lift_epoch_cap(cfg: RunConfig, overrides: list[str]) -> None:
    """A time budget given on the command line is the budget: unless the epochs are given there
    too, the preset's (or saved run's) epoch count stops capping it (`train.epochs=0`)."""
    keys = {item.partition("=")[0].strip() for item in overrides}
    if "train.time_budget" in keys and "train.epochs" not in keys and cfg.train.time_budget > 0:
        if cfg.train.epochs:
            print(
                f"mtqa train: the {cfg.train.time_budget:g} s budget ends the run, not the "
                f"configured train.epochs={cfg.train.epochs} (--epochs N caps it)",
                file=sys.stderr,
            )
        cfg.train.epochs = 0


def run(args: argparse.Namespace) -> int:
    problem = first_problem(  # in a second, before torch is imported and the data indexed
        [
            ("--data", args.data, None if args.resume else missing_data(args.data)),
            ("--out", args.out, missing_run(args.out) if args.resume else unwritable(args.out)),
        ]
    )
    if problem:
        return exits.bad_input("train", problem)
    from mtqa.checkpoint import CheckpointError, read_config
    from mtqa.config import ConfigError, apply_overrides, named_config
    from mtqa.data import DatasetError
    from mtqa.evaluate.jsonsafe import dumps
    from mtqa.planning import PLAN_FILE, plan_for
    from mtqa.train import TrainError, run_config_from_checkpoint, train

    try:
        if args.resume:
            saved = read_config(args.out)
            cfg = run_config_from_checkpoint(saved)
            data = saved["data"]["source"]
        elif args.config is None and args.data != "synth":
            plan, data = plan_for(args.data), args.data
            cfg = plan.config()
            plan.write(args.out)
            print(f"mtqa train: planned from the data ({args.out / PLAN_FILE}):", file=sys.stderr)
            print(plan.describe(), file=sys.stderr)
        else:
            cfg, data = named_config(args.config or "tiny"), args.data
        overrides = list(args.overrides)
        if args.epochs is not None:
            overrides.append(f"train.epochs={args.epochs}")
        if args.seed is not None:
            overrides.append(f"train.seed={args.seed}")
        apply_overrides(cfg, overrides)
        lift_epoch_cap(cfg, overrides)
        result = train(
            cfg,
            data,
            args.out,
            resume=args.resume,
            progress=not args.no_progress,
            device=args.device,
        )
    except (ConfigError, CheckpointError, DatasetError, TrainError) as exc:
        return exits.fail("train", exc)
    if os.environ.get("RANK", "0") != "0":
        return 0  # under torchrun only rank 0 reports
    summary = {
        "run_dir": str(result.run_dir),
        "best_epoch": result.best_epoch,
        "best_score": round(result.best_score, 4),
        "epochs_run": result.epochs_run,
        "stopped_by": result.stopped_by,
        "seconds": round(result.seconds, 1),
        "test": {k: round(v, 4) for k, v in result.test.items()},
    }
    print(dumps(summary))
    return 0
