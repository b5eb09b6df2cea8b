"""PNG plots of an evaluation: PR curves, confusion matrices, training curves, mask overlays.

Figures are built with ``matplotlib.figure.Figure`` directly (no pyplot), which renders with the
Agg canvas and leaves no global GUI state behind: safe in servers, tests and headless hosts.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from sklearn.metrics import precision_recall_curve

from mtqa.evaluate.evaluation import EvaluationResult
from mtqa.evaluate.metrics import mask_labels, pixel_labels

DPI = 110
# Bookkeeping columns of metrics.csv that are not curves worth plotting.
_NOT_PLOTTED = {"step", "lr", "seconds", "time", "best"}
# One distinct colour per defect class (tab10 order); overlays leave background transparent.
_CLASS_COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2"]


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


def plot_confusion(cm: np.ndarray, labels: Sequence[str], path: Path, title: str) -> Path:
    """Confusion matrix coloured by row-normalised rate, annotated with counts (truth in rows)."""
    cm = np.asarray(cm)
    rows = cm.sum(axis=1, keepdims=True)
    rate = np.divide(cm, rows, out=np.zeros(cm.shape, dtype=float), where=rows > 0)
    size = 1.2 + 0.9 * len(labels)
    fig = Figure(figsize=(size + 1.5, size))
    ax = fig.subplots()
    image = ax.imshow(rate, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, label="fraction of true row")
    ax.set_xticks(range(len(labels)), labels, rotation=35, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(
                j,
                i,
                f"{cm[i, j]:,}",
                ha="center",
                va="center",
                fontsize=8,
                color="white" if rate[i, j] > 0.6 else "black",
            )
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


def _display_image(image: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """Undo ``(x/255 - mean) / std`` and return an RGB array in [0, 1], HWC."""
    rgb = image * np.asarray(std)[:, None, None] + np.asarray(mean)[:, None, None]
    return np.clip(rgb.transpose(1, 2, 0), 0, 1)


def plot_overlays(
    result: EvaluationResult, mean: Sequence[float], std: Sequence[float], path: Path
) -> Path | None:
    """Per kept sample: the image, the true masks over it and the predicted masks over it (the
    single-label pixel decision used for mIoU); None when no sample was kept."""
    samples, classes = result.samples, result.classes
    if not samples:
        return None
    seg_thr = np.array([result.metrics[f"threshold_segmentation/{c}"] for c in classes])
    pres_thr = np.array([result.metrics[f"threshold_presence/{c}"] for c in classes])
    colours = ["#00000000", *(_CLASS_COLOURS[k % len(_CLASS_COLOURS)] for k in range(len(classes)))]
    cmap = ListedColormap(colours)
    fig = Figure(figsize=(9, 0.4 + 3 * len(samples)), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(samples), 3))
    for row, sample in zip(axes, samples, strict=True):
        rgb = _display_image(sample.image, mean, std)
        truth = mask_labels(sample.mask)
        pred = pixel_labels(sample.seg_prob, seg_thr)
        for ax, (labels, title) in zip(
            row, ((None, sample.id), (truth, "truth"), (pred, "prediction")), strict=True
        ):
            ax.imshow(rgb)
            if labels is not None:
                ax.imshow(
                    np.ma.masked_equal(labels, 0),
                    cmap=cmap,
                    vmin=0,
                    vmax=len(classes),
                    alpha=0.55,
                    interpolation="nearest",
                )
            ax.set_title(title, fontsize=9)
            ax.axis("off")
        found = [
            c for c, p, t in zip(classes, sample.presence_prob, pres_thr, strict=True) if p >= t
        ]
        row[2].set_title(f"prediction (present: {', '.join(found) or 'none'})", fontsize=9)
    fig.legend(
        [Patch(color=colours[k + 1]) for k in range(len(classes))],
        classes,
        loc="outside upper center",
        ncol=len(classes),
    )
    return _save(fig, path)
