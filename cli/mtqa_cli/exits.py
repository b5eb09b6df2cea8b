"""How an `mtqa` command ends: its exit code and, on failure, one line on stderr.

stdout carries only the command's output (a table, a report path, JSON with `--json`); every error
goes to stderr as `mtqa COMMAND: error: MESSAGE`. The codes are listed in `mtqa --help`
(mtqa_cli.helptext.EXIT_CODES).
"""

from __future__ import annotations

import sys

OK = 0
FAILED = 1  # the command ran and could not do its work: bad input, no server, gate failed, ...
USAGE = 2  # the command line itself is wrong (argparse uses 2 as well)
INTERRUPTED = 130


def fail(command: str, message: object, code: int = FAILED) -> int:
    """Print `mtqa COMMAND: error: MESSAGE` on stderr and return `code` (FAILED by default)."""
    print(f"mtqa {command}: error: {message}", file=sys.stderr, flush=True)
    return code


def usage(command: str, message: object) -> int:
    """A usage error found after parsing (values that do not go together): exit code 2."""
    return fail(command, message, USAGE)
