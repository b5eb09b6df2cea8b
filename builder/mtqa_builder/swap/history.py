"""The swap history (`mtqa_net/swap_history.jsonl`, one JSON record per swap) and the swap lock.

Records are appended with a single `write` on an O_APPEND descriptor, so a reader never sees half
a line. The lock is a file created with O_EXCL: two swaps on one repository at once would each
believe they own the serving version.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mtqa_builder.contract import HISTORY as HISTORY_FILE
from mtqa_builder.contract import SWAP_LOCK as LOCK_FILE
from mtqa_builder.swap.errors import SwapInProgressError

__all__ = ["HISTORY_FILE", "LOCK_FILE", "append", "now", "read", "swap_lock"]


def now() -> str:
    """UTC timestamp with milliseconds (history records, manifests)."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


def append(model_dir: Path, record: dict[str, Any]) -> None:
    """Append one record to the model's swap history."""
    line = (json.dumps(record, sort_keys=True, default=str) + "\n").encode()
    fd = os.open(model_dir / HISTORY_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def read(model_dir: Path) -> list[dict[str, Any]]:
    """Every record of the model's swap history, oldest first (empty when there is none)."""
    path = model_dir / HISTORY_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@contextlib.contextmanager
def swap_lock(model_dir: Path) -> Iterator[None]:
    """Hold the repository's swap lock for the duration of the block."""
    path = model_dir / LOCK_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        holder = path.read_text(errors="replace").strip() or "unknown"
        raise SwapInProgressError(
            f"another swap is running on {model_dir} ({holder}); if none is, remove {path}"
        ) from None
    try:
        os.write(fd, f"pid {os.getpid()} since {now()}".encode())
        os.close(fd)
        yield
    finally:
        path.unlink(missing_ok=True)
