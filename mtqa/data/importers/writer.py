"""Write an importer's :class:`Source` as an indexed-mask dataset plus ``report.json``.

Images are copied byte for byte when the loader reads their suffix (else re-encoded as PNG);
masks are class-index PNGs at the image's own size; ``classes.json`` names the classes.
"""

from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from mtqa.data.errors import DatasetError
from mtqa.data.importers.base import Sample, Source
from mtqa.data.importers.rasterise import rasterise
from mtqa.data.importers.report import ImportStats
from mtqa.data.records import IMAGE_SUFFIXES, SPLITS
from mtqa.data.splits import TEST_SHARE, VAL_SHARE, check_fractions, stratified_splits

_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")
_ORIENTATION = 0x0112  # the EXIF orientation tag


def unique_ids(samples: list[Sample]) -> None:
    """Make ids file-name safe and unique (``id``, ``id_2`` ...) in place."""
    seen: set[str] = set()
    for sample in samples:
        base = _UNSAFE.sub("_", sample.id).strip("._") or "image"
        name, k = base, 1
        while name in seen:
            k += 1
            name = f"{base}_{k}"
        seen.add(name)
        sample.id = name


def evenly_spaced(samples: list[Sample], limit: int | None) -> list[Sample]:
    """At most ``limit`` samples for a quick trial, evenly spaced within each source split.

    Splits share the limit in proportion to their size, each keeping at least one image (so a
    trial import still has the source's train and val).
    """
    if limit is None or limit >= len(samples):
        return samples
    if limit < 1:
        raise DatasetError(f"limit must be >= 1, got {limit}")
    groups: dict[str | None, list[Sample]] = {}
    for sample in samples:
        groups.setdefault(sample.split, []).append(sample)
    shares = dict.fromkeys(groups, 1)  # then one at a time to the split furthest below its share
    while sum(shares.values()) < limit:
        key = max(
            (k for k in groups if shares[k] < len(groups[k])),
            key=lambda k: limit * len(groups[k]) / len(samples) - shares[k],
        )
        shares[key] += 1
    picked = []
    for key, group in groups.items():
        spots = np.linspace(0, len(group) - 1, shares[key]).round()
        picked += [group[i] for i in np.unique(spots.astype(int))]
    return picked


def _classes(samples: list[Sample]) -> dict[str, set[int]]:
    return {s.id: s.classes_present() for s in samples}


def assign_splits(
    source: Source, seed: int, val_fraction: float, test_fraction: float
) -> tuple[dict[str, str], str]:
    """Split per sample id and a sentence saying where the splits came from."""
    check_fractions(val_fraction, test_fraction)
    samples = source.samples
    given = {s.id: s.split for s in samples if s.split} if source.keep_splits else {}
    if not given:
        origin = (
            f"seeded (seed {seed}) and stratified by class: "
            f"val {val_fraction:g}, test {test_fraction:g}, train the rest"
        )
        return stratified_splits(_classes(samples), seed, val_fraction, test_fraction), origin
    kept = sorted(set(given.values()), key=SPLITS.index)
    origin = f"kept from the source ({', '.join(kept)})"
    loose = [s for s in samples if s.id not in given]
    if loose:
        given |= stratified_splits(_classes(loose), seed, val_fraction, test_fraction)
        origin += f"; {len(loose)} images without a source split divided seeded and stratified"
    if "val" not in given.values():
        train = [s for s in samples if given[s.id] == "train"]
        moved = stratified_splits(_classes(train), seed, val_fraction, 0.0)
        given |= {i: "val" for i, split in moved.items() if split == "val"}
        origin += f"; val carved from train (fraction {val_fraction:g}, seeded, stratified)"
    if "test" not in given.values():
        origin += "; the source has no test split"
    return given, origin


def _check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DatasetError(f"{out} is not an empty folder; choose a new or empty output folder")


