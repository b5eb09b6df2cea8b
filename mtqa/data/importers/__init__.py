"""Import the formats users label in (YOLO, COCO, LabelMe, Pascal VOC, binary-mask folders).

``import_dataset(fmt, src, out, ...)`` reads ``src`` with the importer of ``fmt`` and writes the
indexed-mask format into ``out`` with ``report.json``. Each importer module has
``read(src) -> Source`` (see :mod:`mtqa.data.importers.base`); see docs/data.md.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from mtqa.data.errors import DatasetError
from mtqa.data.importers.report import summary_text
from mtqa.data.importers.writer import write_dataset
from mtqa.data.splits import TEST_SHARE, VAL_SHARE

FORMATS: tuple[str, ...] = ("yolo", "coco", "labelme", "voc", "masks")


def read_source(fmt: str, src: str | Path):
    """The :class:`~mtqa.data.importers.base.Source` that the importer of ``fmt`` reads."""
    if fmt not in FORMATS:
        raise DatasetError(f"unknown import format {fmt!r}; choose one of {', '.join(FORMATS)}")
    src = Path(src).expanduser()
    if not src.exists():
        raise DatasetError(f"import source does not exist: {src}")
    return importlib.import_module(f"{__name__}.{fmt}").read(src)


def import_dataset(
    fmt: str,
    src: str | Path,
    out: str | Path,
    *,
    seed: int = 0,
    val_fraction: float = VAL_SHARE,
    test_fraction: float = TEST_SHARE,
    limit: int | None = None,
) -> dict:
    """Import ``src`` (format ``fmt``) into ``out``; return the report written to report.json."""
    source = read_source(fmt, src)
    return write_dataset(
        source,
        Path(out),
        fmt=fmt,
        src=Path(src),
        seed=seed,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        limit=limit,
    )


__all__ = ["FORMATS", "import_dataset", "read_source", "summary_text"]
