"""Which perf_analyzer the bench runs: an installed one that starts (PyPI's `perf-analyzer`
package, or one on PATH), else the binary of the tritonclient 2.51.0 wheel."""

from __future__ import annotations

from pathlib import Path

import pytest

from mtqa_bench import perf
from mtqa_bench.errors import ToolUnavailableError


def _fallback_or_skip() -> perf.PerfAnalyzer:
    try:
        return perf.ensure_perf_analyzer()
    except ToolUnavailableError as exc:  # no registry reachable and nothing cached
        pytest.skip(f"no perf_analyzer here: {exc}")


def _script(folder: Path, body: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "perf_analyzer"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


def _package_binary() -> bool:
    return any(where == "the perf-analyzer package" for _, where in perf.installed_binaries())


def test_whichever_perf_analyzer_is_found_starts():
    tool = _fallback_or_skip()
    assert perf.start_problem(tool) is None
    starting = [
        b for b, w in perf.installed_binaries() if not perf.start_problem(perf.PerfAnalyzer(b))
    ]
    if starting:  # an installed one that starts wins over the wheel
        assert tool.binary == starting[0] and tool.lib_dir is None
    else:
        assert tool.source.startswith(f"the tritonclient=={perf.WHEEL_VERSION} wheel")


def test_an_installed_one_that_starts_is_preferred(tmp_path, monkeypatch):
    if _package_binary():
        pytest.skip("the perf-analyzer package is installed: it comes before PATH")
    script = _script(tmp_path / "bin", 'echo "Perf Analyzer Version 9.9.9" >&2')
    monkeypatch.setenv("PATH", f"{script.parent}:{Path('/usr/bin')}:{Path('/bin')}")
    tool = perf.ensure_perf_analyzer(tmp_path / "cache")
    assert tool.binary == script and tool.lib_dir is None
    assert tool.source == f"PATH ({script})"
    assert not (tmp_path / "cache").exists()  # the fallback was not fetched


def test_one_that_does_not_start_is_passed_over_with_the_reason(tmp_path, monkeypatch):
    if _package_binary():
        pytest.skip("the perf-analyzer package is installed: it comes before PATH")
    _fallback_or_skip()  # the wheel is in the default cache from here on
    glibc = "perf_analyzer: /lib/x86_64-linux-gnu/libc.so.6: version `GLIBC_2.38' not found"
    (tmp_path / "loader.txt").write_text(glibc + "\n")  # its words, as the loader prints them
    script = _script(tmp_path / "bin", f"cat {tmp_path / 'loader.txt'} >&2; exit 1")
    monkeypatch.setenv("PATH", f"{script.parent}:{Path('/usr/bin')}:{Path('/bin')}")
    tool = perf.ensure_perf_analyzer()
    assert tool.binary != script and perf.start_problem(tool) is None
    assert f"PATH ({script}) does not start here: {glibc}" in tool.source
