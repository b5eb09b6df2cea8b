"""`mtqa_bench.fresh_eval`: a synthetic checkpoint scored on a longer slice of fresh images."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mtqa_bench.fresh_eval import fresh_eval, main


def test_scores_the_asked_number_of_fresh_images(tiny_run: Path, capsys) -> None:
    result = fresh_eval(tiny_run, n_val=48, n_test=64)
    assert result["n_images"] == 64
    assert result["classes"] == json.loads((tiny_run / "config.json").read_text())["classes"]
    # The tiny_run fixture beats chance (0.43 / 0.01, see tests/test_train.py) by far.
    assert 0.5 < result["presence_macro_f1"] <= 1.0
    assert 0.1 < result["defect_iou"] <= 1.0
    assert fresh_eval(tiny_run, n_val=48, n_test=64) == result  # fresh, yet deterministic
    assert main(["--run", str(tiny_run), "--val", "48", "--test", "64"]) == 0
    assert "presence macro-F1" in capsys.readouterr().out


def test_refuses_a_run_not_trained_on_synthetic_data(tiny_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    config = json.loads((run / "config.json").read_text())
    config["data"]["source"] = "neu_seg"
    (run / "config.json").write_text(json.dumps(config))
    with pytest.raises(SystemExit, match="not trained on synthetic data"):
        fresh_eval(run)
