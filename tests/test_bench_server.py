"""`mtqa bench` against the real local Triton: a short sweep must produce the report with non-zero
throughput in every column (Locust, perf_analyzer, server statistics, in-process ORT, naive peer),
and repository views must switch batching off and pin each precision's ensemble."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mtqa_bench import repo_view
from mtqa_cli.main import main

pytestmark = pytest.mark.server


def test_views_switch_batching_and_pin_variants(built_repo: Path, tmp_path: Path) -> None:
    from mtqa_builder import configs

    info = repo_view.inspect_repository(built_repo)
    assert set(info.variants) == {"fp32", "int8"} and info.checkpoint is not None
    view = repo_view.write_view(built_repo, tmp_path / "off", False, info.variants)
    for model in ("mtqa_net", "mtqa_preprocess", "mtqa_postprocess"):
        cfg = configs.parse((view / model / "config.pbtxt").read_text())
        assert not cfg.HasField("dynamic_batching")
        assert cfg.max_batch_size > 0
    for precision, version in info.variants.items():
        name = repo_view.ensemble_name(precision)
        cfg = configs.parse((view / name / "config.pbtxt").read_text())
        steps = {s.model_name: s.model_version for s in cfg.ensemble_scheduling.step}
        assert cfg.name == name and steps["mtqa_net"] == int(version)
    source = configs.parse((built_repo / "mtqa_net" / "config.pbtxt").read_text())
    assert source.HasField("dynamic_batching")  # the built repository is left as it was


def test_short_bench_produces_every_column(triton_server, built_repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench"
    code = main(
        ["bench", "--url", triton_server.grpc_url, "--repo-info", str(built_repo),
         "--users", "2", "--duration", "2", "--variants", "fp32", "--image-px", "128",
         "--out", str(out)]
    )  # fmt: skip
    assert code == 0
    data = json.loads((out / "results.json").read_text())
    rows, notes = data["rows"], data["notes"]
    by_source = {}
    for row in rows:
        by_source.setdefault(row["source"], []).append(row)
    for source in ("locust", "ort", "naive"):
        assert by_source.get(source), f"no {source} rows; notes: {notes}"
        assert all(r["throughput"] > 0 for r in by_source[source])
    # The in-process peer runs 1 session and as many as the server has mtqa_net instances.
    instances = repo_view.inspect_repository(built_repo).instances
    assert {r["users"] for r in by_source["ort"]} == {1, instances}
    if "perf_analyzer" not in by_source:  # only when the wheel cannot be downloaded here
        assert any("perf_analyzer column skipped" in n for n in notes), notes
    served = by_source["locust"]
    assert {r["target"] for r in served} == {"inspect", "net"}
    for r in served:
        assert r["failures"] == 0
        assert r["compute_ms"] > 0 and r["queue_ms"] >= 0 and r["client_ms"] >= 0
        assert r["p50_ms"] <= r["p99_ms"]
    assert next(r for r in served if r["target"] == "net")["net_batch"] >= 1
    md = (out / "report.md").read_text()
    for column in report_columns():
        assert column in md
    assert (out / "throughput_latency.png").stat().st_size > 10_000
    assert (out / "overhead.png").stat().st_size > 10_000
    summary = json.loads((out / "summary.json").read_text())
    assert summary["sdk_over_ort_best"] > 0
    # None when no served point had a p99 within the naive server's (a 10 s run on a loaded
    # host can catch one outlier); the ratio itself is checked on fixed rows in test_bench_report.
    assert "served_over_naive" in summary


def report_columns() -> tuple[str, ...]:
    from mtqa_bench.report import COLUMNS

    return COLUMNS


@pytest.mark.slow
def test_own_server_with_batching_off(built_repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench"
    code = main(
        ["bench", "--repo", str(built_repo), "--users", "2", "--duration", "2",
         "--variants", "fp32,int8", "--batching", "off", "--targets", "inspect",
         "--peers", "none", "--no-perf-analyzer", "--out", str(out)]
    )  # fmt: skip
    assert code == 0
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert {(r["variant"], r["batching"]) for r in rows} == {("fp32", "off"), ("int8", "off")}
    assert all(r["throughput"] > 0 and r["net_batch"] == 1.0 for r in rows)


def test_shared_memory_points_pass_tensors_outside_grpc(
    triton_server, built_repo: Path, tmp_path: Path
) -> None:
    import tritonclient.grpc as grpcclient

    out = tmp_path / "bench"
    code = main(
        ["bench", "--url", triton_server.grpc_url, "--repo-info", str(built_repo),
         "--users", "2", "--duration", "2", "--variants", "fp32", "--targets", "net",
         "--request-batch", "4", "--shared-memory", "--peers", "ort", "--out", str(out),
         "--key-file", str(triton_server.key_file)]  # shm registration needs the control key
    )  # fmt: skip
    assert code == 0
    results = (out / "results.json").read_text()
    assert triton_server.control.key not in results  # the key is never written to a report
    rows = json.loads(results)["rows"]
    served = [r for r in rows if r["source"] in ("locust", "perf_analyzer")]
    assert served and all(r["transport"] == "shm" for r in served)
    assert all(r["throughput"] > 0 and r.get("failures", 0) == 0 for r in served)
    assert any(r["source"] == "ort" and r["batch"] == 4 for r in rows)
    # Every client unregistered its regions: the server holds none afterwards.
    with grpcclient.InferenceServerClient(triton_server.grpc_url) as client:
        status = client.get_system_shared_memory_status(
            as_json=True, headers=triton_server.control.grpc_headers()
        )
    assert not status.get("regions"), status
