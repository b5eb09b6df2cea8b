"""The worst presence decisions of an evaluation, kept with their pictures for the gallery.

Per image the class decided most wrongly counts: a *missed* defect (present, probability below
its threshold) or a *false* defect (absent, probability at or above it), ranked by how far the
probability lies on the wrong side of the threshold. Only the worst few of each kind are kept,
so the streaming evaluation stays small.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

KINDS = ("missed", "false")


@dataclass
class WorstCase:
    """One wrong presence decision and the image it was made on (normalised image, true masks
    and probabilities, as `Sample` holds them)."""

    kind: str  # "missed" | "false"
    class_index: int
    class_name: str
    prob: float
    threshold: float
    id: str
    image: np.ndarray
    mask: np.ndarray
    seg_prob: np.ndarray
    presence_prob: np.ndarray

    @property
    def margin(self) -> float:
        """How far the probability lies on the wrong side of the threshold."""
        return self.threshold - self.prob if self.kind == "missed" else self.prob - self.threshold


class WorstCases:
    """Keeps the `per_kind` worst missed and false defects seen across batches."""

    def __init__(self, classes: list[str], thresholds: np.ndarray, per_kind: int):
        self.classes, self.thresholds, self.per_kind = classes, np.asarray(thresholds), per_kind
        self.cases: dict[str, list[WorstCase]] = {kind: [] for kind in KINDS}

    def update(
        self,
        ids: list[str],
        images: np.ndarray,
        masks: np.ndarray,
        seg_probs: np.ndarray,
        presence_probs: np.ndarray,
        targets: np.ndarray,
    ) -> None:
        """Consider a batch of images with masks (arrays aligned with `ids`)."""
        if self.per_kind <= 0:
            return
        wrong_side = presence_probs - self.thresholds  # > 0: decided present
        missed = np.where((targets > 0) & (wrong_side < 0), -wrong_side, -np.inf)
        false = np.where((targets == 0) & (wrong_side >= 0), wrong_side, -np.inf)
        for kind, margins in (("missed", missed), ("false", false)):
            for i in np.flatnonzero(np.isfinite(margins.max(axis=1))):
                k = int(margins[i].argmax())
                self._offer(
                    WorstCase(
                        kind=kind,
                        class_index=k,
                        class_name=self.classes[k],
                        prob=float(presence_probs[i, k]),
                        threshold=float(self.thresholds[k]),
                        id=ids[i],
                        image=images[i].copy(),
                        mask=masks[i].copy(),
                        seg_prob=seg_probs[i].copy(),
                        presence_prob=presence_probs[i].copy(),
                    )
                )

    def _offer(self, case: WorstCase) -> None:
        kept = self.cases[case.kind]
        if len(kept) >= self.per_kind and case.margin <= kept[-1].margin:
            return
        kept.append(case)
        kept.sort(key=lambda c: -c.margin)
        del kept[self.per_kind :]
