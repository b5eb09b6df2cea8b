"""`mtqa demo`: the whole pipeline on the CPU in a few minutes."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "run data -> train -> evaluate -> build -> serve -> inspect -> bench on the CPU"
# The demo serves and benchmarks: the `bench` extra (it includes `serve`).
EXTRAS = ("train", "bench")
EXAMPLE = "mtqa demo --out results/demo --bench-seconds 5"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("results/demo"), help="results folder")
    parser.add_argument("--config", default="tiny", help="training config: tiny | small | PATH")
    parser.add_argument("--bench-seconds", type=int, default=5, help="seconds per bench point")
    parser.add_argument(
        "--epochs",
        type=int,
        default=19,
        help="training epochs (default: 19, what tiny's 150 s budget fits on a quiet machine)",
    )
    parser.add_argument("--seed", type=int, default=0, help="training seed (default: 0)")
    parser.add_argument(
        "--time-budget",
        type=float,
        default=0.0,
        help="training seconds at most (default: 0, none; a budget makes the figures depend on "
        "the machine, and the index says when it cut the run)",
    )


def run(args: argparse.Namespace) -> int:
    from mtqa_cli.demo import DemoPlan, run_demo

    plan = DemoPlan(
        out=args.out,
        config=args.config,
        bench_seconds=args.bench_seconds,
        epochs=args.epochs,
        seed=args.seed,
        time_budget=args.time_budget,
    )
    run_demo(plan)
    return 0
