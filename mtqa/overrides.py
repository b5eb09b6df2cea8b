"""The `--set KEY=VALUE` option every command that runs a config shares (applied by
`mtqa.config.apply_overrides`)."""

from __future__ import annotations

import argparse


def add_overrides_option(parser: argparse.ArgumentParser, what: str) -> None:
    """`--set KEY=VALUE` (repeatable) into `args.overrides`, the config overrides of a run."""
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=what
    )
