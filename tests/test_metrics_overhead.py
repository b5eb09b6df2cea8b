"""The interleaved metrics on/off benchmark: block order and the per-block summary.

The run itself (two real servers, minutes) is `python -m mtqa_bench.metrics_overhead`; its
figures are in docs/serving.md. Here: a load swing shared by a block cancels in its ratio.
"""

from __future__ import annotations

import pytest

from mtqa_bench.metrics_overhead import block_order, summarise


def test_blocks_alternate_abba_and_baab() -> None:
    assert block_order(0) == ("on", "off", "off", "on")
    assert block_order(1) == ("off", "on", "on", "off")


def test_a_linear_load_swing_cancels_within_each_block() -> None:
    """Throughput falling 10 % a window with metrics costing exactly 2 %: every block reads -2 %."""
    windows = []
    for block in range(6):
        for slot, mode in enumerate(block_order(block)):
            load = 300.0 * (1 - 0.1 * slot) * (1 + 0.3 * (block % 3))  # swings within and across
            windows.append(
                {"block": block, "mode": mode, "images_per_s": load * (0.98 if mode == "on" else 1)}
            )
    summary = summarise(windows)
    assert summary["blocks"] == 6 and summary["mean"]["on"] < summary["mean"]["off"]
    assert summary["block_change_pct"] == [pytest.approx(-2.0, abs=0.01)] * 6
    assert summary["median_change_pct"] == pytest.approx(-2.0, abs=0.01)
    low, high = summary["median_change_ci95_pct"]
    assert low == pytest.approx(-2.0, abs=0.01) and high == pytest.approx(-2.0, abs=0.01)


def test_the_interval_widens_with_noisy_blocks() -> None:
    changes = [-8.0, 5.0, -1.0, 2.0, -4.0, 3.0, 0.0, -2.0]
    windows = [
        {"block": b, "mode": m, "images_per_s": 100.0 * (1 + c / 100 if m == "on" else 1)}
        for b, c in enumerate(changes)
        for m in block_order(b)
    ]
    summary = summarise(windows)
    low, high = summary["median_change_ci95_pct"]
    assert low < summary["median_change_pct"] < high and high - low > 2
    assert summary["quartiles_change_pct"][0] < summary["quartiles_change_pct"][1]


def test_pairs_that_disagree_widen_the_interval() -> None:
    """Two server pairs reading 0 % and -6 %: the interval spans both, however many blocks."""
    windows = [
        {
            "pair": pair,
            "block": block,
            "mode": m,
            "images_per_s": 100.0 + (change if m == "on" else 0),
        }
        for pair, change in ((0, 0.0), (1, -6.0))
        for block in range(pair * 10, pair * 10 + 10)
        for m in ("on", "off")
    ]
    low, high = summarise(windows)["median_change_ci95_pct"]
    assert low == pytest.approx(-6.0, abs=0.01) and high == pytest.approx(0.0, abs=0.01)
