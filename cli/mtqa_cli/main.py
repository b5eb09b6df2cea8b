"""The `mtqa` console command: discovers subcommands in `mtqa_cli.commands`; options they share."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from mtqa import __version__
from mtqa_cli import commands, exits, helptext
from mtqa_cli.extras import MissingExtraError, require


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mtqa",
        description="Multi-task quality assessment: train, build, serve, inspect and benchmark.",
        epilog=f"{helptext.EXIT_CODES}\n\n`mtqa COMMAND --help` shows each command's options.",
    )
    parser.add_argument("--version", action="version", version=f"mtqa {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        name = getattr(module, "NAME", info.name.replace("_", "-"))
        example = getattr(module, "EXAMPLE", None)  # tests/test_cli_surface.py wants one each
        cmd = sub.add_parser(
            name,
            help=module.HELP,
            description=module.HELP,
            epilog=helptext.with_example(example) if example else None,
        )
        module.configure(cmd)
        cmd.set_defaults(_run=module.run, _extras=getattr(module, "EXTRAS", ()))
    helptext.apply(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; failures end as one stderr line and an exit code (mtqa_cli.exits)."""
    args = build_parser().parse_args(argv)
    try:
        require(*args._extras)
        return int(args._run(args) or 0)
    except MissingExtraError as exc:
        return exits.fail(args.command, exc)
    except ModuleNotFoundError as exc:  # a dependency the extras check does not cover
        if (exc.name or "mtqa").partition(".")[0].startswith("mtqa"):
            raise  # one of our own modules: a broken install or a bug, keep the traceback
        return exits.fail(
            args.command, f"{exc.name} is not installed (pip install 'mtqa[all]' has every extra)"
        )
    except OSError as exc:  # unreadable input, unwritable output, a full disk
        return exits.fail(args.command, exc)
    except Exception as exc:  # a typed error a command let through: its code (mtqa_cli.exits)
        if exits.code_for(exc) == exits.FAILED:
            raise  # not one the layers raise for the user: a bug, keep the traceback
        return exits.fail(args.command, exc)
    except KeyboardInterrupt:
        return exits.INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
