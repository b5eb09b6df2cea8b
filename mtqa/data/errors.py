"""The data component's one exception type: bad datasets fail with a message naming the file."""

from __future__ import annotations


class DatasetError(ValueError):
    """A dataset folder, file or argument is missing or inconsistent; the message names it."""
