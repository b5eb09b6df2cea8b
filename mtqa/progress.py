"""The progress hook long operations report their stages to (build, evaluate, bench).

The library code only calls the hook; how progress is shown is the caller's choice (the CLI
renders it with rich on stderr, `mtqa_cli.progress`). The default, `NO_PROGRESS`, shows nothing,
so library users and tests get no output they did not ask for.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol


class Progress(Protocol):
    """Receives the stages of one operation, one stage at a time."""

    def begin(self, stage: str, total: float | None = None, detail: str = "") -> None:
        """A stage starts; `total` units of work (images, points) if known, else None."""

    def advance(self, amount: float = 1) -> None:
        """`amount` more units of the current stage are done."""

    def end(self, detail: str = "", ok: bool = True) -> None:
        """The current stage finished (`ok`) or was abandoned by an error (not `ok`); `detail`
        is a short result to show with it."""


class NoProgress:
    """The default hook: ignores everything."""

    def begin(self, stage: str, total: float | None = None, detail: str = "") -> None:
        pass

    def advance(self, amount: float = 1) -> None:
        pass

    def end(self, detail: str = "", ok: bool = True) -> None:
        pass


NO_PROGRESS: Progress = NoProgress()


@dataclass
class Stage:
    """The stage a `with stage(...)` block runs: advance it, set `detail` to show at its end."""

    progress: Progress
    detail: str = ""

    def advance(self, amount: float = 1) -> None:
        self.progress.advance(amount)


@contextlib.contextmanager
def stage(
    progress: Progress, name: str, total: float | None = None, detail: str = ""
) -> Iterator[Stage]:
    """`with stage(progress, "export") as s: ...` - begin, then end: done if the block succeeded,
    not ok if it raised (the error, not the hook, tells the user what went wrong)."""
    progress.begin(name, total, detail)
    current = Stage(progress)
    try:
        yield current
    except BaseException:
        progress.end(current.detail, ok=False)
        raise
    progress.end(current.detail)
