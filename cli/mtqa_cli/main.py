"""The `mtqa` console command: discovers subcommands in `mtqa_cli.commands`; options they share."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from mtqa import __version__
from mtqa_cli import commands
from mtqa_cli.extras import MissingExtraError, require


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mtqa",
        description="Multi-task quality assessment: train, build, serve, inspect and benchmark.",
    )
    parser.add_argument("--version", action="version", version=f"mtqa {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        name = getattr(module, "NAME", info.name.replace("_", "-"))
        cmd = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.configure(cmd)
        cmd.set_defaults(_run=module.run, _extras=getattr(module, "EXTRAS", ()))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        require(*args._extras)
    except MissingExtraError as exc:
        print(f"mtqa {args.command}: error: {exc}", file=sys.stderr)
        return 1
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
