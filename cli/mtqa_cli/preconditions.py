"""Checks a command makes before long work, so that a wrong path fails in a second, not after it."""

from __future__ import annotations

import tempfile
from pathlib import Path


def unwritable(folder: Path) -> str | None:
    """Why files cannot be written into `folder` (created if missing), or None when they can.

    Tries what the command will do: make a file in the folder, or in its nearest existing parent
    when it does not exist yet (permission bits alone mislead: root ignores them, a read-only
    mount does not).
    """
    folder = Path(folder).absolute()
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is not a folder"
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        return f"cannot write in {existing}: {exc.strerror or exc}"
    return None
