"""Options renamed for one name per idea; the old spelling keeps working for one release.

`option(parser, "--run", "--checkpoint", ...)` adds `--run` with `--checkpoint` as a hidden
alias: both fill the same value, `--help` shows only `--run`, and using the old spelling prints
one deprecation line on stderr. The names every command uses:

  --run            a run directory written by `mtqa train` (was --checkpoint)
  --data           training / evaluation data: synth | neu_seg | PATH
  --gate-data      data the accuracy gate scores (was --val-data), same values
  --calib-data     INT8 calibration images (was --calib), same values
  --golden-data    the golden set of a swap (was --golden), same values
  --model-version  a model version, as tritonclient and PyTriton call it (was --to in swap)
"""

from __future__ import annotations

import argparse
import sys

# The release after which the old spellings go; named in the deprecation line.
REMOVED_IN = "the next release"


class RenamedStore(argparse._StoreAction):
    """A store action that also answers to deprecated spellings (`old_names`)."""

    old_names: tuple[str, ...] = ()

    def __call__(self, parser, namespace, values, option_string=None):  # noqa: ANN001
        if option_string in self.old_names:
            print(
                f"{parser.prog}: warning: {option_string} is deprecated, use "
                f"{self.option_strings[0]} (the old name goes in {REMOVED_IN})",
                file=sys.stderr,
                flush=True,
            )
        super().__call__(parser, namespace, values, option_string)


def option(
    parser: argparse.ArgumentParser | argparse._ActionsContainer, name: str, *old: str, **kwargs
) -> argparse.Action:
    """Add option `name` that also accepts the deprecated spellings `old`.

    The parser knows every spelling; the action lists only `name`, so `--help`, the usage line
    and argparse's own errors ("required: --run") show the current name alone.
    """
    action = parser.add_argument(name, *old, action=RenamedStore, **kwargs)
    action.old_names = old
    action.option_strings = [name]
    return action
