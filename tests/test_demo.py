"""The demo's bookkeeping: steps re-run only when their inputs change; the index links artefacts."""

from __future__ import annotations

from pathlib import Path

import pytest
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
    assert "[overlay a_overlay.png](inspection/a_overlay.png)" in text
    assert "benchmark report: (missing)" in text
