"""PNG plots of an evaluation: PR and threshold curves, confusion matrices, training curves,
mask overlays and the worst-case gallery (the last two drawn by `mtqa.evaluate.gallery`).

Figures are built with ``matplotlib.figure.Figure`` directly (no pyplot), which renders with the
Agg canvas and leaves no global GUI state behind: safe in servers, tests and headless hosts.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from sklearn.metrics import precision_recall_curve

from mtqa.evaluate import gallery
from mtqa.evaluate.evaluation import EvaluationResult
from mtqa.palette import PALETTE, class_hex

DPI = 110
# Bookkeeping columns of metrics.csv that are not curves worth plotting.
_NOT_PLOTTED = {"step", "lr", "seconds", "time", "best"}
# One colour per defect class, the same as in overlays and the SDK's pictures.
_CLASS_COLOURS = [class_hex(k) for k in range(len(PALETTE))]


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    return path


def plot_pr_curves(result: EvaluationResult, path: Path) -> Path:
    """Presence PR curve per class (exact, with AP and the operating point) beside the pixel-level
    PR curve per class (from the streaming histogram, with the segmentation operating point)."""
    fig = Figure(figsize=(11, 4.5))
    ax_img, ax_pix = fig.subplots(1, 2)
    for k, name in enumerate(result.classes):
        colour = _CLASS_COLOURS[k % len(_CLASS_COLOURS)]
        y, p = result.presence_targets[:, k], result.presence_probs[:, k]
        if y.any():
            precision, recall, _ = precision_recall_curve(y, p)
            ap = result.metrics.get(f"presence_ap/{name}", float("nan"))
            ax_img.plot(recall, precision, color=colour, label=f"{name} (AP {ap:.3f})")
            pred = p >= result.metrics[f"threshold_presence/{name}"]
            if pred.any():
                hits = (y.astype(bool) & pred).sum()
                ax_img.plot(hits / y.sum(), hits / pred.sum(), "o", color=colour)
        cuts, tp, fp, fn = result.pixel_histogram.curve(k)
        if tp[0] > 0:
            keep = tp + fp > 0
            ax_pix.plot(
                tp[keep] / (tp[keep] + fn[keep]),
                tp[keep] / (tp[keep] + fp[keep]),
                color=colour,
                label=name,
            )
            # segmentation thresholds are histogram bin edges b / bins: round, do not truncate
            b = min(
                round(result.metrics[f"threshold_segmentation/{name}"] * len(cuts)), len(cuts) - 1
            )
            if tp[b] + fp[b] > 0:
                ax_pix.plot(tp[b] / (tp[b] + fn[b]), tp[b] / (tp[b] + fp[b]), "o", color=colour)
    for ax, title in ((ax_img, "presence (per image)"), (ax_pix, "segmentation (per pixel)")):
        ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1.02), ylim=(0, 1.02), title=title)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="lower left", fontsize=8)
    fig.suptitle("Precision-recall curves (dots: stored thresholds)")
    return _save(fig, path)


def _draw_confusion(ax, cm: np.ndarray, fontsize: int):
    """Draw `cm` (truth in rows) on `ax` normalised by row, each cell annotated with its share
    and the count beneath it; returns the image (for a colour bar)."""
    cm = np.asarray(cm)
    rows = cm.sum(axis=1, keepdims=True)
    rate = np.divide(cm, rows, out=np.zeros(cm.shape, dtype=float), where=rows > 0)
    image = ax.imshow(rate, cmap="Blues", vmin=0, vmax=1)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(
                j,
                i,
                f"{rate[i, j]:.2f}\n({cm[i, j]:,})",
                ha="center",
                va="center",
                fontsize=fontsize,
                color="white" if rate[i, j] > 0.6 else "black",
            )
    return image


def plot_confusion(cm: np.ndarray, labels: Sequence[str], path: Path, title: str) -> Path:
    """Confusion matrix normalised by row (the share of each true class predicted as each
    class), annotated with that share and the count beneath it (truth in rows)."""
    size = 1.2 + 0.9 * len(labels)
    fig = Figure(figsize=(size + 1.5, size))
    ax = fig.subplots()
    image = _draw_confusion(ax, cm, fontsize=8)
    fig.colorbar(image, ax=ax, label="fraction of true row")
    ax.set_xticks(range(len(labels)), labels, rotation=35, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set(xlabel="predicted", ylabel="true", title=f"{title}, normalised by true row")
    return _save(fig, path)


def read_training_log(path: Path) -> dict[str, list[float]]:
    """Numeric columns of a run's ``metrics.csv`` (non-numeric columns and cells are dropped)."""
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    columns: dict[str, list[float]] = {}
    for name in rows[0] if rows else []:
        values = []
        for row in rows:
            try:
                values.append(float(row[name]))
            except (TypeError, ValueError):
                values.append(math.nan)
        if not all(math.isnan(v) for v in values):
            columns[name] = values
    return columns


