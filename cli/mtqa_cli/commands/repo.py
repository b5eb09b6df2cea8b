"""`mtqa repo check DIR`: validate a Triton model repository written by `mtqa build`."""

from __future__ import annotations

import argparse
from pathlib import Path

from mtqa_cli import exits
from mtqa_cli.helptext import with_example
from mtqa_cli.preconditions import first_problem, missing_folder

HELP = "Check a model repository: configs, ONNX I/O, manifests and checksums."
EXAMPLE = "mtqa repo check model_repository"


def configure(parser: argparse.ArgumentParser) -> None:
    """Subcommand `check DIR`."""
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    check = sub.add_parser(
        "check",
        help="validate a repository; exit code 5 on any problem",
        description="Validate a repository written by `mtqa build`: one line per problem on "
        "stdout, exit code 5 (check failed) when there is any, 3 when DIR does not exist.",
        epilog=with_example(EXAMPLE),
    )
    check.add_argument("repo", type=Path, help="the model repository folder")


def run(args: argparse.Namespace) -> int:
    """Print each problem on its own line (the check's output, stdout); exit 5 when there is any,
    with the count as the error line on stderr."""
    from mtqa_builder.check import check_repository

    problem = first_problem([("DIR", args.repo, missing_folder(args.repo))])
    if problem:
        return exits.bad_input("repo", problem)

    problems = check_repository(args.repo)
    for problem in problems:
        print(f"problem: {problem}")
    if problems:
        return exits.fail("repo", f"{args.repo}: {len(problems)} problem(s)", exits.CHECK_FAILED)
    print(f"{args.repo}: OK")
    return 0
