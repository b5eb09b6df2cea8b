"""Decision thresholds: choose them on a validation split, store and read `thresholds.json`.

Presence thresholds come from the exact precision-recall curve of the per-image probabilities;
segmentation thresholds from a streaming histogram of pixel probabilities per class (positives and
negatives counted per bin), so a whole split never sits in memory. Both rules are defined with the
decision ``prob >= threshold``. The file format is the one in docs/architecture.md:
``{"presence": {class: t}, "segmentation": {class: t}, "selected_on": "val", "rule": "max_f1"}``,
plus ``"notes"``: per head, the classes whose cut the split could not decide, and why.

Where the split cannot decide a class (no positive, no negative, or a best cut below
``MIN_THRESHOLD``, where the probabilities do not separate the class), the class keeps
``DEFAULT_THRESHOLD``; a best cut above ``MAX_THRESHOLD`` is lowered to it unless the split holds
at least ``TRUSTED_SUPPORT`` positives and negatives of the class (then the probabilities are
shifted up, as an under-trained head's often are, and the cut that separates them is kept).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import precision_recall_curve

from mtqa.evaluate.jsonsafe import dumps

THRESHOLDS_FILE = "thresholds.json"
RULES = ("max_f1", "target_recall")
DEFAULT_THRESHOLD = 0.5
# The sane range of a chosen cut: below it a "best" cut marks a class the model does not
# separate (a pixel cut of 0.001 paints noise everywhere), above it one confident split would
# decide for unseen images that only near-certain scores count.
MIN_THRESHOLD = 0.05
MAX_THRESHOLD = 0.95
TRUSTED_SUPPORT = 10


class Selection(dict):
    """Chosen thresholds by class name, and in ``notes`` why a class's cut is not the split's
    optimum (fell back to the default, or was clamped)."""

    def __init__(self) -> None:
        super().__init__()
        self.notes: dict[str, str] = {}

    def set(self, name: str, value: float, note: str | None = None) -> None:
        """Record the cut of one class (and the reason when it is not the optimum)."""
        self[name] = float(value)
        if note:
            self.notes[name] = note


def _guarded(selection: Selection, name: str, best: float, support: int) -> None:
    """Store ``best`` for ``name`` within the sane range; ``support``, the smaller of the
    positive and negative counts behind it, decides whether a high cut is trusted (module doc).
    """
    if best < MIN_THRESHOLD:
        note = (
            f"best cut {best:.3f} lies below the floor {MIN_THRESHOLD}: the probabilities do not "
            f"separate the class; default {DEFAULT_THRESHOLD} used"
        )
        selection.set(name, DEFAULT_THRESHOLD, note)
    elif best > MAX_THRESHOLD and support < TRUSTED_SUPPORT:
        note = (
            f"best cut {best:.3f} lowered to {MAX_THRESHOLD}: {support} examples on one side "
            "are too few to trust a near-certain cut"
        )
        selection.set(name, MAX_THRESHOLD, note)
    else:
        selection.set(name, best)


class ThresholdError(ValueError):
    """Raised for an unknown rule, malformed inputs or a malformed / incomplete thresholds file."""


def _check_rule(rule: str, target_recall: float) -> None:
    if rule not in RULES:
        raise ThresholdError(f"unknown threshold rule {rule!r}; choose one of {', '.join(RULES)}")
    if not 0.0 < target_recall <= 1.0:
        raise ThresholdError(f"target_recall must lie in (0, 1]; got {target_recall}")


def _cut_from_curve(
    y_true: np.ndarray, y_prob: np.ndarray, rule: str, target_recall: float
) -> float:
    """Threshold for one class from its exact precision-recall curve.

    The cut is placed halfway between the chosen score and the next lower distinct score, so the
    decisions on the calibration data are those of the chosen point but small shifts of unseen
    scores do not flip them.
    """
    precision, recall, cuts = precision_recall_curve(y_true, y_prob)
    precision, recall = precision[:-1], recall[:-1]  # the last point has no threshold
    if rule == "max_f1":
        with np.errstate(invalid="ignore", divide="ignore"):
            f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0)
        best = int(np.argmax(f1))
    else:
        # recall never rises with the cut: the highest cut still meeting the target wins.
        best = int(np.flatnonzero(recall >= target_recall - 1e-12).max())
    below = y_prob[y_prob < cuts[best]]
    return float((cuts[best] + below.max()) / 2) if below.size else float(cuts[best])


def select_thresholds(
    probs: np.ndarray,
    targets: np.ndarray,
    classes: Sequence[str],
    rule: str = "max_f1",
    target_recall: float = 0.95,
) -> Selection:
    """Per-class presence thresholds from probabilities ``[N, K]`` and 0/1 targets ``[N, K]``.

    ``max_f1`` maximises each class's F1; ``target_recall`` takes the highest cut whose recall is
    at least ``target_recall`` (the best precision under that recall). A class without a positive
    or without a negative example keeps the default 0.5 (no cut can be judged: with positives
    only, max-F1 would call everything defective); cuts are kept in the sane range (module doc).
    """
    _check_rule(rule, target_recall)
    probs = np.asarray(probs, dtype=np.float64)
    targets = np.asarray(targets)
    if probs.ndim != 2 or probs.shape != targets.shape or probs.shape[1] != len(classes):
        raise ThresholdError(
            f"probs and targets must both be [N, {len(classes)}]; "
            f"got {probs.shape} and {targets.shape}"
        )
    out = Selection()
    for k, name in enumerate(classes):
        y = targets[:, k] > 0.5
        if not y.any():
            out.set(name, DEFAULT_THRESHOLD, f"no positive example; default {DEFAULT_THRESHOLD}")
        elif y.all():
            note = (
                "no negative example, so false positives cannot be judged; "
                f"default {DEFAULT_THRESHOLD}"
            )
            out.set(name, DEFAULT_THRESHOLD, note)
        else:
            support = int(min(y.sum(), (~y).sum()))
            _guarded(out, name, _cut_from_curve(y, probs[:, k], rule, target_recall), support)
    return out


class PixelHistogram:
    """Streaming per-class histograms of pixel probabilities, split by truth (positive/negative).

    ``counts[k, 0, b]`` counts negative pixels of class k whose probability falls in bin b
    (``floor(p * bins)``), ``counts[k, 1, b]`` positive ones. Cutting at ``b / bins`` then gives
    tp, fp and fn for every candidate threshold at once.
    """

    def __init__(self, n_classes: int, bins: int = 1000):
        self.bins = bins
        self.counts = np.zeros((n_classes, 2, bins), dtype=np.int64)

    def update(self, probs: np.ndarray, masks: np.ndarray) -> None:
        """Add a batch: ``probs`` in [0, 1] and multi-hot ``masks``, both ``[B, K, H, W]``."""
        probs = np.asarray(probs)
        if probs.ndim != 4 or probs.shape != np.shape(masks) or probs.shape[1] != len(self.counts):
            raise ThresholdError(
                f"probs and masks must both be [B, {len(self.counts)}, H, W]; "
                f"got {probs.shape} and {np.shape(masks)}"
            )
        bin_idx = np.clip((probs * self.bins).astype(np.int64), 0, self.bins - 1)
        flat = bin_idx + self.bins * (np.asarray(masks) > 0.5)
        for k in range(len(self.counts)):
            self.counts[k] += np.bincount(flat[:, k].ravel(), minlength=2 * self.bins).reshape(
                2, self.bins
            )

    def curve(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """For class k and every cut ``b / bins``: (cuts, tp, fp, fn) pixel counts."""
        neg, pos = self.counts[k]
        tp = pos[::-1].cumsum()[::-1]
        fp = neg[::-1].cumsum()[::-1]
        return np.arange(self.bins) / self.bins, tp, fp, pos.sum() - tp

    def select(
        self, classes: Sequence[str], rule: str = "max_f1", target_recall: float = 0.95
    ) -> Selection:
        """Per-class segmentation thresholds by the same rules as ``select_thresholds`` (F1 of
        pixels is the Dice coefficient). A class with no positive or no negative pixel keeps
        0.5; cuts are kept in the sane range (module doc)."""
        _check_rule(rule, target_recall)
        if len(classes) != len(self.counts):
            raise ThresholdError(f"expected {len(self.counts)} class names, got {len(classes)}")
        out = Selection()
        for k, name in enumerate(classes):
            cuts, tp, fp, fn = self.curve(k)
            if tp[0] == 0:
                out.set(name, DEFAULT_THRESHOLD, f"no positive pixel; default {DEFAULT_THRESHOLD}")
                continue
            if fp[0] == 0:
                note = f"no negative pixel; default {DEFAULT_THRESHOLD}"
                out.set(name, DEFAULT_THRESHOLD, note)
                continue
            if rule == "max_f1":
                best = int(np.argmax(2 * tp / np.maximum(2 * tp + fp + fn, 1)))
            else:
                best = int(np.flatnonzero(tp >= target_recall * tp[0] - 1e-9).max())
            _guarded(out, name, float(cuts[best]), int(min(tp[0], fp[0])))
        return out


def default_thresholds(classes: Sequence[str]) -> dict[str, Any]:
    """Thresholds of 0.5 everywhere, for a run that has not been calibrated."""
    return {
        "presence": dict.fromkeys(classes, DEFAULT_THRESHOLD),
        "segmentation": dict.fromkeys(classes, DEFAULT_THRESHOLD),
        "selected_on": None,
        "rule": "default",
    }


def _check_block(block: Any, key: str, classes: Sequence[str] | None, where: str) -> None:
    if not isinstance(block, Mapping):
        raise ThresholdError(f"{where}: {key!r} must map class names to thresholds")
    for name, value in block.items():
        if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0 or math.isnan(value):
            raise ThresholdError(f"{where}: {key}[{name!r}] = {value!r} is not a number in [0, 1]")
    if classes is not None and (missing := [c for c in classes if c not in block]):
        raise ThresholdError(f"{where}: {key!r} has no threshold for {', '.join(missing)}")


def validate_thresholds(
    data: Any, classes: Sequence[str] | None = None, where: str = "thresholds"
) -> dict[str, Any]:
    """Check a thresholds mapping (file format) and return it as a plain dict."""
    if not isinstance(data, Mapping):
        raise ThresholdError(f"{where}: expected a JSON object, got {type(data).__name__}")
    for key in ("presence", "segmentation"):
        if key not in data:
            raise ThresholdError(f"{where}: missing key {key!r}")
        _check_block(data[key], key, classes, where)
    return dict(data)


def threshold_arrays(
    thresholds: Mapping[str, Any] | None, classes: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """(presence, segmentation) threshold vectors in class order; None means 0.5 everywhere."""
    data = validate_thresholds(
        default_thresholds(classes) if thresholds is None else thresholds, classes
    )
    return tuple(
        np.array([float(data[key][c]) for c in classes]) for key in ("presence", "segmentation")
    )


def save_thresholds(
    run_dir: str | Path,
    presence: Mapping[str, float],
    segmentation: Mapping[str, float],
    selected_on: str = "val",
    rule: str = "max_f1",
    **extra: Any,
) -> Path:
    """Write ``thresholds.json`` into a checkpoint directory (atomically) and return its path.

    ``extra`` keys (e.g. ``target_recall``, ``source``) are stored beside the contract keys;
    the ``notes`` of ``Selection`` arguments (why a class kept the default or was clamped) go
    under ``"notes"`` per head.
    """
    notes = {
        head: dict(getattr(chosen, "notes", {}))
        for head, chosen in (("presence", presence), ("segmentation", segmentation))
    }
    data = validate_thresholds(
        {
            "presence": {k: float(v) for k, v in presence.items()},
            "segmentation": {k: float(v) for k, v in segmentation.items()},
            "selected_on": selected_on,
            "rule": rule,
            "notes": notes,
            **extra,
        }
    )
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ThresholdError(f"checkpoint directory {run_dir} does not exist")
    path = run_dir / THRESHOLDS_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(dumps(data) + "\n")
    tmp.replace(path)
    return path


def load_thresholds(run_dir: str | Path, classes: Sequence[str] | None = None) -> dict[str, Any]:
    """Read and validate ``thresholds.json`` from a checkpoint directory (or the file itself).

    With ``classes`` given, every class must have a presence and a segmentation threshold.
    """
    path = Path(run_dir)
    if path.is_dir():
        path = path / THRESHOLDS_FILE
    if not path.is_file():
        raise ThresholdError(f"no thresholds file at {path}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ThresholdError(f"{path} is not valid JSON: {exc}") from exc
    return validate_thresholds(data, classes, where=str(path))
