"""The reports of `mtqa evaluate`: report.md (plots linked) and report.html (self-contained,
plots embedded), with the same headline figures, per-class tables and plots."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mtqa import htmlpage
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


# The plots, in report order: artefact key -> title.
PLOT_TITLES = {
    "threshold_curves": "Precision, recall and F1 against the threshold, per class",
    "pr_curves": "Precision-recall curves",
    "confusion_presence": "Presence confusion per class (normalised)",
    "confusion_grade": "Grade confusion matrix (normalised)",
    "confusion_pixels": "Pixel-class confusion matrix (normalised)",
    "worst_missed": "Worst missed defects (present, probability below the threshold)",
    "worst_false": "Worst false defects (absent, probability at or above the threshold)",
    "overlays": "Sample overlays (true vs predicted masks)",
    "heatmaps": "Probability heatmaps of the same samples",
    "training_curves": "Training curves",
}
PRESENCE_COLUMNS = ["accuracy", "precision", "recall", "f1", "auroc", "ap"]
SEGMENTATION_HEADER = [
    "class", "threshold", "IoU", "Dice", "defect IoU (binary)", "defect Dice (binary)",
]  # fmt: skip


def headline_rows(m: Mapping[str, Any]) -> list[list[str]]:
    return [[label, _fmt(m.get(key))] for key, label in HEADLINE]


def presence_rows(result: EvaluationResult) -> list[list[str]]:
    m = result.metrics
    return [
        [
            c,
            _fmt(m[f"threshold_presence/{c}"]),
            *(_fmt(m[f"presence_{k}/{c}"]) for k in PRESENCE_COLUMNS),
        ]
        for c in result.classes
    ]


def segmentation_rows(result: EvaluationResult) -> list[list[str]]:
    m = result.metrics
    return [
        ["background", "-", _fmt(m["iou/background"]), _fmt(m["dice/background"]), "-", "-"]
    ] + [
        [
            c,
            _fmt(m[f"threshold_segmentation/{c}"]),
            _fmt(m[f"iou/{c}"]),
            _fmt(m[f"dice/{c}"]),
            _fmt(m[f"defect_iou/{c}"]),
            _fmt(m[f"defect_dice/{c}"]),
        ]
        for c in result.classes
    ]


def _provenance(result: EvaluationResult, info: Mapping[str, Any]) -> list[str]:
    m = result.metrics
    return [
        f"checkpoint: `{info.get('checkpoint')}`",
        f"data: `{info.get('data')}`, split `{info.get('split')}`: {m['n_images']} images, "
        f"{m['n_images_with_masks']} with masks",
        f"thresholds: rule `{info.get('thresholds_rule')}`, selected on "
        f"`{info.get('thresholds_selected_on')}`",
        f"written: {info.get('written')}",
    ]


_UNDEFINED = (
    "Undefined figures (a class absent from both truth and prediction, AUROC with one label "
    "value) read n/a and are left out of every mean. Decisions are `prob >= threshold`."
)


def write_html_report(
    path: Path,
    result: EvaluationResult,
    info: Mapping[str, Any],
    artefacts: Mapping[str, Path | None],
) -> Path:
    """Write ``report.html``: the report.md content with every plot embedded (opens alone)."""
    h = htmlpage
    body = [
        "<ul>"
        + "".join(f"<li>{h.esc(line).replace('`', '')}</li>" for line in _provenance(result, info))
        + "</ul>",  # fmt: skip
        f"<p class='note'>{h.esc(_UNDEFINED).replace('`', '')}</p>",
        "<h2>Headline</h2>",
        h.table(["metric", "value"], headline_rows(result.metrics)),
        "<h2>Presence (per image)</h2>",
        h.table(["class", "threshold", *PRESENCE_COLUMNS], presence_rows(result)),
        "<h2>Segmentation (per pixel)</h2>",
        h.table(SEGMENTATION_HEADER, segmentation_rows(result)),
        "<h2>Plots</h2>",
        *(h.figure(title, artefacts.get(key)) for key, title in PLOT_TITLES.items()),
    ]
    data_files = [p for k, p in artefacts.items() if k not in PLOT_TITLES and p is not None]
    body += [
        "<h2>Data files</h2>",
        "<ul>" + "".join(f"<li>{h.link(p.name, p.name)}</li>" for p in data_files) + "</ul>",
    ]
    path.write_text(h.page("mtqa evaluation report", body))
    return path


def write_report(
    path: Path,
    result: EvaluationResult,
    info: Mapping[str, Any],
    artefacts: Mapping[str, Path | None],
) -> Path:
    """Write ``report.md`` at ``path``; ``info`` holds checkpoint, data, split and thresholds
    provenance, ``artefacts`` the files beside it (None: not produced), linked relatively."""
    out = [
        "# mtqa evaluation report",
        "",
        *(f"- {line}" for line in _provenance(result, info)),
        "",
        _UNDEFINED,
        "",
        "## Headline",
        "",
        *_table(["metric", "value"], headline_rows(result.metrics)),
        "## Presence (per image)",
        "",
    ]
    out += _table(["class", "threshold", *PRESENCE_COLUMNS], presence_rows(result))
    out += ["## Segmentation (per pixel)", ""]
    out += _table(SEGMENTATION_HEADER, segmentation_rows(result))
    titles = PLOT_TITLES
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
