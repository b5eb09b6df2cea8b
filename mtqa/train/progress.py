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
    tests)."""

    def __init__(self, total_steps: int, enabled: bool, completed: int = 0) -> None:
        self.enabled = enabled
        self._progress = Progress(
            TextColumn("[bold]epoch {task.fields[epoch]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[info]}"),
            console=Console(stderr=True),
            disable=not enabled,
        )
        self._task = self._progress.add_task(
            "train", total=total_steps, completed=completed, epoch=0, info=""
        )
        self.metrics = ""

    def __enter__(self) -> TrainProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def step(self, epoch: int, loss: float) -> None:
        self._progress.update(
            self._task, advance=1, epoch=epoch, info=f"loss {loss:.3f} {self.metrics}"
        )

    def log(self, text: str) -> None:
        """Print a line above the bar (one per epoch)."""
        if self.enabled:
            self._progress.console.print(text)
