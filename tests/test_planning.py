"""The dataset fingerprint, the plan it leads to, letterbox geometry and training crops."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from mtqa.data import build_datasets
from mtqa.data.preprocess import fit_size, pad_fill, preprocess_image, resize_image, resize_mask
from mtqa.planning import fingerprint, make_plan


def _write_dataset(root, shape, n=(12, 4, 4), defect=(4, 40), free_every=3, classes=("a", "b")):
    """An indexed-mask dataset of `shape` (h, w) grey images; every `free_every`-th is clean,
    the others hold one `defect` (h, w) rectangle of class 1 or 2."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    (root / "classes.json").write_text(json.dumps({"classes": list(classes)}))
    for split, count in zip(("train", "val", "test"), n, strict=True):
        (root / "images" / split).mkdir(parents=True)
        (root / "masks" / split).mkdir(parents=True)
        for i in range(count):
            img = rng.integers(90, 110, size=shape, dtype=np.uint8)
            mask = np.zeros(shape, dtype=np.uint8)
            if i % free_every:
                y, x = rng.integers(0, shape[0] - defect[0]), rng.integers(0, shape[1] - defect[1])
                mask[y : y + defect[0], x : x + defect[1]] = 1 + (i // 2) % 2
                img[mask > 0] = 200
            Image.fromarray(img).save(root / "images" / split / f"{i:03d}.png")
            Image.fromarray(mask).save(root / "masks" / split / f"{i:03d}.png")
    return root


def test_letterbox_keeps_aspect_and_pads_with_the_mean():
    assert fit_size(100, 250, 128, "letterbox") == (51, 128)
    assert fit_size(100, 250, 128, "squash") == (128, 128)
    image = np.full((100, 250), 7, dtype=np.uint8)
    out = resize_image(image, 128, "letterbox", pad_fill((0.5, 0.5, 0.5)))
    assert out.shape == (128, 128, 3)
    assert (out[:51] == 7).all() and (out[51:] == 128).all()
    x = preprocess_image(
        np.full((100, 250), 128, np.uint8), 128, (0.5,) * 3, (0.25,) * 3, "letterbox"
    )
    assert np.abs(x).max() < 0.02  # padding normalises to ~0, like a mean-grey image
    mask = np.zeros((100, 250), np.uint8)
    mask[10:20] = 2
    small = resize_mask(mask, 128, "letterbox")
    assert set(np.unique(small)) == {0, 2} and not small[51:].any()
    with pytest.raises(ValueError, match="resize mode"):
        fit_size(10, 10, 32, "stretch")


def test_fingerprint_measures_sizes_regions_and_clean_share(tmp_path):
    root = _write_dataset(tmp_path / "d", (60, 180))
    fp = fingerprint(str(root))
    assert fp.classes == ["a", "b"]
    assert fp.split_sizes == {"train": 12, "val": 4, "test": 4}
    assert fp.long_side["q50"] == 180 and fp.aspect["q50"] == pytest.approx(3.0)
    assert fp.defect_free_share == pytest.approx(4 / 12, abs=1e-3)
    assert fp.regions == 8 and fp.region_min_side["q50"] == 4
    assert fp.images_per_class == {"a": 4, "b": 4}


def test_plan_letterboxes_wide_images_and_crops_large_inputs(tmp_path):
    wide = make_plan(fingerprint(str(_write_dataset(tmp_path / "w", (60, 180)))))
    assert wide.overrides["data.resize"] == "letterbox"
    assert wide.overrides["data.image_size"] == 192  # 180 px long side, native resolution
    assert wide.overrides["data.crop_size"] == 0  # small input: whole images a step
    assert wide.config().data.image_size == 192  # the plan is a valid run config
    assert all(k in wide.reasons for k in wide.overrides)
    assert wide.overrides["train.time_budget"] == 1500.0  # a small dataset: 30 minutes
    fp = fingerprint(str(tmp_path / "w"))
    fp.split_sizes["train"] = 900
    assert make_plan(fp).overrides["train.time_budget"] == 2400.0
    assert make_plan(fp, 60).overrides["train.time_budget"] == 60.0
    big = make_plan(fingerprint(str(_write_dataset(tmp_path / "b", (200, 700), defect=(40, 60)))))
    # 40 px wide defects keep 12 px at 0.3x: the input shrinks to ~210 px (not past that)
    assert big.overrides["data.image_size"] == 224
    square = make_plan(fingerprint(str(_write_dataset(tmp_path / "s", (400, 400), defect=(3, 30)))))
    assert square.overrides["data.resize"] == "squash"
    assert square.overrides["data.image_size"] == 416  # thin defects: native resolution
    assert square.overrides["data.crop_size"] == 256
    assert square.overrides["model.encoder"] == "efficientnet_lite0"  # few labelled regions
    many = fingerprint(str(tmp_path / "s"))
    many.regions = 5000  # labels enough: the faster from-scratch encoder
    assert make_plan(many).overrides["model.encoder"] == "resnet"
    labels_only = fingerprint(str(tmp_path / "s"))
    labels_only.masks = False  # image-level labels: a crop would have no label
    assert make_plan(labels_only).overrides["data.crop_size"] == 0


def test_whole_inputs_of_sparse_data_are_drawn_class_balanced(tmp_path):
    root = _write_dataset(tmp_path / "d", (60, 180), free_every=3)
    fp = fingerprint(str(root))
    assert make_plan(fp).overrides["data.crop_size"] == 0  # 1/3 clean, classes even: uniform
    fp.defect_free_share = 0.7
    sparse = make_plan(fp)
    assert sparse.overrides["data.crop_size"] == sparse.overrides["data.image_size"] == 192
    assert sparse.overrides["data.defect_crop_share"] == 0.5
    assert "70%" in sparse.reasons["data.crop_size"]
    fp.defect_free_share, fp.images_per_class = 0.3, {"a": 40, "b": 4}
    assert "4 to 40" in make_plan(fp).reasons["data.crop_size"]
    # a whole-input "crop" is the full letterboxed image, drawn with its defect
    train = build_datasets(
        str(root), 192, resize="letterbox", crop_size=192, defect_crop_share=1.0, epoch_items=12
    ).train
    items = [train[i] for i in range(len(train))]
    assert all(item["image"].shape == (3, 192, 192) for item in items)
    assert all(item["presence"].sum() == 1 for item in items)


def test_crops_are_centred_on_defects_at_the_planned_share(tmp_path):
    root = _write_dataset(tmp_path / "d", (120, 360), defect=(4, 12), free_every=2)
    bundle = build_datasets(
        str(root), 384, resize="letterbox", crop_size=64, defect_crop_share=1.0, epoch_items=40
    )
    train = bundle.train
    assert len(train) == 40
    items = [train[i] for i in range(len(train))]
    assert all(item["image"].shape == (3, 64, 64) for item in items)
    assert all(item["presence"].sum() >= 1 for item in items)  # every crop holds its defect
    # both classes are drawn although each image holds one
    assert {int(item["presence"].argmax()) for item in items} == {0, 1}
    random = build_datasets(
        str(root), 384, resize="letterbox", crop_size=64, defect_crop_share=0.0, epoch_items=40
    ).train
    with_defect = sum(float(random[i]["presence"].sum() > 0) for i in range(40))
    assert with_defect < 20  # random crops of a mostly clean input rarely hit a 4x12 defect
    train.set_epoch(1)
    assert not np.array_equal(train[0]["image"].numpy(), items[0]["image"].numpy())


def test_plan_refuses_a_train_split_without_defects_and_names_unseen_classes(tmp_path, capsys):
    from mtqa.data import DatasetError

    # every train image clean (free_every=1): only val and test show defects
    root = _write_dataset(tmp_path / "clean", (60, 180), free_every=1)
    with pytest.raises(DatasetError, match="no train image .* shows a defect"):
        make_plan(fingerprint(str(root)))
    # the default command stops before training, with that message and the input exit code
    from mtqa_cli.main import main

    assert main(["train", "--data", str(root), "--out", str(tmp_path / "run")]) == 3
    assert "nothing to learn defects from" in capsys.readouterr().err
    # one class only in val/test: planned, with a note naming it
    one = _write_dataset(tmp_path / "one", (60, 180), classes=("a", "b", "c"))
    plan = make_plan(fingerprint(str(one)))
    assert "note: no train image shows c: the network cannot learn it" in plan.describe()


def test_a_small_train_split_gets_a_batch_that_fits_it(tmp_path):
    root = _write_dataset(tmp_path / "d", (60, 180), n=(10, 4, 4))
    plan = make_plan(fingerprint(str(root)))
    assert plan.overrides["train.batch_size"] == 5  # 10 images: two steps an epoch
    assert "two steps" in plan.reasons["train.batch_size"]
