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


# The named data sources mtqa.data.build_datasets knows besides a path, spelled here so that the
# check imports no torch (as IMPORT_FORMATS in commands/data.py).
DATA_PRESETS = ("synth", "neu_seg")


def missing_run(run: Path) -> str | None:
    """Why `run` cannot be a run directory of `mtqa train` (missing, not a folder), or None.

    Only what is cheap to see: the checkpoint loader says what a folder that exists lacks.
    """
    run = Path(run)
    if not run.exists():
        return "no such run directory (`mtqa train --out` writes one)"
    if not run.is_dir():
        return "is not a run directory (a file, not a folder)"
    return None


def missing_data(source: str | None) -> str | None:
    """Why `source` names no data (neither a preset nor an existing path), or None."""
    if source is None or source in DATA_PRESETS or Path(source).exists():
        return None
    return f"no such data: neither {' | '.join(DATA_PRESETS)} nor an existing path"


def unknown_precisions(names: list[str]) -> str | None:
    """Why `names` holds precisions the builder does not make (mtqa_builder.precision), or None."""
    from mtqa_builder.precision import PRECISIONS

    known = ", ".join(PRECISIONS)
    bad = [n for n in names if n not in PRECISIONS]
    if not names:
        return f"names no precision; choose from {known}"
    return f"unknown precision {', '.join(bad)}; choose from {known}" if bad else None


def first_problem(checks: list[tuple[str, object, str | None]]) -> str | None:
    """`FLAG VALUE: reason` of the first (flag, value, reason) whose reason is not None."""
    for flag, value, reason in checks:
        if reason:
            return f"{flag} {value}: {reason}"
    return None


def missing_folder(folder: Path | None) -> str | None:
    """Why `folder` (an input, when given) is not an existing folder, or None."""
    if folder is None or Path(folder).is_dir():
        return None
    return "no such folder" if not Path(folder).exists() else "is not a folder"
