"""write_artefacts on an in-memory evaluation: every file, the report's links, missing logs."""

import json
import re

import numpy as np
from fixtures.evaluation import CLASSES, GRADES, labelled_dataset, oracle

from mtqa.evaluate import run_evaluation
from mtqa.evaluate.artefacts import write_artefacts
from mtqa.evaluate.plots import read_training_log

INFO = {"checkpoint": "runs/x", "data": "memory", "split": "test", "thresholds_rule": "default"}
LOG = (
    "epoch,step,lr,seconds,loss_total,loss_segmentation,weight_presence,val_defect_iou,score,best\n"
    "0,4,0.003,1.2,3.4,1.6,1.0,0.07,0.1,1\n"
    "1,8,0.001,2.3,3.1,1.5,1.0,0.09,n/a,0\n"
)


def _result():
    return run_evaluation(oracle, labelled_dataset(n=6), CLASSES, GRADES, keep_samples=2)


def test_every_artefact_is_written_and_linked(tmp_path):
    log = tmp_path / "metrics.csv"
    log.write_text(LOG)
    files = write_artefacts(_result(), tmp_path / "out", INFO, [0.0] * 3, [1.0] * 3, log)
    expected = {"report", "metrics", "confusion_matrices", "pr_curves", "confusion_grade"}
    expected |= {"confusion_pixels", "training_curves", "overlays"}
    assert set(files) == expected
    for path in files.values():
        assert path.is_file() and path.stat().st_size > 0
    metrics = json.loads(files["metrics"].read_text())
    assert metrics["miou"] == 1.0 and metrics["data"] == "memory"
    confusion = json.loads(files["confusion_matrices"].read_text())
    assert np.trace(np.array(confusion["pixel"]["matrix"])) == 6 * 16 * 16
    report = files["report"].read_text()
    for link in re.findall(r"\]\(([^)]+)\)", report):
        assert (tmp_path / "out" / link).is_file(), link
    assert "| mIoU (defect classes) | 1.0000 |" in report
    assert "| any-defect AP (image level) |" in report
    assert "| mIoU (background + defect classes) | 1.0000 |" in report


def test_missing_or_empty_training_log_is_reported_not_fatal(tmp_path):
    empty = tmp_path / "metrics.csv"
    empty.write_text("epoch,loss_total\n")
    files = write_artefacts(_result(), tmp_path / "out", INFO, [0.0] * 3, [1.0] * 3, empty)
    assert "training_curves" not in files
    assert "(not available for this run)" in files["report"].read_text()
    files = write_artefacts(_result(), tmp_path / "out2", INFO, [0.0] * 3, [1.0] * 3, None)
    assert "training_curves" not in files


def test_training_log_keeps_numeric_columns_only(tmp_path):
    log = tmp_path / "metrics.csv"
    log.write_text(LOG + "2,12,0.0,3.4,2.9,1.4,1.0,0.1,0.2,1\n")
    columns = read_training_log(log)
    assert columns["loss_total"] == [3.4, 3.1, 2.9]
    assert np.isnan(columns["score"][1])  # the non-numeric cell, not the whole column
