"""`mtqa data import`: YOLO, COCO, LabelMe, VOC and mask folders into the indexed-mask format.

Every fixture is written here into tmp_path; the written masks are compared pixel for pixel with
what the labels say, and every output is loaded with the project's own loader.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mtqa.data import DatasetError, build_datasets
from mtqa.data.bundle import neu_seg_path
from mtqa.data.importers import FORMATS, import_dataset
from mtqa.data.importers.base import Sample
from mtqa.data.importers.rle import decode_rle, encode_rle
from mtqa.data.naming import class_names
from mtqa.data.splits import stratified_splits
from mtqa_cli.commands.data import IMPORT_FORMATS
from mtqa_cli.main import main

KOLEKTOR = neu_seg_path().parent / "kolektor_sdd_yolo"


def _image(path: Path, w: int, h: int, value: int = 90) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((h, w, 3), value, np.uint8)).save(path)
    return path


def _mask_of(out: Path, split: str, image_id: str) -> np.ndarray:
    return np.asarray(Image.open(out / "masks" / split / f"{image_id}.png"))


def _split_of(out: Path, image_id: str) -> str:
    return next(p.parent.name for p in (out / "masks").rglob(f"{image_id}.png"))


# --- YOLO ---------------------------------------------------------------------------------


def _yolo(root: Path, names="{0: scratch, 1: dent}") -> Path:
    root.mkdir(parents=True)
    (root / "data.yaml").write_text(
        f"path: gone_folder\ntrain: images/train\nval: images/val\nnames: {names}\n"
    )
    for split, stem in [("train", "a"), ("train", "b"), ("train", "c"), ("val", "d")]:
        _image(root / "images" / split / f"{stem}.png", 40, 20)
    labels = root / "labels"
    (labels / "train").mkdir(parents=True)
    (labels / "val").mkdir(parents=True)
    # a: the right half, its polygon on the image border (x = 1.0, y = 0 .. 1)
    (labels / "train" / "a.txt").write_text("0 0.5 0.0 1.0 0.0 1.0 1.0 0.5 1.0\n")
    (labels / "train" / "b.txt").write_text("")  # empty: defect-free
    # c: no label file at all (defect-free, reported); d: a detection box of class 1
    (labels / "val" / "d.txt").write_text("1 0.25 0.5 0.5 0.5\n")
    return root


def test_yolo_polygon_on_the_border_empty_and_missing_labels_and_boxes(tmp_path):
    src, out = _yolo(tmp_path / "src"), tmp_path / "out"
    report = import_dataset("yolo", src, out)
    assert report["classes"] == ["scratch", "dent"]
    assert json.loads((out / "classes.json").read_text())["classes"] == ["scratch", "dent"]
    assert report["counts"] == {"train": 3, "val": 1, "all": 4}
    assert report["split_origin"].startswith("kept from the source")
    a = _mask_of(out, "train", "a")
    assert a.shape == (20, 40)
    assert (a[:, 20:] == 1).all() and (a[:, :20] == 0).all()  # last row and column included
    assert not _mask_of(out, "train", "b").any() and not _mask_of(out, "train", "c").any()
    d = _mask_of(out, "val", "d")
    assert (d[5:16, 0:21] == 2).all() and d.sum() == 2 * 11 * 21
    assert report["images_without_label_file"]["count"] == 1
    assert report["images_without_label_file"]["files"][0].endswith("c.png")
    assert report["defect_free_images"] == {"train": 2, "val": 0, "all": 2}
    assert report["images_per_class"]["scratch"] == {"train": 1, "val": 0, "all": 1}
    assert report["defect_regions"]["per_class"]["scratch"]["area_px"]["max"] == 400
    assert report["defect_regions"]["per_class"]["scratch"]["area_fraction"]["max"] == 0.5
    assert report["image_width"]["p50"] == 40 and report["image_height"]["max"] == 20
    assert any("detection box" in w for w in report["warnings"])
    assert any("gone_folder" in n for n in report["notes"])
    assert (out / "images" / "train" / "a.png").read_bytes() == (
        src / "images" / "train" / "a.png"
    ).read_bytes()
    bundle = build_datasets(str(out), 32, augment=False)
    assert bundle.classes == ["scratch", "dent"]
    assert bundle.source["sizes"]["val"] == 1


def test_unreadable_images_are_skipped_with_the_reason(tmp_path):
    src, out = _yolo(tmp_path / "src"), tmp_path / "out"
    (src / "images" / "train" / "junk.png").write_bytes(b"not an image")
    good = (src / "images" / "train" / "a.png").read_bytes()
    (src / "images" / "train" / "cut.png").write_bytes(good[: len(good) // 2])
    report = import_dataset("yolo", src, out)
    reasons = {Path(s["file"]).name: s["reason"] for s in report["skipped"]}
    assert set(reasons) == {"junk.png", "cut.png"}
    assert all(r.startswith("cannot read image") for r in reasons.values())
    assert report["counts"]["train"] == 3
    assert not list((out / "images").rglob("junk*")) and not list((out / "masks").rglob("cut*"))
    build_datasets(str(out), 32, augment=False)


def test_exif_rotated_photo_is_written_upright_with_its_labels(tmp_path):
    src, out = _yolo(tmp_path / "src"), tmp_path / "out"
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 40x20, shown turned 90 degrees clockwise: 20 wide, 40 high
    stored = np.zeros((20, 40, 3), np.uint8)
    stored[:, :4] = 255  # the stored left edge becomes the upright top edge
    Image.fromarray(stored).save(src / "images" / "train" / "phone.jpg", exif=exif)
    (src / "labels" / "train" / "phone.txt").write_text("0 0 0 1 0 1 0.25 0 0.25\n")  # top
    report = import_dataset("yolo", src, out)
    image = np.asarray(Image.open(out / "images" / "train" / "phone.png"))
    assert image.shape == (40, 20, 3) and image[:4].mean() > 200 and image[8:].mean() < 50
    mask = _mask_of(out, "train", "phone")
    assert mask.shape == (40, 20) and (mask[:10] == 1).all() and not mask[11:].any()
    assert any("EXIF orientation" in n for n in report["notes"])
    build_datasets(str(out), 32, augment=False)


def test_yolo_class_id_out_of_range_names_the_file_and_line(tmp_path):
    src = _yolo(tmp_path / "src", names="[scratch]")
    (src / "labels" / "train" / "a.txt").write_text("0 0.1 0.1 0.2 0.1 0.2 0.2\n3 0 0 1 0 1 1\n")
    with pytest.raises(DatasetError, match=r"a\.txt line 2: class id 3 is out of range"):
        import_dataset("yolo", src, tmp_path / "out")


def test_yolo_image_lists_and_roboflow_relative_folders(tmp_path):
    root = tmp_path / "rf"
    for split in ("train", "valid", "test"):
        _image(root / split / "images" / f"{split}.jpg", 16, 16)
        (root / split / "labels").mkdir()
        (root / split / "labels" / f"{split}.txt").write_text("0 0 0 0.5 0 0.5 0.5 0 0.5\n")
    (root / "lists").mkdir()
    (root / "lists" / "test.txt").write_text("../test/images/test.jpg\n")
    (root / "data.yaml").write_text(
        "train: ../rf/train/images\nval: valid/images\ntest: lists/test.txt\nnames: [dent]\n"
    )
    report = import_dataset("yolo", root, tmp_path / "all")
    assert report["counts"] == {"train": 1, "val": 1, "test": 1, "all": 3}
    assert _mask_of(tmp_path / "all", "test", "test")[:9, :9].all()


def test_yolo_names_dict_needs_consecutive_ids(tmp_path):
    src = _yolo(tmp_path / "src", names="{0: scratch, 2: dent}")
    with pytest.raises(DatasetError, match="ids must be 0..1"):
        import_dataset("yolo", src, tmp_path / "out")


# --- COCO ---------------------------------------------------------------------------------


def _uncompressed_counts(mask: np.ndarray) -> list[int]:
    """COCO's uncompressed RLE written by hand: column-major runs, background first."""
    flat = mask.T.ravel().astype(np.uint8)
    counts, value, run = [], 0, 0
    for pixel in flat:
        if pixel != value:
            counts.append(run)
            value, run = pixel, 0
        run += 1
    return [*counts, run]


