"""The HTML reports open in a real browser: headless Chromium renders each page to a screenshot
showing its tables and embedded plots (skipped where Chromium is not installed)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from fixtures.evaluation import CLASSES, GRADES, labelled_dataset, oracle
from PIL import Image

from mtqa.evaluate import run_evaluation
from mtqa.evaluate.artefacts import write_artefacts
from mtqa_bench import report as bench_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed")


def _screenshot(page: Path, out: Path) -> np.ndarray:
    subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         f"--screenshot={out}", "--window-size=1200,1600", page.resolve().as_uri()],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    with Image.open(out) as shot:
        return np.asarray(shot.convert("RGB"))


def _rendered(pixels: np.ndarray) -> bool:
    """More than a blank page: many distinct colours (text, tables, plots)."""
    colours = np.unique(pixels.reshape(-1, 3)[::7], axis=0)
    return len(colours) > 50


def test_evaluation_report_renders(tmp_path: Path) -> None:
    def confused(images: np.ndarray) -> dict[str, np.ndarray]:
        out = oracle(images)
        out["presence_logits"][:, 0] *= -1
        return out

    result = run_evaluation(confused, labelled_dataset(n=8), CLASSES, GRADES, keep_samples=2)
    files = write_artefacts(result, tmp_path / "eval", {}, [0.0] * 3, [1.0] * 3, None)
    assert _rendered(_screenshot(files["report_html"], tmp_path / "eval.png"))


def test_bench_report_renders(tmp_path: Path) -> None:
    point = {"source": "locust", "target": "net", "variant": "fp32", "batching": "on"}
    row = {
        **point,
        "users": 4,
        "batch": 1,
        "throughput": 90.0,
        "p50_ms": 10.0,
        "p95_ms": 20.0,
        "p99_ms": 30.0,
    }
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"meta": {"options": {"users": [4]}}, "rows": [row]}))
    bench_report.write_report(results)
    assert _rendered(_screenshot(tmp_path / "report.html", tmp_path / "bench.png"))


def test_demo_index_renders(tmp_path: Path) -> None:
    from mtqa_cli.demo import DemoPlan, write_index

    plan = DemoPlan(out=tmp_path / "demo")
    plan.evaluation.mkdir(parents=True)
    (plan.evaluation / "metrics.json").write_text(json.dumps({"presence_macro_f1": 0.91}))
    write_index(plan)
    assert _rendered(_screenshot(plan.out / "index.html", tmp_path / "demo.png"))