def _open_image(sample: Sample) -> tuple[Image.Image, bytes | None, bool]:
    """(decoded image, embedded bytes or None, whether it was turned upright).

    Fully loaded, so a truncated file fails here. An EXIF orientation is applied: annotation
    tools show (and label) the upright image, while the project's loader ignores EXIF.
    """
    data = None
    if not sample.image.is_file():
        if sample.image_data is None:
            raise DatasetError("image file not found")
        data = sample.image_data
    try:
        img = Image.open(io.BytesIO(data) if data is not None else sample.image)
        img.load()
        if img.getexif().get(_ORIENTATION, 1) != 1:
            return ImageOps.exif_transpose(img), data, True
    except (OSError, SyntaxError, ValueError) as exc:
        raise DatasetError(f"cannot read image: {exc}") from exc
    return img, data, False


def _write_image(
    sample: Sample, img: Image.Image, data: bytes | None, upright: bool, folder: Path
) -> None:
    suffix = sample.image.suffix.lower()
    if upright:
        img.save(folder / f"{sample.id}.png")
    elif data is None and suffix in IMAGE_SUFFIXES:
        shutil.copyfile(sample.image, folder / f"{sample.id}{suffix}")
    elif data is not None and img.format in ("PNG", "JPEG"):
        ext = ".png" if img.format == "PNG" else ".jpg"
        (folder / f"{sample.id}{ext}").write_bytes(data)
    else:
        img.save(folder / f"{sample.id}.png")


def write_dataset(
    source: Source,
    out: Path,
    *,
    fmt: str,
    src: Path,
    seed: int = 0,
    val_fraction: float = VAL_SHARE,
    test_fraction: float = TEST_SHARE,
    limit: int | None = None,
) -> dict:
    """Write ``source`` into ``out`` (new or empty) and return the report (also report.json)."""
    out = Path(out)
    _check_out(out)
    if not source.classes:
        raise DatasetError(f"{src}: no defect classes found")
    if len(source.classes) > 255:
        raise DatasetError(f"{src}: {len(source.classes)} classes; masks hold at most 255")
    samples = sorted(source.samples, key=lambda s: (s.split or "", s.id))
    unique_ids(samples)
    samples = evenly_spaced(samples, limit)
    if not samples:
        raise DatasetError(f"{src}: no images found")
    source.samples = samples
    splits, origin = assign_splits(source, seed, val_fraction, test_fraction)
    stats = ImportStats(list(source.classes))
    skipped = list(source.skipped)
    notes = list(source.notes)
    turned = 0
    for sample in samples:
        where = str(sample.image)
        try:
            img, data, upright = _open_image(sample)
            mask, overlap = rasterise(sample.labels, (img.height, img.width), where)
        except DatasetError as exc:
            skipped.append({"file": where, "reason": str(exc)})
            continue
        split = splits[sample.id]
        for kind in ("images", "masks"):
            (out / kind / split).mkdir(parents=True, exist_ok=True)
        _write_image(sample, img, data, upright, out / "images" / split)
        turned += upright
        Image.fromarray(mask).save(out / "masks" / split / f"{sample.id}.png")
        stats.add(split, mask, overlap)
    if not stats.split_counts:
        raise DatasetError(f"{src}: none of {len(samples)} images could be read")
    if turned:
        notes.append(
            f"{turned} image(s) carried an EXIF orientation: written upright as PNG, labels drawn "
            "on the upright image (as annotation tools show it)"
        )
    without_label = sorted(str(s.image) for s in samples if not s.has_label_file)
    report = {
        "format": fmt,
        "source": str(src),
        "out": str(out),
        "seed": seed,
        "limit": limit,
        "classes": list(source.classes),
        "split_origin": origin,
        **stats.to_dict(),
        "images_without_label_file": {"count": len(without_label), "files": without_label},
        "skipped": skipped,
        "warnings": list(source.warnings),
        "notes": list(dict.fromkeys(notes)),
    }
    meta = {"classes": list(source.classes), "imported_from": {"format": fmt, "source": str(src)}}
    (out / "classes.json").write_text(json.dumps(meta, indent=2) + "\n")
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report
