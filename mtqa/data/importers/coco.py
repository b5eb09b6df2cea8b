"""COCO instance segmentation JSON (CVAT, Label Studio, Roboflow exports): polygons and RLE.

``src`` is one JSON file or a folder whose JSON files are read together (Roboflow writes one per
split folder: ``train/_annotations.coco.json``; a file or folder named like train / val / valid /
test gives the split). Categories become classes in id order; a category that is only the
umbrella (supercategory) of others and has no annotations (Roboflow's) is dropped. Images without
annotations are defect-free. An annotation without segmentation is drawn from its ``bbox``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from mtqa.data.errors import DatasetError
from mtqa.data.importers.base import Polygon, Rle, Sample, Source
from mtqa.data.naming import SPLIT_ALIASES, split_of_folder

_SPLIT_WORD = re.compile(r"(?:^|[^a-z])(" + "|".join(SPLIT_ALIASES) + r")(?:\d*)(?:[^a-z]|$)")


def _json_files(src: Path) -> list[Path]:
    if src.is_file():
        return [src]
    files = sorted(p for p in src.rglob("*.json") if p.name != "report.json")
    if not files:
        raise DatasetError(f"{src}: no COCO .json annotation file found")
    return files


def _split_of(path: Path) -> str | None:
    """A split named by the file (``instances_val2017.json``) or its folder (``valid/``)."""
    match = _SPLIT_WORD.search(path.stem.lower())
    if match:
        return split_of_folder(match.group(1))
    return split_of_folder(path.parent.name)


def _load(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise DatasetError(f"cannot read COCO file {path}: {exc}") from exc
    if not isinstance(data, dict) or "images" not in data or "categories" not in data:
        return None  # another JSON in the folder (a LabelMe file, a config)
    return data


def _categories(docs: list[tuple[Path, dict]]) -> dict[int, str]:
    """Category id -> name over all files (same id, same name), umbrella categories dropped."""
    names: dict[int, str] = {}
    used: set[int] = set()
    umbrellas: set[str] = set()
    for path, doc in docs:
        for cat in doc["categories"]:
            cid, name = int(cat["id"]), str(cat["name"])
            if names.get(cid, name) != name:
                raise DatasetError(
                    f"{path}: category id {cid} is {name!r} here, {names[cid]!r} before"
                )
            names[cid] = name
            if cat.get("supercategory") and cat["supercategory"] != name:
                umbrellas.add(str(cat["supercategory"]))
        used |= {int(a["category_id"]) for a in doc.get("annotations", [])}
    return {
        cid: name for cid, name in sorted(names.items()) if cid in used or name not in umbrellas
    }


def _image_path(file_name: str, json_path: Path, src: Path) -> Path:
    """Where an image's ``file_name`` points: beside the JSON, in images/, or under ``src``."""
    name = Path(file_name)
    roots = [json_path.parent, json_path.parent / "images", src if src.is_dir() else src.parent]
    candidates = [r / name for r in roots] + [r / name.name for r in roots]
    candidates.append((src if src.is_dir() else src.parent) / "images" / name.name)
    return next((p for p in candidates if p.is_file()), candidates[0])


def _geometries(ann: dict, where: str, warnings: list[str]) -> list:
    seg = ann.get("segmentation")
    if isinstance(seg, dict):
        return [Rle(seg)]
    if isinstance(seg, list) and seg:
        polys = [seg] if seg and isinstance(seg[0], (int, float)) else seg
        out = []
        for poly in polys:
            if len(poly) < 4 or len(poly) % 2:
                raise DatasetError(f"{where}: polygon needs x,y pairs, got {len(poly)} numbers")
            out.append(Polygon(tuple(zip(poly[0::2], poly[1::2], strict=True))))
        return out
    bbox = ann.get("bbox")
    if bbox and len(bbox) == 4:
        x, y, w, h = (float(v) for v in bbox)
        warnings.append(where)
        return [Polygon(((x, y), (x + w, y), (x + w, y + h), (x, y + h)))]
    raise DatasetError(f"{where}: no segmentation and no bbox")


def read(src: Path) -> Source:
    """Read one COCO JSON file or every COCO JSON file under a folder."""
    docs = [(p, d) for p in _json_files(src) if (d := _load(p)) is not None]
    if not docs:
        raise DatasetError(f"{src}: no JSON file with COCO 'images' and 'categories'")
    categories = _categories(docs)
    class_of = {cid: k for k, cid in enumerate(categories, start=1)}
    source = Source(classes=list(categories.values()), samples=[])
    boxes: list[str] = []
    for path, doc in docs:
        split = _split_of(path)
        by_image: dict[int, list] = {}
        for ann in doc.get("annotations", []):
            where = f"{path} annotation {ann.get('id')}"
            cid = int(ann["category_id"])
            if cid not in class_of:
                raise DatasetError(f"{where}: category_id {cid} is not among the categories")
            by_image.setdefault(int(ann["image_id"]), []).extend(
                (class_of[cid], g) for g in _geometries(ann, where, boxes)
            )
        for image in doc["images"]:
            file_name = str(image["file_name"])
            source.samples.append(
                Sample(
                    id=Path(file_name).stem,
                    image=_image_path(file_name, path, src),
                    split=split,
                    labels=by_image.get(int(image["id"]), []),
                )
            )
    if boxes:
        source.warnings.append(
            f"{len(boxes)} annotation(s) without segmentation drawn as filled boxes; "
            f"first: {boxes[0]}"
        )
    return source
