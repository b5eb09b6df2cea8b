"""Bad datasets fail with DatasetError (a ValueError) whose message names the culprit."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from mtqa.data import DatasetError, build_datasets
from mtqa.data.grading import validate_rule
from mtqa.data.preprocess import preprocess_image


def test_dataset_error_is_a_value_error():
    assert issubclass(DatasetError, ValueError)


def test_missing_folder(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(DatasetError, match="does not exist: .*nowhere"):
        build_datasets(str(missing), 32)


def test_unrecognised_folder(tmp_path):
    with pytest.raises(DatasetError, match="cannot tell the format"):
        build_datasets(str(tmp_path), 32)


def test_neu_seg_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("MTQA_NEU_SEG", str(tmp_path / "neu"))
    with pytest.raises(DatasetError, match="NEU-Seg folder not found: .*neu"):
        build_datasets("neu_seg", 32)


def test_mask_size_differs_from_image(dataset_factory):
    root = dataset_factory("synth")
    mask = sorted((root / "masks" / "train").glob("*.png"))[0]
    Image.fromarray(np.zeros((10, 12), dtype=np.uint8)).save(mask)
    with pytest.raises(DatasetError, match=f"{mask.name}.*differs from image"):
        build_datasets(str(root), 32)


def test_mask_index_above_class_count(dataset_factory):
    root = dataset_factory("synth")
    mask = sorted((root / "masks" / "val").glob("*.png"))[0]
    bad = np.zeros((32, 32), dtype=np.uint8)
    bad[0, 0] = 7
    Image.fromarray(bad).save(mask)
    bundle = build_datasets(str(root), 32)
    with pytest.raises(DatasetError, match=f"{mask.name} holds class index 7 .* only 4 classes"):
        bundle.val[0]


def test_image_without_mask(dataset_factory):
    root = dataset_factory("synth")
    mask = sorted((root / "masks" / "train").glob("*.png"))[0]
    mask.unlink()
    with pytest.raises(DatasetError, match=f"has no mask .*{mask.name}"):
        build_datasets(str(root), 32)


def test_unknown_class_argument(dataset_factory):
    root = dataset_factory("synth")
    with pytest.raises(DatasetError, match=r"\['rust'\] not in dataset"):
        build_datasets(str(root), 32, classes=["scratch", "rust"])


def test_csv_unknown_class_and_bad_cells(dataset_factory):
    path = dataset_factory("csv")
    with pytest.raises(DatasetError, match=r"\['scratch'\] not in dataset .*labels.csv"):
        build_datasets(str(path), 16, classes=["scratch"])
    text = path.read_text().splitlines()
    path.write_text("\n".join([text[0], text[1].replace(",0,", ",2,", 1), *text[2:]]) + "\n")
    with pytest.raises(DatasetError, match="labels.csv line 2: class columns must be 0 or 1"):
        build_datasets(str(path), 16)
    path.write_text("picture,split,dent\na.png,train,1\n")
    with pytest.raises(DatasetError, match=r"labels.csv needs columns image,\[split,\]"):
        build_datasets(str(path), 16)


def test_empty_dataset_and_empty_split(dataset_factory, tmp_path):
    root = dataset_factory("synth")
    shutil.rmtree(root / "images" / "val")
    shutil.rmtree(root / "masks" / "val")
    (root / "images" / "val").mkdir()
    with pytest.raises(DatasetError, match="empty or missing 'val' split"):
        build_datasets(str(root), 32)
    empty = tmp_path / "empty"
    (empty / "images").mkdir(parents=True)
    (empty / "classes.json").write_text(json.dumps({"classes": ["a"]}))
    with pytest.raises(DatasetError, match="empty or missing 'train' split"):
        build_datasets(str(empty), 32)


def test_missing_classes_json(dataset_factory):
    root = dataset_factory("synth")
    (root / "classes.json").unlink()
    with pytest.raises(DatasetError, match="has no classes.json"):
        build_datasets(str(root), 32)
    named = build_datasets(str(root), 32, classes=["a", "b", "c", "d"], augment=False)
    assert named.classes == ["a", "b", "c", "d"]


def test_bad_arguments():
    with pytest.raises(DatasetError, match="image_size"):
        build_datasets("synth", 4)
    with pytest.raises(DatasetError, match="unknown keys"):
        validate_rule({"reject_areas": 0.1})
    with pytest.raises(DatasetError, match="4 names"):
        validate_rule({"grades": ["good", "bad"]})
    with pytest.raises(ValueError, match="uint8"):
        preprocess_image(np.zeros((8, 8), dtype=np.float32), 8, (0.5,) * 3, (0.2,) * 3)


def test_empty_csv_and_mvtec_root_of_categories(dataset_factory, tmp_path):
    path = dataset_factory("csv")
    path.write_text("image,split,dent\n")
    with pytest.raises(DatasetError, match="labels.csv has no rows"):
        build_datasets(str(path), 16)
    dataset_factory("mvtec")  # tmp_path/mvtec_* is one category; tmp_path holds it
    with pytest.raises(DatasetError, match="several MVTec-AD categories .*mvtec_"):
        build_datasets(str(tmp_path), 16)
