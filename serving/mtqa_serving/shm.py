"""Shared-memory regions of the python backend: a unique prefix per server and their removal.

The python backend names its regions `<prefix><uuid>` in /dev/shm and leaves them behind when the
server is killed. Giving each launched server its own prefix lets us remove exactly its regions.
"""

from __future__ import annotations

import secrets
from pathlib import Path

SHM_DIR = Path("/dev/shm")
DEFAULT_PREFIX = "triton_python_backend_shm_region_"


def unique_prefix() -> str:
    """Return a region-name prefix no other server uses (the default prefix plus a random tag)."""
    return f"{DEFAULT_PREFIX}mtqa_{secrets.token_hex(4)}_"


def regions(prefix: str) -> list[Path]:
    """List the shared-memory files whose names start with `prefix`."""
    if not SHM_DIR.is_dir():
        return []
    return sorted(SHM_DIR.glob(f"{prefix}*"))


def remove_regions(prefix: str) -> list[Path]:
    """Delete the regions named `prefix*` and return what was removed."""
    removed = []
    for path in regions(prefix):
        try:
            path.unlink()
            removed.append(path)
        except FileNotFoundError:
            continue  # the server removed it itself while we were listing
    return removed
