"""Pascal VOC XML boxes: one ``<annotation>`` file per image (LabelImg, CVAT's "Pascal VOC"
export, and the steel sets NEU-DET and GC10-DET as their publishers ship them).

Every ``*.xml`` under SRC whose root element is ``<annotation>`` is read. Its ``<filename>`` names
the image, looked for beside the XML, then anywhere under SRC by name, then by stem (the XML's
own stem when ``<filename>`` matches nothing); of several matches the one nearest the XML wins.
Each ``<object>`` is ``<name>`` plus ``<bndbox>`` (``xmin ymin xmax ymax``, VOC's 1-based
inclusive pixels), drawn as a filled box with a warning: a box is not the defect's outline.
Splits: ``ImageSets/Main/{train,val,test}.txt`` (``trainval`` when train and val are missing)
when the source has them, else a split folder on the XML's path (``train/``, ``validation/``),
else drawn. Images without an XML in a folder of annotated images are defect-free (reported).
Classes are the sorted object names.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

from mtqa.data.errors import DatasetError
from mtqa.data.importers.base import Polygon, Sample, Source
from mtqa.data.naming import split_of_folder
from mtqa.data.records import images_under

BOX_TAGS = ("xmin", "ymin", "xmax", "ymax")


def _annotation(path: Path) -> ET.Element | None:
    """The XML's root when it is a VOC ``<annotation>``; None for other XML files."""
    root = ET.parse(path).getroot()  # expat refuses entity expansion bombs
    return root if root.tag == "annotation" else None


def _objects(root: ET.Element, where: Path) -> list[tuple[str, tuple[float, ...]]]:
    """(name, (xmin, ymin, xmax, ymax)) per ``<object>``; a malformed one raises."""
    found = []
    for k, obj in enumerate(root.iter("object"), start=1):
        name = (obj.findtext("name") or "").strip()
        box = obj.find("bndbox")
        if not name or box is None:
            raise DatasetError(f"{where}: object {k} needs <name> and <bndbox>")
        try:
            coords = tuple(float(box.findtext(tag) or "") for tag in BOX_TAGS)
        except ValueError as exc:
            raise DatasetError(f"{where}: object {k} ({name}): bad <bndbox>: {exc}") from exc
        if coords[2] < coords[0] or coords[3] < coords[1]:
            raise DatasetError(f"{where}: object {k} ({name}): xmax/ymax below xmin/ymin")
        found.append((name, coords))
    return found


def _closest(xml: Path, candidates: list[Path]) -> Path | None:
    """Of `candidates`, the image sharing the longest folder path with `xml`."""
    if not candidates:
        return None
    return max(candidates, key=lambda p: len(os.path.commonpath([p.parent, xml.parent])))


def _find_image(xml: Path, filename: str, by_name: dict, by_stem: dict) -> Path | None:
    name = Path(filename.replace("\\", "/")).name  # a Windows path from another machine
    if name and (xml.parent / name).is_file():
        return xml.parent / name
    return _closest(
        xml,
        by_name.get(name.lower())
        or by_stem.get(Path(name).stem.lower())
        or by_stem.get(xml.stem.lower(), []),
    )


def _image_sets(src: Path) -> dict[str, str]:
    """Image stem -> split from ``ImageSets/Main/<split>.txt``, when the source has them."""
    folders = sorted(src.rglob("ImageSets/Main"))
    if not folders:
        return {}
    lists = {p.stem.lower(): p for p in folders[0].glob("*.txt")}
    names = [n for n in ("train", "val", "test") if n in lists]
    if not {"train", "val"} & set(names) and "trainval" in lists:
        names = ["trainval", *names]
    split_of = {}
    for name in names:
        split = "train" if name == "trainval" else name
        for line in lists[name].read_text().splitlines():
            if line.strip():
                split_of[line.split()[0]] = split
    return split_of


def _path_split(path: Path, src: Path) -> str | None:
    for part in path.relative_to(src).parts[:-1]:
        if split := split_of_folder(part):
            return split
    return None


def read(src: Path) -> Source:
    """Read every VOC annotation under the folder `src`."""
    src = Path(src)
    if not src.is_dir():
        raise DatasetError(f"VOC source {src} is not a folder")
    images = images_under(src)
    by_name: dict[str, list[Path]] = {}
    by_stem: dict[str, list[Path]] = {}
    for image in images:
        by_name.setdefault(image.name.lower(), []).append(image)
        by_stem.setdefault(image.stem.lower(), []).append(image)
    source = Source(classes=[], samples=[])
    labelled: list[tuple[Path, Path, list]] = []
    for xml in sorted(src.rglob("*.xml")):
        try:
            root = _annotation(xml)
        except (ET.ParseError, OSError) as exc:
            source.skipped.append({"file": str(xml), "reason": f"not readable XML: {exc}"})
            continue
        if root is None:
            continue
        image = _find_image(xml, root.findtext("filename") or "", by_name, by_stem)
        if image is None:
            reason = f"image {root.findtext('filename')!r} not found under {src}"
            source.skipped.append({"file": str(xml), "reason": reason})
            continue
        labelled.append((xml, image, _objects(root, xml)))
    if not labelled:
        raise DatasetError(f"{src}: no Pascal VOC <annotation> XML file found")
    source.classes = sorted({name for _, _, objects in labelled for name, _ in objects})
    sets = _image_sets(src)
    boxes = 0
    for xml, image, objects in labelled:
        sample = Sample(id=image.stem, image=image)
        sample.split = sets.get(xml.stem) or sets.get(image.stem) or _path_split(xml, src)
        for name, (x0, y0, x1, y1) in objects:
            x0, y0, x1, y1 = x0 - 1, y0 - 1, x1 - 1, y1 - 1  # 1-based inclusive -> pixel index
            points = ((x0, y0), (x1, y0), (x1, y1), (x0, y1))
            sample.labels.append((source.classes.index(name) + 1, Polygon(points)))
            boxes += 1
        source.samples.append(sample)
    annotated = {image for _, image, _ in labelled}
    folders = {image.parent for image in annotated}
    for image in images:
        if image.parent in folders and image not in annotated:
            sample = Sample(id=image.stem, image=image, has_label_file=False)
            sample.split = sets.get(image.stem) or _path_split(image, src)
            source.samples.append(sample)
    if boxes:
        source.warnings.append(
            f"{boxes} VOC bounding box(es) drawn as filled boxes, not object outlines: "
            "segmentation learns boxes and its IoU is measured against boxes"
        )
    return source
