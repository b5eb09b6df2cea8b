"""benchmarks/neu_study.py: argument checks, the results table, and one real (synthetic) arm."""

import json

import pytest

from mtqa_bench.neu_study import ArmOutcome, main, parse_args, results_markdown


def test_parse_args_rejects_unknown_arm_and_bad_budget():
    with pytest.raises(SystemExit):
        parse_args(["--arms", "hard_fixed,telepathy"])
    with pytest.raises(SystemExit):
        parse_args(["--budget", "0"])
    assert parse_args(["--arms", "hard_fixed, soft_fixed"]).arms == ["hard_fixed", "soft_fixed"]


def test_results_table_shows_only_the_tasks_an_arm_trained():
    args = parse_args(["--budget", "60"])
    metrics = {
        "miou": 0.5,
        "miou_with_background": 0.25,
        "defect_iou": 0.3,
        "presence_macro_f1": 0.9,
    }
    outcomes = [
        ArmOutcome("single_segmentation", ["segmentation"], 3, 59.6, True, metrics),
        ArmOutcome("hard_fixed", ["presence", "segmentation", "grade"], 0, 60, True, None, "none"),
    ]
    text = results_markdown(args, outcomes)
    seg_row = next(line for line in text.splitlines() if line.startswith("| single_seg"))
    cells = [c.strip() for c in seg_row.strip("|").split("|")]
    assert cells[:5] == ["single_segmentation", "segmentation", "3", "60", "yes"]
    # presence columns are blank for a segmentation-only arm even though the dict has a value
    assert cells[5:] == ["-", "-", "0.5000", "0.2500", "0.3000", "-", "-"]
    assert "- hard_fixed: none" in text


@pytest.mark.slow
def test_study_runs_a_synthetic_arm_end_to_end(tmp_path):
    out, results = tmp_path / "study", tmp_path / "results.md"
    rc = main(
        ["--data", "synth", "--config", "tiny", "--arms", "hard_fixed", "--budget", "300"]
        + ["--epochs", "1", "--threads", "1", "--out", str(out), "--results", str(results)]
        + ["--set", "data.image_size=32", "--set", "data.synth_sizes=[48,24,24]"]
        + ["--set", "train.num_workers=0", "--set", "train.batch_size=16"]
    )
    assert rc == 0
    (row,) = json.loads((out / "results.json").read_text())
    assert row["epochs_done"] == 1 and not row["cut_by_budget"]
    assert 0 <= row["metrics"]["miou"] <= 1 and row["metrics"]["n_images"] == 24
    assert (out / "hard_fixed" / "thresholds.json").is_file()
    assert "| hard_fixed | presence+segmentation+grade | 1 |" in results.read_text()
