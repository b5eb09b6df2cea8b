"""The demo's bookkeeping: steps re-run only when their inputs change; the index links artefacts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from mtqa.config import apply_overrides, named_config
from mtqa.train import train
from mtqa_cli.demo import DemoPlan, _digest, _step, write_index


def test_step_skips_unchanged_inputs_and_reruns_changed_ones(tmp_path: Path) -> None:
    plan = DemoPlan(out=tmp_path)
    runs: list[str] = []
    source = tmp_path / "input.txt"
    source.write_text("a")
    _step(plan, "s", _digest(source), lambda: runs.append("first"))
    _step(plan, "s", _digest(source), lambda: runs.append("again"))
    source.write_text("b")  # a changed input file changes the key
    _step(plan, "s", _digest(source), lambda: runs.append("changed"))
    assert runs == ["first", "changed"]
    assert "s" in plan.timings


def test_failed_step_leaves_no_stamp(tmp_path: Path) -> None:
    plan = DemoPlan(out=tmp_path)

    def boom() -> None:
        raise SystemExit("step failed")

    with pytest.raises(SystemExit):
        _step(plan, "s", "k", boom)
    runs: list[str] = []
    _step(plan, "s", "k", lambda: runs.append("retried"))
    assert runs == ["retried"]


def test_index_links_existing_artefacts_and_flags_missing_ones(tmp_path: Path) -> None:
    plan = DemoPlan(out=tmp_path)
    plan.evaluation.mkdir(parents=True)
    (plan.evaluation / "report.md").write_text("# report\n")
    plan.inspection.mkdir(parents=True)
    (plan.inspection / "a_overlay.png").write_bytes(b"\x89PNG")
    text = write_index(plan).read_text()
    assert "[evaluation report](evaluation/report.md)" in text
    assert "evaluation report (HTML): (missing)" in text
    assert "[overlay a_overlay.png](inspection/a_overlay.png)" in text
    assert "benchmark report: (missing)" in text


def _fake_outputs(plan: DemoPlan, stopped_by: str) -> None:
    plan.evaluation.mkdir(parents=True)
    (plan.evaluation / "metrics.json").write_text(
        json.dumps(
            {
                "split": "test",
                "presence_macro_f1": 0.9123,
                "defect_iou": 0.7012,
                "grade_accuracy": 0.8456,
            }
        )  # fmt: skip
    )
    plan.run.mkdir(parents=True)
    (plan.run / "summary.json").write_text(
        json.dumps({"epochs_run": 14, "stopped_by": stopped_by, "seconds": 150.2, "best_epoch": 13})
    )
    plan.bench.mkdir(parents=True)
    rows = [
        {"source": "locust", "target": "inspect", "variant": "int8", "users": 8,
         "throughput": 61.25, "p99_ms": 310.0},
        {"source": "locust", "target": "inspect", "variant": "fp32", "users": 8,
         "throughput": 55.0, "p99_ms": 330.0},
        {"source": "ort", "target": "net", "variant": "fp32", "users": 1, "throughput": 999.0},
    ]  # fmt: skip
    (plan.bench / "results.json").write_text(json.dumps({"rows": rows}))
    head = {
        "sdk_over_ort_median": 0.71,
        "served_over_naive": 3.2,
        "int8_over_fp32_served_median": 1.02,
    }
    (plan.bench / "summary.json").write_text(json.dumps(head))


def test_index_shows_headline_figures_and_step_times_after_a_rerun(tmp_path: Path) -> None:
    plan = DemoPlan(out=tmp_path)
    _fake_outputs(plan, stopped_by="epoch cap")
    _step(plan, "1 data", "k", lambda: None)
    text = write_index(plan).read_text()
    assert "| presence macro-F1 | 0.912 |" in text
    assert "| defect IoU | 0.701 |" in text
    assert "| grade accuracy | 0.846 |" in text
    assert "| served throughput (images/s) | 61.2 |" in text  # the best served point, not ORT
    assert "stopped by epoch cap" in text and "cut the run" not in text
    # the bench's ratios come with what they mean
    assert "Served / in-process ONNX Runtime 0.71" in text and "shared memory" in text
    assert "Served / naive server 3.20" in text and "INT8 / FP32 served 1.02" in text
    # and which CPU features the CPU variants need, read from this machine
    from mtqa_builder.openvino_variants import cpu_flags

    amx = "which this CPU has" if "amx_bf16" in cpu_flags() else "which this CPU lacks"
    assert "This CPU (" in text and "amx_int8" in text and amx in text

    rerun = DemoPlan(out=tmp_path)  # a re-run skipping every step keeps the earlier times
    _step(rerun, "1 data", "k", lambda: pytest.fail("up-to-date step ran"))
    _step(rerun, "2 train", "k", lambda: None)
    text = write_index(rerun).read_text()
    assert "{}" not in text
    assert "| 1 data |" in text and "an earlier run" in text
    assert "| 2 train |" in text and "this run" in text


def test_index_says_when_a_time_budget_cut_training(tmp_path: Path) -> None:
    plan = DemoPlan(out=tmp_path)
    _fake_outputs(plan, stopped_by="time budget")
    assert "The time budget cut the run" in write_index(plan).read_text()


def test_demo_training_is_fixed_by_epochs_and_seed() -> None:
    plan = DemoPlan(out=Path("unused"))
    assert plan.time_budget == 0 and plan.epochs > 0
    assert "train.time_budget=0" in plan.train_overrides
    assert plan.estimated_train_seconds() > 60


def test_two_trainings_with_the_same_seed_and_epochs_give_the_same_figures(
    tmp_path: Path,
) -> None:
    """The demo's recipe (fixed epochs, seed and threads, no budget) on a tiny slice of data."""
    results = []
    for name in ("a", "b"):
        cfg = named_config("tiny")
        apply_overrides(
            cfg,
            # one thread here: two threads on a loaded 2-core test machine take 20x longer
            [*DemoPlan(out=tmp_path).train_overrides, "train.epochs=2", "train.seed=5",
             "train.threads=1", "data.synth_sizes=[32,16,16]"],
        )  # fmt: skip
        result = train(cfg, "synth", tmp_path / name, progress=False, device="cpu")
        results.append((result.epochs_run, result.best_score, result.test))
    assert results[0] == results[1]
    assert results[0][0] == 2


def test_html_index_links_the_reports_and_embeds_overlays(tmp_path: Path) -> None:
    plan = DemoPlan(out=tmp_path)
    _fake_outputs(plan, stopped_by="epoch cap")
    (plan.evaluation / "report.html").write_text("<html></html>")
    plan.inspection.mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(plan.inspection / "a_overlay.png")
    write_index(plan)
    page = (tmp_path / "index.html").read_text()
    assert "href='evaluation/report.html'" in page
    assert "benchmark report (HTML): (missing)" in page
    assert "presence macro-F1" in page and "0.912" in page and "61.2" in page
    assert "src='data:image/png;base64," in page
