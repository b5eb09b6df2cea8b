"""`mtqa evaluate` and `calibrate_run` on the trained tiny checkpoint (`tiny_run` fixture)."""

import json
import re
import shutil

import numpy as np
import pytest

from mtqa.calibrate import calibrate_run, checkpoint_split
from mtqa.checkpoint import load_checkpoint
from mtqa.evaluate import evaluate_predictor, load_thresholds, run_evaluation, torch_predict_fn
from mtqa_cli.main import main

PNGS = (
    "pr_curves.png",
    "confusion_grade.png",
    "confusion_pixels.png",
    "training_curves.png",
    "overlays.png",
    "threshold_curves.png",
    "confusion_presence.png",
)
# Every split is capped so the suite stays fast on 2 shared cores.
LIMIT = 32
KEYS = (
    "presence_macro_f1",
    "miou",
    "miou_with_background",
    "defect_iou",
    "grade_accuracy",
    "grade_qwk",
)


@pytest.fixture
def run_copy(tiny_run, tmp_path):
    """A private copy of the tiny run: calibration rewrites its thresholds.json."""
    return shutil.copytree(tiny_run, tmp_path / "run")


def test_evaluate_writes_every_artefact(run_copy, tmp_path, capsys):
    out = tmp_path / "eval"
    rc = main(
        ["evaluate", "--run", str(run_copy), "--out", str(out), "--calibrate"]
        + ["--samples", "2", "--batch-size", "16", "--limit", str(LIMIT)]
    )
    assert rc == 0, capsys.readouterr().err
    for name in PNGS:
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, name
    metrics = json.loads((out / "metrics.json").read_text())
    for key in KEYS:
        assert key in metrics, key
    ckpt = load_checkpoint(run_copy)
    for c in ckpt.classes:
        assert f"iou/{c}" in metrics and f"presence_f1/{c}" in metrics
    assert metrics["split"] == "test" and metrics["thresholds_selected_on"] == "val"
    confusion = json.loads((out / "confusion_matrices.json").read_text())
    pixel = np.array(confusion["pixel"]["matrix"])
    assert pixel.shape == (len(ckpt.classes) + 1,) * 2
    assert np.array(confusion["grade"]["matrix"]).sum() == metrics["n_images"]
    report = (out / "report.md").read_text()
    links = re.findall(r"\]\(([^)]+)\)", report)
    assert set(PNGS) | {"metrics.json", "confusion_matrices.json"} <= set(links)
    assert all((out / link).is_file() for link in links)
    assert "data:image/png;base64," in (out / "report.html").read_text()
    stored = load_thresholds(run_copy, ckpt.classes)
    assert stored["selected_on"] == "val" and stored["rule"] == "max_f1"
    summary = json.loads(capsys.readouterr().out)
    assert summary["miou"] == metrics["miou"]


def test_command_figures_equal_evaluate_predictor(run_copy, tmp_path):
    out = tmp_path / "eval"
    args = ["--run", str(run_copy), "--out", str(out), "--samples", "0"]
    assert main(["evaluate", *args, "--limit", str(LIMIT)]) == 0
    ckpt = load_checkpoint(run_copy)
    dataset, _ = checkpoint_split(ckpt, "test", limit=LIMIT)
    direct = evaluate_predictor(
        torch_predict_fn(ckpt.model), dataset, ckpt.classes, ckpt.grades, ckpt.thresholds
    )
    written = json.loads((out / "metrics.json").read_text())
    for key, value in direct.items():
        assert written[key] == pytest.approx(value, nan_ok=True), key


def test_calibrate_target_recall_meets_recall_on_val(run_copy):
    stored = calibrate_run(run_copy, rule="target_recall", target_recall=0.9, limit=LIMIT)
    assert load_thresholds(run_copy) == stored
    assert stored["target_recall"] == 0.9 and stored["selected_on"] == "val"
    ckpt = load_checkpoint(run_copy)
    dataset, _ = checkpoint_split(ckpt, "val", limit=LIMIT)
    result = run_evaluation(
        torch_predict_fn(ckpt.model), dataset, ckpt.classes, ckpt.grades, ckpt.thresholds
    )
    notes = stored["notes"]  # classes val could not decide keep the default: no recall promise
    for c in ckpt.classes:
        recall = result.metrics[f"presence_recall/{c}"]
        assert np.isnan(recall) or recall >= 0.9 or c in notes["presence"], c
        # pixel recall from the same streaming histogram the segmentation cut was chosen on
        k = ckpt.classes.index(c)
        _, tp, _, fn = result.pixel_histogram.curve(k)
        cut = int(round(stored["segmentation"][c] * result.pixel_histogram.bins))
        if tp[0] > 0 and c not in notes["segmentation"]:
            assert tp[cut] / (tp[cut] + fn[cut]) >= 0.9, c


def test_evaluate_scores_the_whole_split_unless_limited(run_copy, tmp_path, capsys):
    """A run trained under data.limit is still scored on the whole split, and says so."""
    config_path = run_copy / "config.json"
    config = json.loads(config_path.read_text())
    config["data"]["limit"] = 8
    config_path.write_text(json.dumps(config))
    whole = len(checkpoint_split(load_checkpoint(run_copy), "test")[0])
    assert whole > 8
    args = ["evaluate", "--run", str(run_copy), "--samples", "0"]
    assert main([*args, "--out", str(tmp_path / "whole")]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary["n_images"] == whole and summary["limit"] is None
    assert summary["split"] == "test" and summary["data"] == "synth"
    assert f"scored {whole} images of the 'test' split of synth (the whole split" in captured.err
    assert main([*args, "--out", str(tmp_path / "part"), "--limit", "5"]) == 0
    assert json.loads(capsys.readouterr().out)["n_images"] == 5


def test_evaluate_reports_bad_input_clearly(run_copy, tmp_path, capsys):
    # every one an input error (exit 3), one line on stderr
    rc = main(["evaluate", "--run", str(tmp_path / "missing"), "--out", str(tmp_path)])
    assert rc == 3 and "no such run directory" in capsys.readouterr().err
    rc = main(["evaluate", "--run", str(tmp_path), "--out", str(tmp_path / "e")])
    assert rc == 3 and "not a checkpoint directory" in capsys.readouterr().err
    rc = main(
        ["evaluate", "--run", str(run_copy), "--out", str(tmp_path / "e")]
        + ["--data", str(tmp_path / "no_such_dataset")]
    )
    assert rc == 3 and "mtqa evaluate: error: --data" in capsys.readouterr().err
    (run_copy / "thresholds.json").write_text('{"presence": {}}')
    rc = main(["evaluate", "--run", str(run_copy), "--out", str(tmp_path / "e")])
    assert rc == 3 and "has no threshold for" in capsys.readouterr().err
