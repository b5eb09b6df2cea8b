"""`mtqa repo check DIR`: validate a Triton model repository written by `mtqa build`."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "Check a model repository: configs, ONNX I/O, manifests and checksums."


def configure(parser: argparse.ArgumentParser) -> None:
    """Subcommand `check DIR`."""
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    check = sub.add_parser("check", help="validate a repository; non-zero exit on any problem")
    check.add_argument("repo", type=Path)


def run(args: argparse.Namespace) -> int:
    """Print each problem on its own line; exit 1 when there is any."""
    from mtqa_builder.check import check_repository

    problems = check_repository(args.repo)
    for problem in problems:
        print(f"problem: {problem}")
    if problems:
        print(f"{args.repo}: {len(problems)} problem(s)")
        return 1
    print(f"{args.repo}: OK")
    return 0
