"""The training bar: over the steps of all epochs, or over the seconds of a time budget."""

from mtqa.train.progress import TrainProgress


def test_a_budgeted_run_counts_seconds_not_uncapped_steps():
    bar = TrainProgress(1000 * 85, enabled=False, budget_s=1500.0)
    task = bar._progress.tasks[0]
    assert task.total == 1500.0
    bar.step(0, 1.0, elapsed_s=300.0)
    assert task.completed == 300.0
    bar.step(3, 1.0, elapsed_s=1600.0)  # the last epoch may overrun: the bar stops at the end
    assert task.completed == 1500.0


def test_an_epoch_capped_run_counts_steps():
    bar = TrainProgress(20, enabled=False, completed=5)
    task = bar._progress.tasks[0]
    bar.step(1, 1.0)
    assert (task.total, task.completed) == (20, 6)
