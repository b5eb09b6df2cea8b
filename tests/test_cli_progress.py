"""Progress of `mtqa build`, `evaluate` and `bench`: stage lines on stderr, stdout untouched."""

from __future__ import annotations

import io
import json
import shutil

import pytest
from rich.console import Console

from mtqa.progress import NO_PROGRESS, stage
from mtqa_bench.sweep import sweep_estimate
from mtqa_cli.main import main
from mtqa_cli.progress import StageProgress


def _console(terminal: bool) -> tuple[Console, io.StringIO]:
    sink = io.StringIO()
    return Console(file=sink, force_terminal=terminal, width=120), sink


def test_a_pipe_gets_one_line_per_finished_stage_and_no_bar():
    console, sink = _console(terminal=False)
    bar = StageProgress("build", console=console)
    with stage(bar, "gate int8", total=8) as gating:
        bar.advance(8)
        gating.detail = "PASS"
    with stage(bar, "sweep", total=4, detail="4 points, about 1 min"):
        pass
    lines = sink.getvalue().splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("mtqa build: gate int8 done in ") and lines[0].endswith("(PASS)")
    assert lines[1] == "mtqa build: sweep: 4 points, about 1 min"  # an estimate shows up front
    assert lines[2].startswith("mtqa build: sweep done in ")


def test_a_terminal_gets_a_live_bar_and_the_same_lines():
    console, sink = _console(terminal=True)
    bar = StageProgress("evaluate", console=console)
    with stage(bar, "score test", total=32):
        bar.advance(16)
        bar._bar.refresh()
        assert "score test" in sink.getvalue() and "16/32" in sink.getvalue()
    assert "mtqa evaluate: score test done in " in sink.getvalue()


def test_a_failed_stage_is_not_reported_done_and_its_bar_stops():
    console, sink = _console(terminal=True)
    bar = StageProgress("build", console=console)
    with pytest.raises(OSError), stage(bar, "publish"):
        raise OSError("read-only")
    assert bar._bar is None and "done" not in sink.getvalue()
    with stage(NO_PROGRESS, "anything", total=3) as quiet:  # the library default: silent
        quiet.advance()


def test_no_progress_writes_nothing():
    console, sink = _console(terminal=True)
    bar = StageProgress("bench", enabled=False, console=console)
    with stage(bar, "sweep", total=2, detail="2 points"):
        bar.advance()
    assert sink.getvalue() == ""


def test_build_names_its_stages_on_stderr_and_json_stays_json(tiny_run, tmp_path, capsys):
    args = ["build", "--run", str(tiny_run), "--repo", str(tmp_path / "repo")]
    args += ["--precision", "fp32,int8", "--calib-data", "synth", "--calib-count", "8"]
    args += ["--gate-limit", "8", "--tolerance", "100", "--json"]  # 8 images: gate not the point
    assert main(args) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["versions"]["mtqa_net"] == {"fp32": 1, "int8": 2}
    for name in ("calibration", "export", "gate fp32 (reference)", "convert int8", "publish"):
        assert f"mtqa build: {name} done in " in captured.err, captured.err
    assert "mtqa build: gate int8 done in " in captured.err and "(PASS)" in captured.err


def test_evaluate_names_its_stages_and_no_progress_silences_them(tiny_run, tmp_path, capsys):
    run = shutil.copytree(tiny_run, tmp_path / "run")  # --calibrate rewrites thresholds.json
    args = ["evaluate", "--run", str(run), "--limit", "16", "--samples", "1"]
    assert main([*args, "--out", str(tmp_path / "eval"), "--calibrate"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["n_images"] == 16
    for name in ("calibrate on val", "score test", "write report"):
        assert f"mtqa evaluate: {name} done in " in captured.err, captured.err
    assert main([*args, "--out", str(tmp_path / "quiet"), "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert " done in " not in captured.err
    json.loads(captured.out)


def test_the_sweep_states_its_size_and_time_before_it_starts():
    assert sweep_estimate(16, 10, True) == (
        "16 points x 20 s (Locust + perf_analyzer): at least 5.3 min"
    )
    assert sweep_estimate(1, 2, False) == "1 point x 2 s (Locust): at least 2 s"


@pytest.mark.server
def test_bench_names_the_sweep_with_its_size_on_stderr(triton_server, built_repo, tmp_path, capsys):
    out = tmp_path / "bench"
    code = main(
        ["bench", "--url", triton_server.grpc_url, "--repo-info", str(built_repo),
         "--users", "1,2", "--duration", "1", "--variants", "fp32", "--targets", "net",
         "--peers", "none", "--no-perf-analyzer", "--out", str(out)]
    )  # fmt: skip
    assert code == 0
    err = capsys.readouterr().err
    assert "mtqa bench: sweep: 2 points x 1 s (Locust): at least 2 s" in err, err
    assert "mtqa bench: sweep done in " in err and "(2 rows)" in err
    assert "mtqa bench: write report done in " in err
