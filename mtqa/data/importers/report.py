"""The import report: what was written, how big the images and defects are, what was left out.

A defect is a connected region (8-neighbour) of one class in the written mask; its area is given
in pixels and as a fraction of its image, and its short side (the smaller side of its bounding
box, in pixels) tells thin defects apart, so a planner can choose a resolution that keeps them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from mtqa.data.records import SPLITS

QUANTILES = {"min": 0.0, "p5": 0.05, "p25": 0.25, "p50": 0.5, "p75": 0.75, "p95": 0.95, "max": 1.0}
_EIGHT = np.ones((3, 3), dtype=bool)


def quantiles(values: list[float], digits: int = 6) -> dict | None:
    """Named quantiles (min, p5 ... max) of ``values``; None when there are none."""
    if not values:
        return None
    qs = np.quantile(np.asarray(values, dtype=np.float64), list(QUANTILES.values()))
    return {k: round(float(v), digits) for k, v in zip(QUANTILES, qs, strict=True)}


@dataclass
class ImportStats:
    """Accumulates per-image facts while the writer goes; :meth:`to_dict` is the report body."""

    classes: list[str]
    split_counts: dict[str, int] = field(default_factory=dict)
    images_per_class: dict[str, dict[str, int]] = field(default_factory=dict)
    defect_free: dict[str, int] = field(default_factory=dict)
    heights: list[int] = field(default_factory=list)
    widths: list[int] = field(default_factory=list)
    region_px: dict[int, list[int]] = field(default_factory=dict)
    region_frac: dict[int, list[float]] = field(default_factory=dict)
    region_short: dict[int, list[int]] = field(default_factory=dict)
    overlap_px: int = 0
    overlap_images: int = 0

    def add(self, split: str, mask: np.ndarray, overlap_px: int) -> None:
        """Count one written image (its class-index mask) into ``split``."""
        h, w = mask.shape
        self.split_counts[split] = self.split_counts.get(split, 0) + 1
        self.heights.append(h)
        self.widths.append(w)
        present = [int(c) for c in np.unique(mask) if c > 0]
        if not present:
            self.defect_free[split] = self.defect_free.get(split, 0) + 1
        for cls in present:
            per_split = self.images_per_class.setdefault(self.classes[cls - 1], {})
            per_split[split] = per_split.get(split, 0) + 1
            regions, n = ndimage.label(mask == cls, structure=_EIGHT)
            areas = np.bincount(regions.ravel(), minlength=n + 1)[1:]
            self.region_px.setdefault(cls, []).extend(int(a) for a in areas)
            self.region_frac.setdefault(cls, []).extend(float(a) / (h * w) for a in areas)
            self.region_short.setdefault(cls, []).extend(
                min(b[0].stop - b[0].start, b[1].stop - b[1].start)
                for b in ndimage.find_objects(regions)
            )
        if overlap_px:
            self.overlap_px += overlap_px
            self.overlap_images += 1

    def to_dict(self) -> dict:
        splits = [s for s in SPLITS if s in self.split_counts]
        per_class = {}
        for k, name in enumerate(self.classes, start=1):
            counts = self.images_per_class.get(name, {})
            per_class[name] = {
                "images": {s: counts.get(s, 0) for s in splits} | {"all": sum(counts.values())},
                "regions": len(self.region_px.get(k, [])),
                "area_px": quantiles(self.region_px.get(k, []), 1),
                "area_fraction": quantiles(self.region_frac.get(k, [])),
                "short_side_px": quantiles(self.region_short.get(k, []), 1),
            }
        all_px = [a for v in self.region_px.values() for a in v]
        all_frac = [a for v in self.region_frac.values() for a in v]
        all_short = [a for v in self.region_short.values() for a in v]
        return {
            "counts": {s: self.split_counts[s] for s in splits}
            | {"all": sum(self.split_counts.values())},
            "defect_free_images": {s: self.defect_free.get(s, 0) for s in splits}
            | {"all": sum(self.defect_free.values())},
            "images_per_class": {n: c["images"] for n, c in per_class.items()},
            "image_height": quantiles(self.heights, 1),
            "image_width": quantiles(self.widths, 1),
            "defect_regions": {
                "connectivity": 8,
                "count": len(all_px),
                "area_px": quantiles(all_px, 1),
                "area_fraction": quantiles(all_frac),
                "short_side_px": quantiles(all_short, 1),
                "per_class": {
                    n: {k: c[k] for k in ("regions", "area_px", "area_fraction", "short_side_px")}
                    for n, c in per_class.items()
                },
            },
            "overlap": {"pixels": self.overlap_px, "images": self.overlap_images},
        }


def _q(q: dict | None, fmt: str) -> str:
    if q is None:
        return "-"
    return " / ".join(format(q[k], fmt) for k in ("min", "p5", "p50", "p95", "max"))


def summary_text(report: dict) -> str:
    """The printed summary of a report (report.json holds everything)."""
    lines = [
        f"imported {report['counts']['all']} images from {report['format']} {report['source']}"
        f" into {report['out']}",
        f"classes: {', '.join(report['classes'])}",
        "splits: "
        + ", ".join(
            f"{s} {n} ({report['defect_free_images'][s]} defect-free)"
            for s, n in report["counts"].items()
        ),
        f"split origin: {report['split_origin']}",
        "image size min / p5 / p50 / p95 / max: "
        f"height {_q(report['image_height'], '.0f')}, width {_q(report['image_width'], '.0f')}",
    ]
    regions = report["defect_regions"]["per_class"]
    rows = [("class", "images", "per split", "regions", "area px", "area fraction", "short side")]
    for name, counts in report["images_per_class"].items():
        region = regions[name]
        rows.append(
            (
                name,
                str(counts["all"]),
                ", ".join(f"{s} {n}" for s, n in counts.items() if s != "all"),
                str(region["regions"]),
                _q(region["area_px"], ".0f"),
                _q(region["area_fraction"], ".1e"),
                _q(region["short_side_px"], ".0f"),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines.append("defect regions per class (min / p5 / p50 / p95 / max):")
    for row in rows:
        lines.append(
            "  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        )
    if report["overlap"]["pixels"]:
        lines.append(
            f"overlapping classes: {report['overlap']['pixels']} px in "
            f"{report['overlap']['images']} images (the later class kept)"
        )
    missing = report["images_without_label_file"]
    if missing["count"]:
        lines.append(f"images without a label file (imported defect-free): {missing['count']}")
    for item in report["skipped"]:
        lines.append(f"skipped {item['file']}: {item['reason']}")
    lines += [f"warning: {w}" for w in report["warnings"]]
    lines += [f"note: {n}" for n in report["notes"]]
    return "\n".join(lines)
