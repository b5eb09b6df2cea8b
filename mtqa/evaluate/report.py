"""The Markdown report of `mtqa evaluate`: headline figures, per-class tables, linked plots."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mtqa.evaluate.evaluation import EvaluationResult

HEADLINE = (
    ("presence_macro_f1", "presence macro-F1"),
    ("presence_micro_f1", "presence micro-F1"),
    ("presence_macro_auroc", "presence macro-AUROC"),
    ("presence_macro_ap", "presence macro-AP"),
    ("presence_any_auroc", "any-defect AUROC (image level)"),
    ("presence_any_ap", "any-defect AP (image level)"),
    ("presence_exact_match", "presence exact match (all K right)"),
    ("miou", "mIoU (defect classes)"),
    ("mdice", "mDice (defect classes)"),
    ("miou_with_background", "mIoU (background + defect classes)"),
    ("defect_iou", "defect-pixel mean IoU (multi-label)"),
    ("pixel_accuracy", "pixel accuracy"),
    ("grade_accuracy", "grade accuracy"),
    ("grade_macro_f1", "grade macro-F1"),
    ("grade_qwk", "grade quadratic weighted kappa"),
)


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(" --- " for _ in header) + "|",
        *("| " + " | ".join(row) + " |" for row in rows),
        "",
    ]


def write_report(
    path: Path,
    result: EvaluationResult,
    info: Mapping[str, Any],
    artefacts: Mapping[str, Path | None],
) -> Path:
    """Write ``report.md`` at ``path``; ``info`` holds checkpoint, data, split and thresholds
    provenance, ``artefacts`` the files beside it (None: not produced), linked relatively."""
    m = result.metrics
    out = [
        "# mtqa evaluation report",
        "",
        f"- checkpoint: `{info.get('checkpoint')}`",
        f"- data: `{info.get('data')}`, split `{info.get('split')}`: {m['n_images']} images, "
        f"{m['n_images_with_masks']} with masks",
        f"- thresholds: rule `{info.get('thresholds_rule')}`, selected on "
        f"`{info.get('thresholds_selected_on')}`",
        f"- written: {info.get('written')}",
        "",
        "Undefined figures (a class absent from both truth and prediction, AUROC with one label "
        "value) read n/a and are left out of every mean. Decisions are `prob >= threshold`.",
        "",
        "## Headline",
        "",
        *_table(["metric", "value"], [[label, _fmt(m.get(key))] for key, label in HEADLINE]),
        "## Presence (per image)",
        "",
    ]
    cols = ["accuracy", "precision", "recall", "f1", "auroc", "ap"]
    out += _table(
        ["class", "threshold", *cols],
        [
            [c, _fmt(m[f"threshold_presence/{c}"]), *(_fmt(m[f"presence_{k}/{c}"]) for k in cols)]
            for c in result.classes
        ],
    )
    out += ["## Segmentation (per pixel)", ""]
    out += _table(
        ["class", "threshold", "IoU", "Dice", "defect IoU (binary)", "defect Dice (binary)"],
        [["background", "-", _fmt(m["iou/background"]), _fmt(m["dice/background"]), "-", "-"]]
        + [
            [
                c,
                _fmt(m[f"threshold_segmentation/{c}"]),
                _fmt(m[f"iou/{c}"]),
                _fmt(m[f"dice/{c}"]),
                _fmt(m[f"defect_iou/{c}"]),
                _fmt(m[f"defect_dice/{c}"]),
            ]
            for c in result.classes
        ],
    )
    titles = {
        "pr_curves": "Precision-recall curves",
        "confusion_grade": "Grade confusion matrix",
        "confusion_pixels": "Pixel-class confusion matrix",
        "training_curves": "Training curves",
        "overlays": "Sample overlays (true vs predicted masks)",
    }
    out += ["## Plots", ""]
    for key, title in titles.items():
        target = artefacts.get(key)
        if target is None:
            out += [f"### {title}", "", "(not available for this run)", ""]
        else:
            out += [f"### {title}", "", f"![{title}]({target.name})", ""]
    data_files = [p for k, p in artefacts.items() if k not in titles and p is not None]
    out += ["## Data files", "", *(f"- [{p.name}]({p.name})" for p in data_files), ""]
    path.write_text("\n".join(out))
    return path
