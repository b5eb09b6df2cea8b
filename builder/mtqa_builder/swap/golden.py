"""The golden-set check: the candidate version, pinned through the SDK, against the serving one.

Both versions run the same small golden set on the live server (`InspectionClient.infer_tensor`
pinned per version). Each head's metric on the set must not drop more than `tolerance` points
(the builder's `judge`, the rule its accuracy gate applies offline), and the per-class presence
decisions must agree within the same tolerance (as a percentage of decisions). Grade agreement is
recorded only: a barely trained model's grade logits tie, and a tie flips under INT8.
The candidate's manifest gate figures are carried into the record for comparison.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mtqa.data import DatasetError, build_datasets
from mtqa.evaluate import evaluate_predictor
from mtqa_builder.contract import Preprocessing
from mtqa_builder.gate import HEAD_METRICS, judge
from mtqa_builder.swap.errors import GoldenCheckError

SYNTH = "synth"
GOLDEN_SEED = 20261128  # a fixed synthetic set, unlike any training seed the presets use


@dataclass(frozen=True)
class GoldenSet:
    """Normalised golden images, the evaluation dataset they came from, and its description."""

    dataset: Any
    images: np.ndarray
    describe: dict[str, Any]


def load_golden(
    source: str, classes: Sequence[str], params: Preprocessing, count: int
) -> GoldenSet:
    """`count` images of `source` (`synth` or an indexed-mask dataset folder, its val split),
    sized and normalised as the serving preprocess version does (`params`)."""
    if count < 1:
        raise GoldenCheckError(f"golden set size must be >= 1, got {count}")
    try:
        bundle = build_datasets(
            source,
            params.image_size,
            seed=GOLDEN_SEED,
            augment=False,
            synth_sizes=(4, count, 0),
            classes=list(classes),
            limit=None if source == SYNTH else count,
            resize=params.resize,
        )
    except DatasetError as exc:
        raise GoldenCheckError(f"golden set {source!r} unusable: {exc}") from None
    val = bundle.val
    val.mean, val.std = params.mean, params.std  # serving's normalisation
    images = np.stack([np.asarray(val[i]["image"], dtype=np.float32) for i in range(len(val))])
    describe = {"source": source, "images": len(val), "seed": GOLDEN_SEED}
    return GoldenSet(val, images, describe)


def _run(client, golden: GoldenSet, version: int) -> dict[str, np.ndarray]:
    out = client.infer_tensor(golden.images, model_version=version)
    if str(out.model_version) != str(version):
        raise GoldenCheckError(f"asked for version {version}, served by {out.model_version}")
    return {n: getattr(out, n) for n in ("presence_logits", "seg_logits", "grade_logits")}


def _metrics(outputs, golden: GoldenSet, classes, grades, thresholds) -> dict[str, Any]:
    offset = [0]  # evaluate_predictor walks the dataset in order: replay the server's outputs

    def replay(images: np.ndarray) -> dict[str, np.ndarray]:
        start, offset[0] = offset[0], offset[0] + len(images)
        return {k: v[start : offset[0]] for k, v in outputs.items()}

    return evaluate_predictor(replay, golden.dataset, classes, grades, thresholds, batch_size=16)


def _decisions(outputs: Mapping[str, np.ndarray], classes, thresholds) -> np.ndarray:
    table = (thresholds or {}).get("presence", {})
    cut = np.asarray([float(table.get(c, 0.5)) for c in classes], dtype=np.float32)
    return 1.0 / (1.0 + np.exp(-outputs["presence_logits"])) >= cut


def golden_check(
    client,
    golden: GoldenSet,
    current: int,
    candidate: int,
    manifest: Mapping[str, Any],
    thresholds: Mapping[str, Any],
    tolerance: float,
) -> dict[str, Any]:
    """Run the check; returns its record (with `passed`) and never raises on a plain failure."""
    classes, grades = list(manifest["classes"]), list(manifest["grades"])
    old = _run(client, golden, current)
    new = _run(client, golden, candidate)
    old_m = _metrics(old, golden, classes, grades, thresholds)
    new_m = _metrics(new, golden, classes, grades, thresholds)
    verdict = judge(old_m, new_m, tolerance)
    same = _decisions(old, classes, thresholds) == _decisions(new, classes, thresholds)
    presence = float(np.mean(same))
    grade = float(np.mean(old["grade_logits"].argmax(1) == new["grade_logits"].argmax(1)))
    floor = 1.0 - tolerance / 100.0
    agreement = {"presence": presence, "grade": grade, "presence_min_required": floor}
    failures = verdict.failures()
    if presence < floor:
        failures.append(f"presence decisions agree on {presence:.2%} < {floor:.2%}")
    gate = manifest.get("gate") if isinstance(manifest.get("gate"), dict) else None
    return {
        "passed": not failures,
        "failures": failures,
        "golden": golden.describe,
        "tolerance_points": tolerance,
        "heads": verdict.heads,
        "agreement": agreement,
        "max_abs_presence_logit_diff": float(
            np.max(np.abs(old["presence_logits"] - new["presence_logits"]))
        ),
        "manifest_gate": _gate_figures(gate, HEAD_METRICS),
    }


def _gate_figures(gate: Mapping[str, Any] | None, heads: Mapping[str, str]) -> dict | None:
    """The head metrics the builder's gate recorded for this version (None: not gated)."""
    if not gate:
        return None
    return {head: gate.get("metrics", {}).get(metric) for head, metric in heads.items()}
