"""Write every artefact of one evaluation into a folder: JSON figures, PNG plots, report.md and
the self-contained report.html."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mtqa.evaluate.evaluation import EvaluationResult
from mtqa.evaluate.jsonsafe import dumps
from mtqa.evaluate.plots import (
    plot_confusion,
    plot_heatmaps,
    plot_overlays,
    plot_pr_curves,
    plot_presence_confusions,
    plot_threshold_curves,
    plot_training_curves,
    plot_worst,
)
from mtqa.evaluate.report import write_html_report, write_report


def confusion_payload(result: EvaluationResult) -> dict[str, Any]:
    """The confusion matrices as JSON (truth in rows, prediction in columns)."""
    return {
        "grade": {"labels": result.grades, "matrix": result.grade_confusion.tolist()},
        "pixel": {
            "labels": ["background", *result.classes],
            "matrix": result.pixel_confusion.tolist(),
        },
        "presence": {
            name: {"labels": [0, 1], "matrix": result.presence_confusion[k].tolist()}
            for k, name in enumerate(result.classes)
        },
    }


def write_artefacts(
    result: EvaluationResult,
    out_dir: Path,
    info: Mapping[str, Any],
    mean: Sequence[float],
    std: Sequence[float],
    metrics_csv: Path | None = None,
) -> dict[str, Path]:
    """Write metrics.json, confusion_matrices.json, the PNG plots, report.md and report.html
    into ``out_dir``.

    ``metrics.json`` is the flat metrics dict (undefined values are null) plus the string
    provenance in ``info``. Returns the written files by name.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics_path = out_dir / "metrics.json"
    metrics_path.write_text(dumps({**info, **result.flat()}) + "\n")
    confusion_path = out_dir / "confusion_matrices.json"
    confusion_path.write_text(dumps(confusion_payload(result)) + "\n")
    has_log = metrics_csv is not None and metrics_csv.is_file()
    plots = {
        "threshold_curves": plot_threshold_curves(result, out_dir / "threshold_curves.png"),
        "pr_curves": plot_pr_curves(result, out_dir / "pr_curves.png"),
        "confusion_presence": plot_presence_confusions(result, out_dir / "confusion_presence.png"),
        "confusion_grade": plot_confusion(
            result.grade_confusion, result.grades, out_dir / "confusion_grade.png", "Grade"
        ),
        "confusion_pixels": plot_confusion(
            result.pixel_confusion,
            ["background", *result.classes],
            out_dir / "confusion_pixels.png",
            "Pixel classes (argmax over thresholded classes)",
        ),
        "training_curves": (
            plot_training_curves(metrics_csv, out_dir / "training_curves.png") if has_log else None
        ),
        "overlays": plot_overlays(result, mean, std, out_dir / "overlays.png"),
        "heatmaps": plot_heatmaps(result, mean, std, out_dir / "heatmaps.png"),
        "worst_missed": plot_worst(result, "missed", mean, std, out_dir / "worst_missed.png"),
        "worst_false": plot_worst(result, "false", mean, std, out_dir / "worst_false.png"),
    }
    artefacts = {**plots, "metrics": metrics_path, "confusion_matrices": confusion_path}
    report = write_report(out_dir / "report.md", result, info, artefacts)
    html_report = write_html_report(out_dir / "report.html", result, info, artefacts)
    written = {k: v for k, v in artefacts.items() if v is not None}
    return {"report": report, "report_html": html_report, **written}
