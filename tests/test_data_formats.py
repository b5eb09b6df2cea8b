"""On-disk loaders (indexed-mask, MVTec-AD, class folders, CSV), the NEU-Seg preset and shared
preprocessing."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from mtqa.data import (
    build_datasets,
    class_stats,
    iter_raw,
    load_image,
    neu_seg_path,
    preprocess_image,
)
from mtqa.data.grading import grade_from_mask, grade_from_presence
from mtqa.data.preprocess import normalise


def test_indexed_dataset_loads_with_consistent_labels(synth_dataset_dir):
    bundle = build_datasets(str(synth_dataset_dir), 32, augment=False)
    assert bundle.classes == ["scratch", "crack", "stain", "deformation"]
    assert bundle.source["kind"] == "indexed"
    assert bundle.source["sizes"] == {"train": 6, "val": 3, "test": 3}
    for dataset in (bundle.train, bundle.val, bundle.test):
        for i in range(len(dataset)):
            item = dataset[i]
            assert bool(item["has_mask"])
            assert torch.equal(item["presence"], item["mask"].flatten(1).amax(1))
            assert item["mask"].sum(0).max() <= 1  # one class per pixel on disk
            rule_grade = grade_from_mask(bundle.grade_rule, bundle.classes, item["mask"].numpy())
            assert int(item["grade"]) == rule_grade


def test_disk_set_equals_generator_output(synth_dataset_dir):
    on_disk = build_datasets(str(synth_dataset_dir), 32, augment=False)
    _, image, mask, presence = on_disk.val.raw(0)
    from mtqa.data.synth import SynthConfig, SynthGenerator

    sample = SynthGenerator(SynthConfig(size=32), seed=0).generate(1, 0, 0)
    assert np.array_equal(image, sample.image)
    assert np.array_equal(mask, sample.index_mask)
    assert np.array_equal(presence, np.isin(np.arange(1, 5), sample.index_mask))


def test_preprocess_matches_dataset_image(synth_dataset_dir, tmp_path):
    bundle = build_datasets(str(synth_dataset_dir), 24, augment=False)  # 32 px files -> resized
    record = bundle.train.records[0]
    expected = preprocess_image(load_image(record.image), 24, bundle.mean, bundle.std)
    assert expected.shape == (3, 24, 24) and expected.dtype == np.float32
    assert np.array_equal(bundle.train[0]["image"].numpy(), expected)
    # Grayscale input is repeated to RGB identically.
    gray = np.asarray(Image.open(record.image).convert("L"))
    rgb = np.repeat(gray[:, :, None], 3, axis=2)
    out = preprocess_image(gray, 24, bundle.mean, bundle.std)
    assert np.array_equal(out, preprocess_image(rgb, 24, bundle.mean, bundle.std))


def test_class_subset_remaps_mask_indices(synth_dataset_dir):
    full = build_datasets(str(synth_dataset_dir), 32, augment=False)
    sub = build_datasets(str(synth_dataset_dir), 32, augment=False, classes=["stain", "scratch"])
    for i in range(len(full.train)):
        a, b = full.train[i], sub.train[i]
        assert torch.equal(b["mask"][0], a["mask"][2]) and torch.equal(b["mask"][1], a["mask"][0])


def test_mvtec_folder_loads(dataset_factory):
    root = dataset_factory("mvtec")
    bundle = build_datasets(str(root), 16, augment=False)
    assert bundle.classes == ["crack", "hole"] and bundle.source["kind"] == "mvtec"
    ids = {
        s: [d.records[i].id for i in range(len(d))]
        for s, d in (("train", bundle.train), ("val", bundle.val), ("test", bundle.test))
    }
    assert sum(len(v) for v in ids.values()) == 14
    assert len(set().union(*ids.values())) == 14  # every image in exactly one split
    # MVTec keeps its defects in test; a supervised network must see them in train too.
    for split in ("train", "val", "test"):
        assert {i.split("/")[0] for i in ids[split]} >= {"crack", "hole"}, split
    again = build_datasets(str(root), 16, augment=False)
    assert [r.id for r in again.val.records] == ids["val"]  # deterministic split
    for dataset in (bundle.val, bundle.test):
        for i in range(len(dataset)):
            item, rid = dataset[i], dataset.records[i].id
            assert bool(item["has_mask"])
            defect = rid.split("/")[0]
            expected = [float(defect == c) for c in bundle.classes]
            assert item["presence"].tolist() == expected


def _image_folders(root, layout):
    """Class folders of grey JPEGs: `layout` maps a relative folder to its image count."""
    rng = np.random.default_rng(3)
    for folder, n in layout.items():
        (root / folder).mkdir(parents=True)
        for i in range(n):
            pixels = rng.integers(0, 255, (20, 28), dtype=np.uint8)
            Image.fromarray(pixels).save(root / folder / f"cast_{i}.jpeg")
    return root


def test_class_folders_load_with_image_level_labels(tmp_path):
    from mtqa.data.formats import detect

    # no split folders: pooled and split stratified; "ok_front" is defect-free by its first word
    root = _image_folders(tmp_path / "a", {"ok_front": 20, "MT_Crack": 10, "MT_Pit": 7})
    assert detect(root) == "folders"
    bundle = build_datasets(str(root), 32, augment=False)
    assert bundle.classes == ["crack", "pit"] and bundle.source["kind"] == "folders"
    assert sum(bundle.source["sizes"].values()) == 37
    for dataset in (bundle.train, bundle.val, bundle.test):
        folders = {r.id.split("/")[0] for r in dataset.records}
        assert folders == {"ok_front", "MT_Crack", "MT_Pit"}  # every class in every split
        for i in range(len(dataset)):
            item, folder = dataset[i], dataset.records[i].id.split("/")[0]
            assert not bool(item["has_mask"])
            expected = [float(folder == "MT_Crack"), float(folder == "MT_Pit")]
            assert item["presence"].tolist() == expected
    # split folders (the casting set's train/ and test/, no val, no ground_truth/: not MVTec)
    layout = {"train/good": 12, "train/def_front": 9, "test/good": 3, "test/def_front": 2}
    split = _image_folders(tmp_path / "b", layout)
    assert detect(split) == "folders"
    bundle = build_datasets(str(split), 32, augment=False)
    assert bundle.classes == ["def_front"]
    assert bundle.source["sizes"]["test"] == 5  # kept as given
    assert bundle.source["sizes"]["train"] + bundle.source["sizes"]["val"] == 21
    assert any(r.id.startswith("train/def_front") for r in bundle.val.records)  # val carved
    # only defect-free folders: a clear error
    from mtqa.data import DatasetError

    with pytest.raises(DatasetError, match="no defect class folder"):
        build_datasets(str(_image_folders(tmp_path / "c", {"good": 3, "ok": 3})), 32)


def test_label_folders_are_sent_to_the_importer_not_read_as_classes(tmp_path):
    from mtqa.data import DatasetError
    from mtqa.data.formats import detect

    voc = _image_folders(tmp_path / "voc", {"JPEGImages": 2})
    (voc / "Annotations").mkdir()
    (voc / "Annotations" / "cast_0.xml").write_text("<annotation/>")
    yolo = _image_folders(tmp_path / "yolo", {"images/train": 2})
    (yolo / "data.yaml").write_text("names: [dent]\ntrain: images/train\n")
    masks = _image_folders(tmp_path / "masks", {"crack": 2, "crack/masks": 2})
    coco = _image_folders(tmp_path / "coco", {"train": 2})
    (coco / "train" / "_annotations.coco.json").write_text('{"images": [], "annotations": []}')
    for root, fmt in ((voc, "voc"), (yolo, "yolo"), (masks, "masks"), (coco, "coco")):
        with pytest.raises(DatasetError, match=f"mtqa data import --from {fmt} "):
            detect(root)
    # a metadata JSON beside class folders is not a label file
    plain = _image_folders(tmp_path / "plain", {"ok": 2, "dent": 2})
    (plain / "dataset-metadata.json").write_text('{"title": "castings"}')
    assert detect(plain) == "folders"


def test_skewed_class_folders_are_drawn_class_balanced(tmp_path):
    from mtqa.planning import fingerprint, make_plan

    root = _image_folders(tmp_path / "a", {"ok": 40, "crack": 6, "pit": 6})
    plan = make_plan(fingerprint(str(root)))
    size = plan.overrides["data.image_size"]
    assert plan.overrides["data.crop_size"] == size  # whole inputs, class-balanced
    train = build_datasets(
        str(root), size, crop_size=size, defect_crop_share=1.0, epoch_items=16
    ).train
    items = [train[i] for i in range(len(train))]
    assert all(not bool(it["has_mask"]) and it["presence"].sum() == 1 for it in items)
    assert {int(it["presence"].argmax()) for it in items} == {0, 1}  # both classes drawn


def test_a_missing_val_split_is_carved_stratified(tmp_path):
    root = tmp_path / "d"
    (root / "images" / "train").mkdir(parents=True)
    (root / "masks" / "train").mkdir(parents=True)
    (root / "classes.json").write_text(json.dumps({"classes": ["dent", "rust"]}))
    for i in range(48):  # 40 clean, then 4 dent and 4 rust: a uniform tenth may miss both
        mask = np.zeros((8, 8), np.uint8)
        mask[2:4, 2:4] = 0 if i < 40 else 1 + (i % 2)
        Image.fromarray(np.full((8, 8), 90, np.uint8)).save(root / "images" / "train" / f"{i}.png")
        Image.fromarray(mask).save(root / "masks" / "train" / f"{i}.png")
    bundle = build_datasets(str(root), 16, augment=False)
    shown = [tuple(bundle.val[i]["presence"].tolist()) for i in range(len(bundle.val))]
    assert (1.0, 0.0) in shown and (0.0, 1.0) in shown
    assert len(bundle.train) + len(bundle.val) == 48


def test_csv_rows_without_a_split_are_drawn_stratified(tmp_path):
    # 12 clean and 6 dented images; the two folders hold files of the same names
    rows = ["image,dent"]
    for folder, n, dent in (("ok", 12, 0), ("bad", 6, 1)):
        (tmp_path / folder).mkdir()
        for i in range(n):
            Image.fromarray(np.full((20, 20), 90, np.uint8)).save(tmp_path / folder / f"{i}.png")
            rows.append(f"{folder}/{i}.png,{dent}")
    path = tmp_path / "labels.csv"
    path.write_text("\n".join(rows) + "\n")  # no split column
    bundle = build_datasets(str(path), 16, augment=False)
    ids = [r.id for d in (bundle.train, bundle.val, bundle.test) for r in d.records]
    assert sorted(ids) == sorted(r.split(".")[0] for r in rows[1:])  # each image once, by path
    for dataset in (bundle.train, bundle.val, bundle.test):  # the defect reaches every split
        assert any(dataset[i]["presence"][0] == 1 for i in range(len(dataset)))


def test_csv_labels_load_without_masks(dataset_factory):
    path = dataset_factory("csv", grade=True)
    bundle = build_datasets(str(path), 16, augment=False)
    assert bundle.classes == ["dent", "rust"] and bundle.source["kind"] == "csv"
    assert bundle.source["sizes"] == {"train": 4, "val": 2, "test": 2}
    first = bundle.train[0]
    assert not bool(first["has_mask"]) and first["mask"].sum() == 0
    assert first["presence"].tolist() == [0.0, 1.0]
    assert int(first["grade"]) == 2  # explicit grade column ("major")
    second = bundle.train[1]
    expected = grade_from_presence(bundle.grade_rule, bundle.classes, second["presence"].numpy())
    assert int(second["grade"]) == expected
    assert first["image"].shape == (3, 16, 16)


def test_class_stats_and_iter_raw(synth_dataset_dir):
    bundle = build_datasets(str(synth_dataset_dir), 32, augment=False)
    stats = class_stats(bundle.train, bundle.classes, max_items=None)
    presence = np.stack([bundle.train[i]["presence"].numpy() for i in range(len(bundle.train))])
    assert np.allclose(stats.presence_rate, presence.mean(0))
    assert stats.masked_items == len(bundle.train)
    weights = stats.pos_weight()
    assert weights.shape == (4,) and (weights > 0).all()
    raw = list(iter_raw(str(synth_dataset_dir), "test"))
    assert len(raw) == 3 and raw[0][1].dtype == np.uint8 and raw[0][1].shape == (32, 32, 3)
    assert raw[0][2].shape == (32, 32) and raw[0][3].shape == (4,)
    synth_raw = next(iter_raw("synth", "val", image_size=40, limit=2))
    assert synth_raw[1].shape == (40, 40, 3)
    json.dumps(bundle.source)
    json.dumps(bundle.grade_rule)


@pytest.mark.skipif(not neu_seg_path().is_dir(), reason=f"NEU-Seg not found at {neu_seg_path()}")
def test_neu_seg_preset_loads_a_handful():
    bundle = build_datasets("neu_seg", 64, augment=False, limit=4)
    assert bundle.classes == ["inclusion", "patches", "scratches"]
    assert bundle.mean[0] == bundle.mean[1] == bundle.mean[2]  # grayscale -> RGB
    item = bundle.val[0]
    assert item["image"].shape == (3, 64, 64) and item["mask"].shape == (3, 64, 64)
    assert item["presence"].sum() >= 1  # every NEU-Seg image holds a defect
    _, image, mask, _ = bundle.val.raw(0)
    # The 200 px JPEGs decode at 1/2 scale (JPEG draft), still covering 64 px, as served.
    assert image.shape == (100, 100, 3) and mask.shape == (200, 200) and mask.max() <= 3


@pytest.mark.parametrize(
    "mean,std", [((0.4262, 0.4109, 0.3868), (0.1266, 0.1297, 0.1474)), ((0.5,) * 3, (1.0,) * 3)]
)
def test_normalise_table_gives_the_per_pixel_float32_formula_bit_for_bit(mean, std):
    rgb = np.random.default_rng(0).integers(0, 256, (37, 53, 3)).astype(np.uint8)
    m = np.asarray(mean, np.float32).reshape(3, 1, 1)
    s = np.asarray(std, np.float32).reshape(3, 1, 1)
    expected = (rgb.transpose(2, 0, 1).astype(np.float32) * np.float32(1 / 255) - m) / s
    out = normalise(rgb, mean, std)
    assert out.dtype == np.float32 and out.flags.c_contiguous
    assert np.array_equal(out, expected)
    with pytest.raises(ValueError, match="uint8 HxWx3"):
        normalise(rgb.astype(np.float32), mean, std)