def test_rle_decodes_uncompressed_and_compressed_counts_to_the_right_pixels():
    # h=3, w=2, column-major [0, 1, 1, 0, 0, 1]: pixels (1,0), (2,0) and (2,1)
    mask = decode_rle({"size": [3, 2], "counts": [1, 2, 2, 1]}, "test")
    assert mask.tolist() == [[False, False], [True, False], [True, True]]
    rng = np.random.default_rng(0)
    blob = rng.random((17, 23)) > 0.6
    assert (decode_rle(encode_rle(blob), "test") == blob).all()
    assert (decode_rle({"size": [17, 23], "counts": _uncompressed_counts(blob)}, "t") == blob).all()
    with pytest.raises(DatasetError, match="bad RLE"):
        decode_rle({"size": [3, 2], "counts": [1, 2]}, "test")
    for bad in ("", "garbage!!"):
        with pytest.raises(DatasetError, match="bad RLE"):
            decode_rle({"size": [3, 2], "counts": bad}, "test")


def test_coco_polygons_and_both_rle_forms(tmp_path):
    src, out = tmp_path / "export", tmp_path / "out"
    for name in ("p", "r", "u", "free"):
        _image(src / "images" / f"{name}.png", 30, 24)
    blob = np.zeros((24, 30), bool)
    blob[3:9, 4:20] = True
    ring = np.zeros((24, 30), bool)
    ring[10:20, 10:12] = True
    coco = {
        # ids out of order: classes follow id order (1 crack, 3 stain); 7 is Roboflow's umbrella
        "categories": [
            {"id": 3, "name": "stain", "supercategory": "defects"},
            {"id": 1, "name": "crack", "supercategory": "defects"},
            {"id": 7, "name": "defects", "supercategory": "none"},
        ],
        "images": [
            {"id": i, "file_name": f"images/{n}.png", "width": 30, "height": 24}
            for i, n in enumerate(("p", "r", "u", "free"), start=1)
        ],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 3, "segmentation": [[0, 0, 29, 0, 29, 23]]},
            {"id": 2, "image_id": 2, "category_id": 1, "segmentation": encode_rle(blob)},
            {
                "id": 3,
                "image_id": 3,
                "category_id": 3,
                "iscrowd": 1,
                "segmentation": {"size": [24, 30], "counts": _uncompressed_counts(ring)},
            },
            {"id": 4, "image_id": 3, "category_id": 1, "segmentation": encode_rle(blob)},
        ],
    }
    (src / "annotations").mkdir(parents=True)
    (src / "annotations" / "instances_default.json").write_text(json.dumps(coco))
    report = import_dataset("coco", src, out, seed=1)
    assert report["classes"] == ["crack", "stain"]
    assert report["counts"]["all"] == 4 and report["defect_free_images"]["all"] == 1
    p = _mask_of(out, _split_of(out, "p"), "p")
    assert p[0, 29] == 2 and p[23, 29] == 2 and p[23, 0] == 0 and set(np.unique(p)) == {0, 2}
    assert (_mask_of(out, _split_of(out, "r"), "r") == np.where(blob, 1, 0)).all()
    expected_u = np.where(ring, 2, np.where(blob, 1, 0))
    assert (_mask_of(out, _split_of(out, "u"), "u") == expected_u).all()
    assert not _mask_of(out, _split_of(out, "free"), "free").any()
    assert report["split_origin"].startswith("seeded")
    build_datasets(str(out), 32, augment=False)


