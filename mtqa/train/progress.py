"""A live rich progress bar over training steps, showing loss and the latest metrics."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class TrainProgress:
    """Context manager wrapping `rich.progress.Progress`; a no-op when disabled (other ranks,
    tests).

    With a time budget (`budget_s`) the bar runs over the budget's seconds, since the budget, not
    the (often uncapped) epoch count, ends such a run; otherwise over the steps of all epochs.
    """

    def __init__(
        self, total_steps: int, enabled: bool, completed: float = 0, budget_s: float | None = None
    ) -> None:
        self.enabled = enabled
        self.budget_s = budget_s
        done = (
            TextColumn("{task.completed:.0f}/{task.total:.0f} s budget")
            if budget_s
            else MofNCompleteColumn()
        )
        self._progress = Progress(
            TextColumn("[bold]epoch {task.fields[epoch]}"),
            BarColumn(),
            done,
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[info]}"),
            console=Console(stderr=True),
            disable=not enabled,
        )
        self._task = self._progress.add_task(
            "train", total=budget_s or total_steps, completed=completed, epoch=0, info=""
        )
        self.metrics = ""

    def __enter__(self) -> TrainProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def step(self, epoch: int, loss: float, elapsed_s: float = 0.0) -> None:
        """One training step done; `elapsed_s` (training seconds so far) moves a budget bar."""
        info = f"loss {loss:.3f} {self.metrics}"
        if self.budget_s:
            done = min(elapsed_s, self.budget_s)
            self._progress.update(self._task, completed=done, epoch=epoch, info=info)
        else:
            self._progress.update(self._task, advance=1, epoch=epoch, info=info)

    def log(self, text: str) -> None:
        """Print a line above the bar (one per epoch)."""
        if self.enabled:
            self._progress.console.print(text)
