"""Seeded splits stratified by class, for sources that ship without (some of) their splits.

Used by the importers and by the MVTec-AD loader, whose own split (defects only in test) would
leave a supervised network nothing to learn defects from.

Each image falls into one stratum: its rarest class (by images over the pool), or the defect-free
stratum. Every stratum is shuffled with the seed and cut by the fractions, so each class keeps its
share in every split; a class with two or more images puts at least one into val (and, with
three or more and a test share, one into test), so thresholds can be chosen for every class.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence, Set

import numpy as np

from mtqa.data.errors import DatasetError
from mtqa.data.records import Record

# Shares of a pooled source drawn into val and test (`mtqa data import`'s defaults too).
VAL_SHARE = 0.15
TEST_SHARE = 0.15


def check_fractions(val_fraction: float, test_fraction: float) -> None:
    if not (0 < val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise DatasetError(
            f"bad split fractions val={val_fraction} test={test_fraction}: need 0 < val, "
            "0 <= test and val + test < 1"
        )


def _stratum(present: Set[int], images_per_class: Counter) -> int:
    if not present:
        return 0
    return min(present, key=lambda c: (images_per_class[c], c))


def _cut(n: int, val_fraction: float, test_fraction: float, defect: bool) -> tuple[int, int]:
    """(val, test) counts for a stratum of ``n`` images; train keeps at least one."""
    n_val = round(n * val_fraction)
    n_test = round(n * test_fraction)
    if defect and n >= 2:
        n_val = max(1, n_val)
    if defect and n >= 3 and test_fraction > 0:
        n_test = max(1, n_test)
    while n_val + n_test > n - 1 and n_val + n_test > 0:
        if n_test >= n_val and n_test > 0:
            n_test -= 1
        else:
            n_val -= 1
    return n_val, n_test


def stratified_splits(
    classes: Mapping[str, Set[int]], seed: int, val_fraction: float, test_fraction: float
) -> dict[str, str]:
    """Split name per image id of `classes` (id -> the classes it shows, empty when defect-free);
    the same images and seed always give the same answer."""
    check_fractions(val_fraction, test_fraction)
    images_per_class = Counter(c for present in classes.values() for c in present)
    strata: dict[int, list[str]] = {}
    for image_id in sorted(classes):
        strata.setdefault(_stratum(classes[image_id], images_per_class), []).append(image_id)
    rng = np.random.default_rng(seed)
    splits: dict[str, str] = {}
    for key in sorted(strata):
        ids = strata[key]
        order = rng.permutation(len(ids))
        n_val, n_test = _cut(len(ids), val_fraction, test_fraction, defect=key != 0)
        for rank, i in enumerate(order):
            split = "val" if rank < n_val else "test" if rank < n_val + n_test else "train"
            splits[ids[i]] = split
    return splits


def split_records(
    records: Sequence[Record],
    shown: Mapping[str, Set[int]],
    seed: int,
    val_fraction: float,
    test_fraction: float,
) -> dict[str, list[Record]]:
    """`records` dealt into train / val / test by `stratified_splits` of `shown` (record id ->
    the classes it shows), in their given order within each split. Val is never left empty
    while train has two records or more: every stratum may be too small to give one."""
    split_of = stratified_splits(
        {r.id: shown[r.id] for r in records}, seed, val_fraction, test_fraction
    )
    dealt = {s: [r for r in records if split_of[r.id] == s] for s in ("train", "val", "test")}
    if val_fraction > 0 and not dealt["val"] and len(dealt["train"]) > 1:
        k = int(np.random.default_rng(seed).integers(len(dealt["train"])))
        dealt["val"].append(dealt["train"].pop(k))
    return dealt


def shown_by_presence(records: Sequence[Record]) -> dict[str, set[int]]:
    """Record id -> the 1-based classes its image-level labels mark present."""
    return {r.id: {i + 1 for i, v in enumerate(r.presence or ()) if v} for r in records}


def complete_splits(
    given: Mapping[str | None, Sequence[Record]], shown: Mapping[str, Set[int]], seed: int
) -> dict[str, list[Record]]:
    """The splits of a source that names some or none: `given` maps a split name to its records,
    None to the records without one. Those are drawn by `split_records` (val and test
    VAL_SHARE / TEST_SHARE); without val, a stratified VAL_SHARE of train becomes val."""
    out = {s: list(r) for s, r in given.items() if s is not None}
    if loose := given.get(None):
        for name, part in split_records(loose, shown, seed, VAL_SHARE, TEST_SHARE).items():
            out[name] = out.get(name, []) + part
    if out.get("train") and not out.get("val"):
        drawn = split_records(out["train"], shown, seed, VAL_SHARE, 0.0)
        out["train"], out["val"] = drawn["train"], drawn["val"]
    return out
