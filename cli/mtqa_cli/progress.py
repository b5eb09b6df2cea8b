"""Renders the stages of `mtqa build`, `evaluate` and `bench` (the `mtqa.progress` hook) on stderr.

Like `mtqa train`'s bar: on a terminal a live rich bar for the running stage; everywhere (terminal,
pipe, log file) one plain line per finished stage, `mtqa COMMAND: STAGE done in 3.2 s (DETAIL)`,
and one when a stage starts with an estimate (the bench's sweep size and ETA). stdout is never
written, so `--json` output stays pure JSON. `--no-progress` turns all of it off.
"""

from __future__ import annotations

import argparse
import sys
import time

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text


class _Count(ProgressColumn):
    """`done/total` when the stage has a size, nothing otherwise."""

    def render(self, task: Task) -> Text:
        if task.total is None:
            return Text("")
        return Text(f"{task.completed:.0f}/{task.total:.0f}", style="progress.download")


class StageProgress:
    """An `mtqa.progress.Progress` for one CLI command: a live bar while a stage runs (terminal
    only), a line when it ends. No context to enter: each stage starts and stops its own bar."""

    def __init__(self, command: str, enabled: bool = True, console: Console | None = None) -> None:
        self.command = command
        self.enabled = enabled
        self.console = console or Console(stderr=True)
        self.live = enabled and self.console.is_terminal
        self._bar: Progress | None = None
        self._task = None
        self._stage = ""
        self._started = 0.0

    def _line(self, text: str) -> None:
        if self.enabled:
            self.console.print(
                f"mtqa {self.command}: {text}", highlight=False, markup=False, soft_wrap=True
            )

    def _new_bar(self) -> Progress:
        return Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            _Count(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[detail]}"),
            console=self.console,
            transient=True,
            # Prints to stdout go above the bar only when stdout is the same terminal; a piped
            # stdout (`--json > file`) is left alone.
            redirect_stdout=sys.stdout.isatty(),
        )

    def begin(self, stage: str, total: float | None = None, detail: str = "") -> None:
        self.end(ok=False)  # a stage left open by its caller
        self._stage, self._started = stage, time.monotonic()
        if detail:
            self._line(f"{stage}: {detail}")
        if self.live:
            self._bar = self._new_bar()
            self._task = self._bar.add_task(stage, total=total, detail=detail)
            self._bar.start()

    def advance(self, amount: float = 1) -> None:
        if self._bar is not None and self._task is not None:
            self._bar.advance(self._task, amount)

    def end(self, detail: str = "", ok: bool = True) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = self._task = None
        if not self._stage:
            return
        stage, self._stage = self._stage, ""
        if ok:
            seconds = time.monotonic() - self._started
            self._line(f"{stage} done in {seconds:.1f} s" + (f" ({detail})" if detail else ""))


def add_option(parser: argparse.ArgumentParser) -> None:
    """`--no-progress`, as `mtqa train` has it."""
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress on stderr (stage lines, live bar)"
    )


def for_args(command: str, args: argparse.Namespace) -> StageProgress:
    """The command's progress, off with `--no-progress`."""
    return StageProgress(command, enabled=not getattr(args, "no_progress", False))
