"""`mtqa plan`: fingerprint a dataset and print (and write) the training plan it gets."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mtqa_cli import exits
from mtqa_cli.preconditions import missing_data

HELP = "Fingerprint a dataset and print the training plan `mtqa train` would use for it."
EXAMPLE = "mtqa plan --data datasets/kolektor"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="neu_seg | PATH to a dataset")
    parser.add_argument(
        "--budget",
        type=float,
        default=None,
        help="training seconds (default: planned, 1500 up to 500 train images, else 2400)",
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="also write plan.json here (default: print only)"
    )
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")


def run(args: argparse.Namespace) -> int:
    problem = missing_data(args.data)
    if problem:  # before torch is imported
        return exits.bad_input("plan", f"--data {args.data}: {problem}")
    from mtqa.config import ConfigError
    from mtqa.data import DatasetError
    from mtqa.planning import plan_for

    try:
        plan = plan_for(args.data, args.budget)
    except (DatasetError, ConfigError) as exc:
        return exits.fail("plan", exc)
    if args.out is not None:
        plan.write(args.out)
    if args.json:
        print(json.dumps(plan.to_dict(), indent=2))
    else:
        print(plan.describe())
    return 0
