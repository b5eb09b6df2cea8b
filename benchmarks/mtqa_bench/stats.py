"""Small numeric helpers shared by the peers and the report."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def latency_summary(times_ms: Sequence[float]) -> dict[str, float]:
    """Mean and p50/p95/p99 of a list of latencies in ms."""
    arr = np.asarray(times_ms, dtype=np.float64)
    if arr.size == 0:
        raise ValueError("no latencies to summarise")
    p50, p95, p99 = np.percentile(arr, [50, 95, 99])
    return {
        "avg_ms": float(arr.mean()),
        "p50_ms": float(p50),
        "p95_ms": float(p95),
        "p99_ms": float(p99),
    }


def ratio(num: float | None, den: float | None) -> float | None:
    """num / den, or None when either is missing or the denominator is zero."""
    if num is None or den is None or den == 0:
        return None
    return num / den
