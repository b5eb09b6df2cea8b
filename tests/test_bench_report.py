"""Bench report and its inputs without a server: ratios, Markdown/PNGs, payloads, perf CSV parsing,
option checks and the CLI's error path."""

from __future__ import annotations

import base64
import io
import json
import re
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mtqa_bench import payloads, perf, report
from mtqa_bench.errors import BenchError
from mtqa_bench.sweep import BenchOptions
from mtqa_cli.main import main


def _row(source, target, variant, batching, users, throughput, **kw):
    base = {
        "source": source,
        "target": target,
        "variant": variant,
        "batching": batching,
        "users": users,
        "batch": 1,
        "throughput": throughput,
        "p50_ms": 10.0,
        "p95_ms": 20.0,
        "p99_ms": 30.0,
    }
    return {**base, **kw}


@pytest.fixture()
def results(tmp_path: Path) -> Path:
    parts = {"client_ms": 1.0, "network_ms": 2.0, "queue_ms": 3.0, "compute_ms": 4.0}
    rows = [
        _row("locust", "net", "fp32", "on", 4, 90.0, net_batch=3.6, **parts),
        _row("locust", "net", "fp32", "off", 4, 60.0, net_batch=1.0, **parts),
        _row("locust", "net", "int8", "on", 4, 180.0, net_batch=3.8, **parts),
        _row("perf_analyzer", "net", "fp32", "on", 4, 100.0, **parts),
        _row("locust", "inspect", "fp32", "on", 4, 50.0, p99_ms=80.0, **parts),
        _row("locust", "inspect", "fp32", "on", 16, 70.0, p99_ms=200.0, **parts),
        _row("ort", "net", "fp32", "n/a", 1, 120.0, batch=4),
        _row("ort", "net", "int8", "n/a", 1, 300.0, batch=4),
        _row("naive", "inspect", "fp32 eager", "n/a", 4, 10.0, p99_ms=100.0),
    ]
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"meta": {}, "notes": ["a note"], "rows": rows}))
    return path


def test_ratios_follow_the_rows(results: Path) -> None:
    head = report.summary(report.load(results))
    assert head["sdk_over_ort_best"] == pytest.approx(90.0 / 120.0)  # executed batch 3.6 -> 4
    assert head["sdk_over_ort_median"] == pytest.approx((90.0 / 120.0 + 180.0 / 300.0) / 2)
    assert head["int8_over_fp32_served_best"] == pytest.approx(2.0)
    assert head["int8_over_fp32_ort_median"] == pytest.approx(2.5)
    assert head["batching_gain"] == {"net fp32 u4": pytest.approx(1.5)}
    assert head["locust_vs_perf_max_gap"] == pytest.approx(0.1)
    assert head["locust_vs_perf_median_gap"] == pytest.approx(0.1)
    # 16 users has more throughput but a p99 above the naive server's: 4 users is the fair pick.
    assert head["served_over_naive"] == pytest.approx(5.0)


def test_report_writes_markdown_plots_and_summary(results: Path) -> None:
    head = report.write_report(results)
    folder = results.parent
    text = (folder / "report.md").read_text()
    for heading in ("Headline ratios", "All measurements", "Batching on / off", "a note"):
        assert heading in text
    for png in ("throughput_latency.png", "overhead.png", "batching_gain.png"):
        with Image.open(folder / png) as im:
            assert im.size[0] > 600 and im.size[1] > 300
    assert json.loads((folder / "summary.json").read_text()) == json.loads(json.dumps(head))
    assert "batching gain net fp32 u4" in report.format_summary(head)


def test_missing_or_foreign_results_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(BenchError, match="cannot read"):
        report.load(tmp_path / "nope.json")
    (tmp_path / "results.json").write_text("{}")
    with pytest.raises(BenchError, match="no 'rows'"):
        report.load(tmp_path)


def test_payloads_match_across_columns(tmp_path: Path) -> None:
    folder = payloads.write_payloads(tmp_path / "p", count=3, size=64, fmt="png", model_size=32)
    images = payloads.read_images(folder)
    assert len(images) == 3
    with Image.open(io.BytesIO(images[0])) as im:
        assert im.format == "PNG" and im.size == (64, 64)
    assert payloads.read_tensors(folder).shape == (3, 3, 32, 32)
    pa = json.loads(
        payloads.perf_analyzer_inputs(folder, tmp_path / "pa.json", "inspect").read_text()
    )
    wire = base64.b64decode(pa["data"][1]["image_bytes"]["b64"])
    assert struct.unpack("<I", wire[:4])[0] == len(images[1]) and wire[4:] == images[1]
    net = json.loads(payloads.perf_analyzer_inputs(folder, tmp_path / "n.json", "net").read_text())
    assert net["data"][0]["images"]["shape"] == [3, 32, 32]
    assert np.allclose(
        net["data"][0]["images"]["content"][:5], payloads.read_tensors(folder)[0].ravel()[:5]
    )


