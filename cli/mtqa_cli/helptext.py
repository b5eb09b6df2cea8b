"""Help output of every `mtqa` parser: each option's default (or "required"), examples verbatim."""

from __future__ import annotations

import argparse

# `mtqa --help` lists these under the commands.
EXIT_CODES = """exit codes:
  (each failure also prints one line on stderr, `mtqa COMMAND: error: ...`)
  0    done
  1    failed for another reason: a step broke, a missing optional install
  2    usage error: unknown option, bad or missing value, options that do not go together
  3    input error: a run, data path, image or file is missing or unreadable, an unknown
       precision or other name, an output folder that cannot be written
  4    server unavailable: connection refused, unreachable, timed out, model not ready
  5    check failed: accuracy gate, golden check (swap), repository check
  130  interrupted (Ctrl-C)"""


class HelpFormatter(argparse.HelpFormatter):
    """Appends "(default: X)" or "(required)" to an option's help unless the text already says.

    Flags (store_true) and options without a default say nothing more: their help states what
    happens when they are left out. Text with line breaks (examples, exit codes) is kept as
    written; one-paragraph descriptions are wrapped.
    """

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text:
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if not action.option_strings or action.nargs == 0 or "default" in text.lower():
            return text
        if action.required:
            return f"{text} (required)" if "required" not in text else text
        default = action.default
        if default is None or default is argparse.SUPPRESS or default == []:
            return text
        if isinstance(default, (list, tuple)):
            default = ",".join(str(v) for v in default)
        return f"{text} (default: {str(default).replace('%', '%%')})"


def apply(parser: argparse.ArgumentParser) -> None:
    """Use HelpFormatter in `parser` and in every subcommand parser below it."""
    parser.formatter_class = HelpFormatter
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                apply(sub)


def with_example(example: str) -> str:
    """An epilog holding one example command line (or several, one per line)."""
    lines = "\n".join(f"  {line}" for line in example.strip().splitlines())
    return f"example:\n{lines}"
