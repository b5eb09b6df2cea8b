"""Typed errors of the benchmark harness: every failure the user can fix becomes one of these."""

from __future__ import annotations


class BenchError(RuntimeError):
    """A benchmark could not be set up or run (bad options, missing files, a failed tool)."""


class ToolUnavailableError(BenchError):
    """An optional external tool (perf_analyzer) cannot be had on this machine."""