def test_coco_split_files_keep_their_splits(tmp_path):
    src = tmp_path / "roboflow"
    for split in ("train", "valid"):
        _image(src / split / f"{split}_0.jpg", 16, 16)
        doc = {
            "categories": [{"id": 0, "name": "dent"}],
            "images": [{"id": 0, "file_name": f"{split}_0.jpg", "width": 16, "height": 16}],
            "annotations": [
                {"id": 0, "image_id": 0, "category_id": 0, "bbox": [2, 2, 4, 4], "area": 16}
            ],
        }
        (src / split / "_annotations.coco.json").write_text(json.dumps(doc))
    report = import_dataset("coco", src, tmp_path / "out")
    assert report["counts"] == {"train": 1, "val": 1, "all": 2}
    assert any("without segmentation" in w for w in report["warnings"])
    assert _mask_of(tmp_path / "out", "val", "valid_0")[2:7, 2:7].all()


# --- LabelMe ------------------------------------------------------------------------------


def _png_b64(w: int, h: int) -> str:
    buf = io.BytesIO()
    Image.fromarray(np.full((h, w, 3), 50, np.uint8)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def test_labelme_shapes_relative_paths_embedded_images_and_unlabelled_images(tmp_path):
    src, out = tmp_path / "lm", tmp_path / "out"
    _image(src / "imgs" / "a.jpg", 40, 30)
    _image(src / "unlabelled.png", 12, 10)
    shapes = [
        {"label": "dent", "shape_type": "rectangle", "points": [[2, 3], [8, 9]]},
        {"label": "crack", "shape_type": "line", "points": [[20, 15], [35, 15]]},
        {"label": "dent", "shape_type": "circle", "points": [[30, 5], [33, 5]]},
        {"label": "crack", "shape_type": "polygon", "points": [[0, 20], [5, 20], [5, 29]]},
    ]
    (src / "json").mkdir(parents=True)
    doc = {"shapes": shapes, "imagePath": "../imgs/a.jpg", "imageData": None}
    (src / "json" / "a.json").write_text(json.dumps(doc))
    embedded = {
        "shapes": [{"label": "dent", "shape_type": "polygon", "points": [[0, 0], [3, 0], [3, 3]]}],
        "imagePath": "missing.png",
        "imageData": _png_b64(9, 7),
    }
    (src / "b.json").write_text(json.dumps(embedded))
    (src / "broken.json").write_text("{not json")
    _image(src / "c.png", 10, 10)  # saved on another machine: found beside the JSON by its name
    doc_c = {"shapes": [], "imagePath": "C:\\Users\\me\\c.png"}
    (src / "c.json").write_text(json.dumps(doc_c))
    report = import_dataset("labelme", src, out)
    assert report["classes"] == ["crack", "dent"]  # sorted labels
    a = _mask_of(out, _split_of(out, "a"), "a")
    assert a.shape == (30, 40)
    assert (a[3:10, 2:9] == 2).all() and a[2, 2] == 0 and a[10, 8] == 0  # rectangle
    assert (a[14:17, 21:35] == 1).all() and a[12, 27] == 0 and a[18, 27] == 0  # 3 px line
    assert a[5, 30] == 2 and a[5, 27] == 2 and a[5, 35] == 0  # circle of radius 3
    assert a[28, 5] == 1 and a[28, 0] == 0  # polygon
    b_split = _split_of(out, "b")
    assert Image.open(out / "images" / b_split / "b.png").size == (9, 7)
    assert _mask_of(out, b_split, "b")[0, 3] == 2
    assert report["images_without_label_file"]["count"] == 1
    assert not _mask_of(out, _split_of(out, "unlabelled"), "unlabelled").any()
    assert report["counts"]["all"] == 4  # a, b, c, unlabelled
    assert [s["file"].endswith("broken.json") for s in report["skipped"]] == [True]
    build_datasets(str(out), 32, augment=False)


def test_labelme_label_outside_labels_txt_is_an_error(tmp_path):
    src = tmp_path / "lm"
    _image(src / "a.png", 8, 8)
    (src / "labels.txt").write_text("__ignore__\n_background_\nscratch\n")
    doc = {
        "shapes": [{"label": "dent", "points": [[0, 0], [3, 0], [3, 3]]}],
        "imagePath": "a.png",
    }
    (src / "a.json").write_text(json.dumps(doc))
    with pytest.raises(DatasetError, match="label 'dent' is not in"):
        import_dataset("labelme", src, tmp_path / "out")


# --- folders of binary masks --------------------------------------------------------------


def _mask_file(path: Path, box: tuple[int, int, int, int] | None, w: int = 20, h: int = 16):
    mask = np.zeros((h, w), np.uint8)
    if box:
        y0, y1, x0, x1 = box
        mask[y0:y1, x0:x1] = 255
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(mask).save(path)


# --- Pascal VOC -----------------------------------------------------------------------------


def _voc_xml(path: Path, filename: str, objects: list[tuple[str, tuple[int, ...]]]) -> None:
    body = "".join(
        f"<object><name>{name}</name><difficult>0</difficult><bndbox><xmin>{x0}</xmin>"
        f"<ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"
        for name, (x0, y0, x1, y1) in objects
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"<annotation><filename>{filename}</filename>{body}</annotation>")


def test_voc_boxes_splits_from_folders_and_images_found_by_name(tmp_path):
    # NEU-DET's layout: train|validation / annotations/*.xml + images/<class>/*.jpg
    src, out = tmp_path / "NEU-DET", tmp_path / "out"
    for split, stem in [("train", "crazing_1"), ("train", "pits_2"), ("validation", "pits_3")]:
        _image(src / split / "images" / stem.split("_")[0] / f"{stem}.jpg", 40, 30)
    _voc_xml(
        src / "train" / "annotations" / "crazing_1.xml",
        "crazing_1.jpg",
        [("crazing", (3, 4, 10, 8))],
    )
    _voc_xml(
        src / "train" / "annotations" / "pits_2.xml",
        "pits_2",
        [("pits", (1, 1, 40, 30)), ("crazing", (5, 5, 6, 6))],
    )
    _voc_xml(
        src / "validation" / "annotations" / "pits_3.xml",
        "C:\\data\\pits_3.jpg",
        [("pits", (20, 10, 25, 12))],
    )
    _image(src / "train" / "images" / "crazing" / "clean_4.jpg", 40, 30)  # no XML: defect-free
    (src / "train" / "annotations" / "broken.xml").write_text("<annotation><filename>")
    (src / "other.xml").write_text("<config><a>1</a></config>")  # not VOC: ignored
    _voc_xml(src / "train" / "annotations" / "lost.xml", "nowhere.jpg", [("pits", (1, 1, 2, 2))])
    report = import_dataset("voc", src, out)
    assert report["classes"] == ["crazing", "pits"]
    assert _split_of(out, "crazing_1") == "train" and _split_of(out, "pits_3") == "val"
    a = _mask_of(out, "train", "crazing_1")
    assert a.shape == (30, 40)
    # VOC's xmin 3 .. xmax 10 (1-based, inclusive) are pixel columns 2 .. 9
    assert (a[3:8, 2:10] == 1).all() and not a[:, :2].any() and not a[:, 10:].any()
    assert not a[:3].any() and not a[8:].any()
    b = _mask_of(out, "train", "pits_2")
    assert b[4, 4] == 2 and b[29, 39] == 2  # the later class wins where boxes overlap
    assert (_mask_of(out, "val", "pits_3")[9:12, 19:25] == 2).all()
    assert not _mask_of(out, _split_of(out, "clean_4"), "clean_4").any()
    skipped = sorted(Path(s["file"]).name for s in report["skipped"])
    assert skipped == ["broken.xml", "lost.xml"]
    assert any("drawn as filled boxes" in w for w in report["warnings"])
    build_datasets(str(out), 32, augment=False)


def test_voc_image_sets_give_the_splits_and_a_bad_box_names_the_file(tmp_path):
    src = tmp_path / "VOC"
    for stem in ("a", "b", "c"):
        _image(src / "JPEGImages" / f"{stem}.jpg", 20, 20)
        _voc_xml(src / "Annotations" / f"{stem}.xml", f"{stem}.jpg", [("dent", (2, 2, 5, 5))])
    (src / "ImageSets" / "Main").mkdir(parents=True)
    (src / "ImageSets" / "Main" / "trainval.txt").write_text("a\nb\n")
    (src / "ImageSets" / "Main" / "test.txt").write_text("c\n")
    report = import_dataset("voc", src, tmp_path / "out")
    assert report["counts"]["all"] == 3
    assert _split_of(tmp_path / "out", "c") == "test"
    assert {_split_of(tmp_path / "out", s) for s in "ab"} <= {"train", "val"}
    _voc_xml(src / "Annotations" / "d.xml", "a.jpg", [("dent", (5, 5, 2, 2))])
    with pytest.raises(DatasetError, match=r"d\.xml: object 1 \(dent\): xmax/ymax below"):
        import_dataset("voc", src, tmp_path / "out2")


def test_class_names_strip_a_shared_prefix_and_lower_case():
    assert class_names(["MT_Blowhole", "MT_Break", "MT_Free"]) == {
        "MT_Blowhole": "blowhole",
        "MT_Break": "break",
        "MT_Free": "free",
    }
    assert class_names(["Scratch"]) == {"Scratch": "scratch"}
    assert class_names(["crack", "crease"]) == {"crack": "crack", "crease": "crease"}


def test_masks_magnetic_tile_layout_with_empty_mask_folder(tmp_path):
    src, out = tmp_path / "mt", tmp_path / "out"
    for folder, box in [("MT_Blowhole", (2, 5, 2, 5)), ("MT_Break", (0, 16, 10, 12))]:
        for i in range(4):
            _image(src / folder / "Imgs" / f"{folder[3:]}_{i}.jpg", 20, 16)
            _mask_file(src / folder / "Imgs" / f"{folder[3:]}_{i}.png", box)
    for i in range(6):  # defect-free folder whose name is no hint: its masks are all empty
        _image(src / "MT_Plain" / "Imgs" / f"plain_{i}.jpg", 20, 16)
        _mask_file(src / "MT_Plain" / "Imgs" / f"plain_{i}.png", None)
    report = import_dataset("masks", src, out, seed=3)
    assert report["classes"] == ["blowhole", "break"]
    assert any("'plain'" in n and "all 6 masks are empty" in n for n in report["notes"])
    assert report["counts"]["all"] == 14 and report["defect_free_images"]["all"] == 6
    b = _mask_of(out, _split_of(out, "Blowhole_0"), "Blowhole_0")
    assert (b[2:5, 2:5] == 1).all() and b.sum() == 9
    k = _mask_of(out, _split_of(out, "Break_1"), "Break_1")
    assert (k[:, 10:12] == 2).all() and k.sum() == 2 * 32
    assert report["images_per_class"]["blowhole"]["val"] >= 1
    assert report["images_per_class"]["break"]["val"] >= 1
    build_datasets(str(out), 16, augment=False)


def test_masks_good_folder_and_mask_suffix_layout(tmp_path):
    src, out = tmp_path / "flat", tmp_path / "out"
    for i in range(3):
        _image(src / "good" / f"{i}.png", 20, 16)
        _image(src / "Scratch" / f"{i}.png", 20, 16)
        _mask_file(src / "Scratch" / f"{i}_mask.png", (1, 3, 0, 20))
    _image(src / "Scratch" / "nomask.png", 20, 16)
    _image(src / "Scratch" / "bad.png", 20, 16)
    (src / "Scratch" / "bad_mask.png").write_bytes(b"broken")
    report = import_dataset("masks", src, out)
    assert [Path(s["file"]).name for s in report["skipped"]] == ["bad.png"]
    assert "cannot read mask" in report["skipped"][0]["reason"]
    assert report["classes"] == ["scratch"]
    assert any("'good'" in n for n in report["notes"])
    assert report["images_without_label_file"]["count"] == 1  # Scratch/nomask.png
    assert report["counts"]["all"] == 7
    ids = sorted(p.stem for p in (out / "masks").rglob("*.png"))
    assert ids == ["Scratch_0", "Scratch_1", "Scratch_2", "good_0", "good_1", "good_2", "nomask"]
    m = _mask_of(out, _split_of(out, "Scratch_1"), "Scratch_1")
    assert (m[1:3] == 1).all() and m.sum() == 40


def test_masks_shared_images_overlap_later_class_wins(tmp_path):
    src, out = tmp_path / "shared", tmp_path / "out"
    for i in range(4):
        _image(src / "images" / f"im{i}.png", 20, 16)
    _mask_file(src / "masks" / "Defect_Crack" / "im0.png", (0, 8, 0, 20))
    _mask_file(src / "masks" / "Defect_Stain" / "im0.png", (4, 12, 0, 20))
    _mask_file(src / "masks" / "Defect_Stain" / "im1_mask.png", (0, 2, 0, 2))
    report = import_dataset("masks", src, out)
    assert report["classes"] == ["crack", "stain"]
    m = _mask_of(out, _split_of(out, "im0"), "im0")
    assert (m[0:4] == 1).all() and (m[4:12] == 2).all() and (m[12:] == 0).all()
    assert report["overlap"] == {"pixels": 4 * 20, "images": 1}
    assert _mask_of(out, _split_of(out, "im1"), "im1").sum() == 2 * 4
    assert report["defect_free_images"]["all"] == 2


def test_masks_single_class_images_and_masks_folders(tmp_path):
    src, out = tmp_path / "kaggle", tmp_path / "out"
    for i in range(3):
        _image(src / "images" / f"{i}.jpg", 20, 16)
    _mask_file(src / "masks" / "0.png", (0, 4, 0, 4))
    _mask_file(src / "masks" / "1.png", None)
    report = import_dataset("masks", src, out)
    assert report["classes"] == ["defect"]
    assert report["images_per_class"]["defect"]["all"] == 1
    assert report["defect_free_images"]["all"] == 2  # 1.png is empty, 2.jpg has no mask
    assert [Path(f).name for f in report["images_without_label_file"]["files"]] == ["2.jpg"]
    assert _mask_of(out, _split_of(out, "0"), "0").sum() == 16


def test_masks_mvtec_layout(tmp_path):
    src, out = tmp_path / "bottle", tmp_path / "out"
    for i in range(3):
        _image(src / "train" / "good" / f"{i:03d}.png", 20, 16)
        _image(src / "test" / "good" / f"{i:03d}.png", 20, 16)
        _image(src / "test" / "broken" / f"{i:03d}.png", 20, 16)
        _mask_file(src / "ground_truth" / "broken" / f"{i:03d}_mask.png", (4, 8, 4, 8))
    report = import_dataset("masks", src, out)
    assert report["classes"] == ["broken"]
    assert report["counts"]["all"] == 9 and report["defect_free_images"]["all"] == 6
    assert report["split_origin"].startswith("seeded")
    m = _mask_of(out, _split_of(out, "broken_001"), "broken_001")
    assert (m[4:8, 4:8] == 1).all() and m.sum() == 16
    ids = {p.stem for p in (out / "masks").rglob("*.png")}
    assert {"train_good_000", "test_good_000", "broken_000"} <= ids and len(ids) == 9


# --- splits, output folder, CLI -----------------------------------------------------------


def test_stratified_splits_are_seeded_and_keep_every_class_in_val():
    from mtqa.data.importers.base import Polygon

    box = Polygon(((0, 0), (1, 0), (1, 1)))
    samples = [Sample(id=f"free{i}", image=Path("x")) for i in range(60)]
    samples += [Sample(id=f"a{i}", image=Path("x"), labels=[(1, box)]) for i in range(30)]
    samples += [Sample(id=f"b{i}", image=Path("x"), labels=[(2, box)]) for i in range(3)]
    samples += [Sample(id=f"ab{i}", image=Path("x"), labels=[(1, box), (2, box)]) for i in range(2)]
    classes = {s.id: s.classes_present() for s in samples}
    first = stratified_splits(classes, 7, 0.15, 0.15)
    assert first == stratified_splits(dict(reversed(classes.items())), 7, 0.15, 0.15)
    assert first != stratified_splits(classes, 8, 0.15, 0.15)

    def count(prefix, split):
        return sum(1 for i, s in first.items() if i.rstrip("0123456789") == prefix and s == split)

    assert (count("free", "val"), count("free", "test"), count("free", "train")) == (9, 9, 42)
    assert (count("a", "val"), count("a", "test")) == (4, 4)  # round(30 * 0.15) = 4
    # class 2 is rarest: its stratum (b* and ab*, 5 images) keeps one in val and one in test
    assert count("b", "val") + count("ab", "val") >= 1
    assert count("b", "test") + count("ab", "test") >= 1


def test_import_refuses_a_non_empty_output_and_unknown_format(tmp_path):
    src = _yolo(tmp_path / "src")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("x")
    with pytest.raises(DatasetError, match="not an empty folder"):
        import_dataset("yolo", src, tmp_path / "out")
    with pytest.raises(DatasetError, match="unknown import format"):
        import_dataset("kitti", src, tmp_path / "out2")
    assert IMPORT_FORMATS == FORMATS


def test_cli_import_then_info(tmp_path, capsys):
    src, out = _yolo(tmp_path / "src"), tmp_path / "out"
    trial = ["--out", str(tmp_path / "trial"), "--limit", "2", "--json"]
    assert main(["data", "import", "--from", "yolo", str(src), *trial]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["limit"] == 2 and report["counts"] == {"train": 1, "val": 1, "all": 2}
    rc = main(["data", "import", "--from", "yolo", str(src), "--out", str(out), "--seed", "2"])
    text = capsys.readouterr().out
    assert rc == 0
    assert "classes: scratch, dent" in text and "train 3 (2 defect-free)" in text
    assert "images without a label file" in text and "report.json" in text
    assert json.loads((out / "report.json").read_text())["seed"] == 2
    assert main(["data", "info", str(out), "--image-size", "32"]) == 0
    assert "classes: scratch, dent" in capsys.readouterr().out
    (src / "labels" / "val" / "d.txt").write_text("9 0 0 1 0 1 1\n")
    rc = main(["data", "import", "--from", "yolo", str(src), "--out", str(tmp_path / "o2")])
    assert rc == 3  # bad input data
    assert "d.txt line 1: class id 9 is out of range" in capsys.readouterr().err


@pytest.mark.skipif(not KOLEKTOR.is_dir(), reason=f"KolektorSDD not found at {KOLEKTOR}")
def test_kolektor_sdd_yolo_imports_and_loads(tmp_path, capsys):
    out = tmp_path / "kolektor"
    rc = main(
        ["data", "import", "--from", "yolo", str(KOLEKTOR), "--out", str(out)]
        + ["--limit", "20", "--json"]
    )
    assert rc == 0
    report = json.loads(capsys.readouterr().out)
    assert report["classes"] == ["defect"]
    assert report["counts"]["all"] == 20 and set(report["counts"]) == {"train", "val", "all"}
    assert report["skipped"] == [] and report["images_without_label_file"]["count"] == 0
    assert report["image_width"]["max"] == 500 and report["image_height"]["min"] > 1200
    bundle = build_datasets(str(out), 64, augment=False)
    assert bundle.classes == ["defect"]
    assert len(bundle.train) + len(bundle.val) == 20
