"""`mtqa plan`: fingerprint a dataset and print (and write) the training plan it gets."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HELP = "Fingerprint a dataset and print the training plan `mtqa train` would use for it."


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="neu_seg | PATH to a dataset (required)")
    parser.add_argument(
        "--budget",
        type=float,
        default=None,
        help="training seconds (default: planned, 1500 up to 500 train images, else 2400)",
    )
    parser.add_argument("--out", type=Path, default=None, help="also write plan.json here")
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")
    parser.epilog = "example: mtqa plan --data datasets/kolektor"


def run(args: argparse.Namespace) -> int:
    from mtqa.config import ConfigError
    from mtqa.data import DatasetError
    from mtqa.planning import plan_for

    try:
        plan = plan_for(args.data, args.budget)
    except (DatasetError, ConfigError) as exc:
        print(f"mtqa plan: error: {exc}", file=sys.stderr)
        return 2
    if args.out is not None:
        plan.write(args.out)
    if args.json:
        print(json.dumps(plan.to_dict(), indent=2))
    else:
        print(plan.describe())
    return 0
