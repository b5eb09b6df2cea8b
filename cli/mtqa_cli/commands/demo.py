"""`mtqa demo`: the whole pipeline on the CPU in a few minutes."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "run data -> train -> evaluate -> build -> serve -> inspect -> bench on the CPU"
# The demo serves and benchmarks: the `bench` extra (it includes `serve`).
EXTRAS = ("bench",)
EXAMPLE = "mtqa demo --out results/demo --bench-seconds 5"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("results/demo"), help="results folder")
    parser.add_argument("--config", default="tiny", help="training config: tiny | small | PATH")
    parser.add_argument("--bench-seconds", type=int, default=5, help="seconds per bench point")


def run(args: argparse.Namespace) -> int:
    from mtqa_cli.demo import DemoPlan, run_demo

    run_demo(DemoPlan(out=args.out, config=args.config, bench_seconds=args.bench_seconds))
    return 0
