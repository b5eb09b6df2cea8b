"""Synthetic generator and on-the-fly dataset: determinism, label consistency, visibility."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mtqa.data import DEFECT_TYPES, SynthConfig, SynthGenerator, build_datasets
from mtqa.data.grading import grade_from_mask


def test_generator_is_deterministic_per_seed_and_key():
    a = SynthGenerator(SynthConfig(size=48), seed=3).generate(0, 0, 5)
    b = SynthGenerator(SynthConfig(size=48), seed=3).generate(0, 0, 5)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.masks, b.masks)
    other_seed = SynthGenerator(SynthConfig(size=48), seed=4).generate(0, 0, 5)
    other_key = SynthGenerator(SynthConfig(size=48), seed=3).generate(0, 0, 6)
    assert not np.array_equal(a.image, other_seed.image)
    assert not np.array_equal(a.image, other_key.image)
    assert a.image.shape == (48, 48, 3) and a.image.dtype == np.uint8
    assert a.masks.shape == (len(DEFECT_TYPES), 48, 48)


def test_index_mask_agrees_with_per_type_masks():
    gen = SynthGenerator(SynthConfig(size=64, max_defects=4), seed=0)
    for i in range(30):
        s = gen.generate(0, 0, i)
        assert np.array_equal(s.index_mask > 0, s.masks.any(axis=0))
        for k in range(len(DEFECT_TYPES)):
            # Where the index mask names class k, the per-type mask of k is set (later wins).
            assert s.masks[k][s.index_mask == k + 1].all()


def test_masks_mark_visible_changes_and_faint_defects_are_unlabelled():
    # With every type forced on, severity 0 draws nothing visible: no labels, no change.
    probs = dict.fromkeys(DEFECT_TYPES, 1.0)
    faint = SynthGenerator(SynthConfig(size=64, defect_probs=probs, severity=(0.0, 0.0)), seed=1)
    clean = SynthGenerator(SynthConfig(size=64, defect_probs={}, severity=(0.0, 0.0)), seed=1)
    for i in range(5):
        assert not faint.generate(0, 0, i).masks.any()
        assert np.array_equal(faint.generate(0, 0, i).image, clean.generate(0, 0, i).image)
    strong = SynthGenerator(SynthConfig(size=64, defect_probs=probs, severity=(1.0, 1.0)), seed=1)
    labelled = 0
    for i in range(10):
        s, base = strong.generate(0, 0, i), clean.generate(0, 0, i)
        m = s.masks.any(axis=0)
        labelled += int(m.any())
        change = np.abs(s.image.astype(int) - base.image.astype(int)).max(axis=2)
        # Labelled pixels really changed (beyond sensor noise) on average.
        if m.any():
            assert change[m].mean() > 8
    assert labelled >= 8


def test_dataset_items_follow_the_contract():
    bundle = build_datasets("synth", 32, synth_sizes=(8, 4, 4), augment=False)
    assert bundle.classes == list(DEFECT_TYPES)
    assert bundle.grades == ["ok", "minor", "major", "reject"]
    for i in range(len(bundle.val)):
        item = bundle.val[i]
        assert item["image"].shape == (3, 32, 32) and item["image"].dtype == torch.float32
        assert item["mask"].shape == (4, 32, 32) and item["mask"].dtype == torch.float32
        assert item["has_mask"].dtype == torch.bool and bool(item["has_mask"])
        assert item["presence"].dtype == torch.float32 and item["grade"].dtype == torch.int64
        assert torch.equal(item["presence"], item["mask"].flatten(1).amax(1))
        grade = grade_from_mask(bundle.grade_rule, bundle.classes, item["mask"].numpy())
        assert int(item["grade"]) == grade
        assert isinstance(item["id"], str)


def test_train_redraws_per_epoch_val_stays_fixed():
    bundle = build_datasets("synth", 32, synth_sizes=(4, 4, 2), augment=True)
    first, val_first = bundle.train[0]["image"], bundle.val[0]["image"]
    assert torch.equal(first, bundle.train[0]["image"])  # deterministic within an epoch
    bundle.train.set_epoch(1)
    bundle.val.set_epoch(1)
    assert not torch.equal(first, bundle.train[0]["image"])
    assert torch.equal(val_first, bundle.val[0]["image"])
    assert bundle.test is not None and len(bundle.test) == 2


def test_augmentation_moves_masks_with_images():
    plain = build_datasets("synth", 32, synth_sizes=(16, 2, 2), augment=False)
    aug = build_datasets("synth", 32, synth_sizes=(16, 2, 2), augment=True)
    moved = 0
    for i in range(16):
        a, b = plain.train[i], aug.train[i]
        assert torch.equal(a["presence"], b["presence"]) and a["grade"] == b["grade"]
        assert a["mask"].sum() == b["mask"].sum()
        moved += int(not torch.equal(a["mask"], b["mask"]))
    assert moved > 0


def test_class_subset_and_unknown_class():
    bundle = build_datasets("synth", 32, synth_sizes=(4, 2, 2), classes=["crack", "stain"])
    assert bundle.classes == ["crack", "stain"] and bundle.train[0]["mask"].shape[0] == 2
    with pytest.raises(ValueError, match="unknown class"):
        build_datasets("synth", 32, synth_sizes=(4, 2, 2), classes=["rust"])


def test_normalisation_can_be_reassigned():
    bundle = build_datasets("synth", 32, synth_sizes=(4, 2, 2), augment=False)
    before = bundle.val[0]["image"]
    bundle.val.mean, bundle.val.std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    after = bundle.val[0]["image"]
    m = torch.tensor(bundle.mean).view(3, 1, 1)
    s = torch.tensor(bundle.std).view(3, 1, 1)
    assert torch.allclose(before * s + m, after, atol=1e-5)


def test_items_collate_into_batches():
    bundle = build_datasets("synth", 32, synth_sizes=(6, 2, 2))
    batch = next(iter(torch.utils.data.DataLoader(bundle.train, batch_size=3)))
    assert batch["image"].shape == (3, 3, 32, 32) and batch["mask"].shape == (3, 4, 32, 32)
    assert batch["has_mask"].dtype == torch.bool and batch["grade"].shape == (3,)
    assert len(batch["id"]) == 3 and len(set(batch["id"])) == 3


@pytest.mark.parametrize("name", DEFECT_TYPES)
def test_each_defect_type_mask_covers_its_visible_change(name):
    # Same keys with and without the defect differ only by the defect (separate RNG streams).
    with_defect = SynthGenerator(SynthConfig(size=48, defect_probs={name: 1.0}), seed=2)
    clean = SynthGenerator(SynthConfig(size=48, defect_probs={}), seed=2)
    strong = unlabelled = 0
    medians = []
    for i in range(20):
        s = with_defect.generate(0, 0, i)
        change = np.abs(s.image.astype(int) - clean.generate(0, 0, i).image.astype(int)).max(2)
        m = s.masks.any(axis=0)
        assert not s.masks[[k for k, c in enumerate(DEFECT_TYPES) if c != name]].any()
        strong += int((change >= 30).sum())
        unlabelled += int(((change >= 30) & ~m).sum())
        if m.any():
            medians.append(np.median(change[m]))
    assert unlabelled <= 0.02 * max(strong, 1)  # clearly changed pixels are labelled
    assert len(medians) >= 10 and np.median(medians) >= 10  # labelled pixels visibly changed