def plot_training_curves(metrics_csv: Path, path: Path) -> Path | None:
    """Losses, validation scores and task weights against epoch, one panel each (panels with
    nothing to show are left out); None when the log has no plottable column."""
    columns = read_training_log(metrics_csv)
    x_name = "epoch" if "epoch" in columns else None
    series = {n: v for n, v in columns.items() if n not in _NOT_PLOTTED and n != x_name}
    if not series:
        return None
    x = columns[x_name] if x_name else list(range(1, len(next(iter(series.values()))) + 1))
    groups = {
        "losses": {n: v for n, v in series.items() if "loss" in n},
        "task weights": {n: v for n, v in series.items() if n.startswith("weight_")},
    }
    grouped = {n for g in groups.values() for n in g}
    groups["validation metrics"] = {n: v for n, v in series.items() if n not in grouped}
    panels = [(title, panel) for title, panel in groups.items() if panel]
    fig = Figure(figsize=(5 * len(panels), 4.2), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    for ax, (title, panel) in zip(axes, panels, strict=True):
        for name, values in panel.items():
            ax.plot(x, values, marker="o", markersize=3, label=name)
        ax.set(xlabel=x_name or "row", title=title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=1 + len(panel) // 8)
    fig.suptitle(f"Training curves ({metrics_csv.name})")
    return _save(fig, path)


def _seg_thresholds(result: EvaluationResult) -> np.ndarray:
    return np.array([result.metrics[f"threshold_segmentation/{c}"] for c in result.classes])


def plot_overlays(
    result: EvaluationResult, mean: Sequence[float], std: Sequence[float], path: Path
) -> Path | None:
    """Per kept sample: the image, the true masks over it and the predicted masks over it (the
    single-label pixel decision used for mIoU), >= 512 px a panel; None when none was kept."""
    pres_thr = [result.metrics[f"threshold_presence/{c}"] for c in result.classes]
    rows = []
    for sample in result.samples:
        found = [
            c
            for c, p, t in zip(result.classes, sample.presence_prob, pres_thr, strict=True)
            if p >= t
        ]
        title = f"{sample.id}: decided present: {', '.join(found) or 'none'}"
        rows.append(
            gallery.render_row(sample, mean, std, result.classes, _seg_thresholds(result), title)
        )
    return gallery.write_rows(rows, result.classes, path)


def plot_worst(
    result: EvaluationResult, kind: str, mean: Sequence[float], std: Sequence[float], path: Path
) -> Path | None:
    """The worst `kind` ("missed" or "false") presence decisions, worst first; None if none."""
    rows = []
    for case in result.worst.get(kind, []):
        side = "<" if kind == "missed" else ">="
        word = "missed" if kind == "missed" else "false"
        title = (
            f"{word} {case.class_name}: p = {case.prob:.3f} {side} threshold {case.threshold:.3f}"
        )
        rows.append(
            gallery.render_row(case, mean, std, result.classes, _seg_thresholds(result), title)
        )
    return gallery.write_rows(rows, result.classes, path)


def _rates(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> tuple[np.ndarray, ...]:
    """Precision, recall, F1 (NaN where undefined)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), np.nan)
        recall = np.where(tp + fn > 0, tp / (tp + fn), np.nan)
        f1 = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), np.nan)
    return precision, recall, f1


def plot_threshold_curves(result: EvaluationResult, path: Path) -> Path:
    """Per class: precision, recall and F1 against the threshold, presence (per image) on the top
    row and segmentation (per pixel) below, the stored threshold marked by a dashed line."""
    classes = result.classes
    fig = Figure(figsize=(3.3 * len(classes), 6.4), layout="constrained")
    axes = fig.subplots(2, len(classes), sharex=True, sharey=True, squeeze=False)
    cuts = np.linspace(0, 1, 201)
    for k, name in enumerate(classes):
        y = result.presence_targets[:, k].astype(bool)
        pred = result.presence_probs[:, k][None, :] >= cuts[:, None]
        tp = (pred & y).sum(axis=1).astype(float)
        fp = (pred & ~y).sum(axis=1).astype(float)
        fn = (~pred & y).sum(axis=1).astype(float)
        pix_cuts, ptp, pfp, pfn = result.pixel_histogram.curve(k)
        panels = (
            ("presence", cuts, _rates(tp, fp, fn)),
            ("segmentation", pix_cuts, _rates(*(a.astype(float) for a in (ptp, pfp, pfn)))),
        )
        for row, (task, x, (precision, recall, f1)) in enumerate(panels):
            ax = axes[row, k]
            ax.plot(x, precision, color="#0072b2", label="precision")
            ax.plot(x, recall, color="#e69f00", label="recall")
            ax.plot(x, f1, color="black", linewidth=2, label="F1")
            chosen = result.metrics[f"threshold_{task}/{name}"]
            ax.axvline(chosen, color=_CLASS_COLOURS[k], linestyle="--", linewidth=2)
            ax.text(
                chosen,
                0.03,
                f" chosen {chosen:.2f}",
                fontsize=8,
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.85},
            )
            ax.set(xlim=(0, 1), ylim=(0, 1.02), title=f"{name}: {task}")
            ax.grid(alpha=0.3)
            if row == 1:
                ax.set_xlabel("threshold")
    axes[0, 0].legend(loc="lower left", fontsize=8)
    fig.suptitle("Precision, recall and F1 against the threshold (dashed: the stored threshold)")
    return _save(fig, path)


def plot_presence_confusions(result: EvaluationResult, path: Path) -> Path:
    """Per class, the 2x2 presence confusion at its threshold, normalised by true row."""
    classes = result.classes
    fig = Figure(figsize=(2.9 * len(classes), 3.2), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(classes)))
    for ax, name, cm in zip(axes, classes, result.presence_confusion, strict=True):
        _draw_confusion(ax, cm, fontsize=9)
        ax.set_xticks([0, 1], ["absent", "present"])
        ax.set_yticks([0, 1], ["absent", "present"])
        ax.set(xlabel="predicted", ylabel="true", title=name)
    fig.suptitle("Presence per class, normalised by true row")
    return _save(fig, path)


def plot_heatmaps(
    result: EvaluationResult, mean: Sequence[float], std: Sequence[float], path: Path
) -> Path | None:
    """Per kept sample: the image, then each class's pixel probability map (0-1, one shared
    colour scale) titled with its presence probability; None when no sample was kept."""
    samples, classes = result.samples, result.classes
    if not samples:
        return None
    cols = 1 + len(classes)
    fig = Figure(figsize=(2.6 * cols + 0.8, 0.5 + 2.6 * len(samples)), layout="constrained")
    axes = fig.subplots(len(samples), cols, squeeze=False)
    image = None
    for row, sample in zip(axes, samples, strict=True):
        row[0].imshow(gallery.display_rgb(sample.image, mean, std))
        row[0].set_title(sample.id, fontsize=9)
        for k, name in enumerate(classes):
            image = row[k + 1].imshow(
                sample.seg_prob[k], cmap="magma", vmin=0, vmax=1, interpolation="nearest"
            )
            row[k + 1].set_title(f"{name} (p = {sample.presence_prob[k]:.2f})", fontsize=9)
        for ax in row:
            ax.axis("off")
    fig.colorbar(image, ax=axes, shrink=0.6, label="pixel probability")
    fig.suptitle("Probability heatmaps per class (title: the image's presence probability)")
    return _save(fig, path)
