"""The GPU reference script runs on CPU in its quick mode and writes its JSON and table."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "mtqa_bench" / "gpu_check.py"


def test_quick_cpu_mode_writes_reference_json(tmp_path: Path) -> None:
    out = tmp_path / "gpu_reference.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--device", "cpu", "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    assert report["device_type"] == "cpu" and "random weights" in report["model"]
    assert {(r["dtype"], r["batch"]) for r in report["results"]} == {
        ("fp32", 1), ("fp32", 2), ("bf16", 1), ("bf16", 2)
    }  # fmt: skip
    assert all(r["images_per_s"] > 0 and r["mode"] == "eager" for r in report["results"])
    assert "best images/s" in proc.stdout


def test_bad_options_fail_cleanly(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--device", "cpu", "--dtypes", "fp8", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "unknown dtypes ['fp8']" in proc.stderr
    assert "Traceback" not in proc.stderr