def test_perf_csv_is_parsed_in_milliseconds(tmp_path: Path) -> None:
    csv = tmp_path / "pa.csv"
    csv.write_text(
        "Concurrency,Inferences/Second,Client Send,Network+Server Send/Recv,Server Queue,"
        "Server Compute Input,Server Compute Infer,Server Compute Output,Client Recv,"
        "p50 latency,p90 latency,p95 latency,p99 latency\n"
        "4,56.5,7,12730,2000,192,20969,1535,5,32071,54986,63924,79334\n"
    )
    point = perf.parse_csv(csv)
    assert point.concurrency == 4 and point.throughput == 56.5
    assert point.server_queue_ms == pytest.approx(2.0)
    assert point.server_compute_ms == pytest.approx((192 + 20969 + 1535) / 1000)
    assert point.p99_ms == pytest.approx(79.334)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "either --repo"),
        ({"url": "h:1", "users": [0]}, "--users"),
        ({"url": "h:1", "batching": ["maybe"]}, "--batching"),
        ({"url": "h:1", "targets": ["gpu"]}, "--targets"),
        ({"url": "h:1", "peers": ["torchserve"]}, "--peers"),
    ],
)
def test_bad_options_are_rejected(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(BenchError, match=message):
        BenchOptions(out=tmp_path, **kwargs).validate()


def test_cli_reports_a_missing_repository(tmp_path: Path, capsys) -> None:
    code = main(["bench", "--repo", str(tmp_path / "none"), "--out", str(tmp_path / "o")])
    assert code == 3  # an input error, before any server is started
    err = capsys.readouterr().err
    assert err.startswith("mtqa bench: error: --repo ") and err.strip().endswith("no such folder")
    code = main(["bench", "--repo", str(tmp_path), "--out", str(tmp_path / "o")])
    assert code == 1
    assert "lists no variants" in capsys.readouterr().err  # and says how to build one


def test_locust_perf_gap_is_explained_point_by_point(results: Path) -> None:
    rows = report.load(results)["rows"]
    assert report.locust_vs_perf_gaps(rows) == []  # 90 vs 100 img/s: within 20 %
    rows[3] = {**rows[3], "throughput": 150.0, "client_ms": 0.01, "network_ms": 0.5}
    (line,) = report.locust_vs_perf_gaps(rows)
    assert "Locust 90 vs perf_analyzer 150 img/s (x0.60)" in line
    assert "3.00 ms" in line and "0.51 ms" in line


def test_ort_int8_over_fp32_pairs_equal_session_counts() -> None:
    rows = [
        _row("ort", "net", "fp32", "n/a", 1, 300.0, batch=32),
        _row("ort", "net", "fp32", "n/a", 2, 600.0, batch=32),
        _row("ort", "net", "int8", "n/a", 1, 570.0, batch=32),
        _row("ort", "net", "int8", "n/a", 2, 1140.0, batch=32),
    ]
    pairs = report.ort_int8_vs_fp32(rows)
    assert sorted((p["users"], p["ratio"]) for p in pairs) == [(1, 1.9), (2, 1.9)]


def test_html_report_is_self_contained_with_options_and_plain_names(results: Path) -> None:
    data = json.loads(results.read_text())
    data["meta"] = {"options": {"users": [4, 16], "shared_memory": False, "repo": None}}
    data["rows"] = [r for r in data["rows"] if r["source"] != "perf_analyzer"]
    results.write_text(json.dumps(data))
    report.write_report(results)
    folder = results.parent
    page = (folder / "report.html").read_text()
    srcs = re.findall(r"src='([^']*)'", page)
    assert len(srcs) == 3 and all(s.startswith("data:image/png;base64,") for s in srcs)
    hrefs = re.findall(r"href='([^']*)'", page)
    assert hrefs and all((folder / h).is_file() for h in hrefs)
    for text in (page, (folder / "report.md").read_text()):
        assert "<td>--users</td>" in text or "| --users | 4,16 |" in text  # options as a table
        assert "sdk_over_ort" not in text and "issue 7" not in text  # no internal keys
        assert "served (SDK) / in-process ORT" in text
        # nothing measured by perf_analyzer: its table is named as not measured, not drawn empty
        assert "Not measured in this run: Locust / perf_analyzer" in text
        assert "## Locust / perf_analyzer" not in text
        assert "<h2>Locust / perf_analyzer</h2>" not in text


def test_latency_panels_show_only_what_each_tool_measured(results: Path, tmp_path: Path) -> None:
    rows = report.load(results)["rows"]
    assert {r["source"] for r in report._panel_rows(rows, "inspect", "locust")} == {
        "locust",
        "naive",  # Locust drives the naive server: it belongs beside Locust's points only
    }
    assert {r["source"] for r in report._panel_rows(rows, "net", "perf_analyzer")} == {
        "perf_analyzer"
    }
    assert report._plain(30.0) == "30"  # plain tick labels, not 3x10^1
    only_ort = [r for r in rows if r["source"] == "ort"]
    assert report.plot_latency(only_ort, tmp_path / "none.png") is None
