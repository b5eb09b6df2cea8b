"""`mtqa monitor`'s figures from two scrapes of Triton's text exposition (the live view runs
against a real server in tests/test_business_metrics.py)."""

from __future__ import annotations

import math

from mtqa_cli.commands.monitor import metrics_url
from mtqa_cli.monitor_figures import figures, parse

BASE = {"model": "mtqa_postprocess", "version": "1"}


def _text(images: int, crack: int, net_count: int, net_execs: int, queue_us: int) -> str:
    return f"""# HELP mtqa_images_inspected_total Images answered
# TYPE mtqa_images_inspected_total counter
mtqa_images_inspected_total{{model="mtqa_postprocess",version="1"}} {images}
mtqa_images_failed_total{{model="mtqa_postprocess",version="1"}} 1
mtqa_defects_total{{class="crack",model="mtqa_postprocess",version="1"}} {crack}
mtqa_defects_total{{class="stain",model="mtqa_postprocess",version="1"}} 0
mtqa_grade_total{{grade="ok",model="mtqa_postprocess",version="1"}} {images - crack}
mtqa_grade_total{{grade="reject",model="mtqa_postprocess",version="1"}} {crack}
nv_inference_count{{model="mtqa_inspect",version="1"}} {images}
nv_inference_count{{model="mtqa_net",version="1"}} {net_count}
nv_inference_exec_count{{model="mtqa_net",version="1"}} {net_execs}
nv_inference_request_success{{model="mtqa_net",version="1"}} {net_count}
nv_inference_queue_duration_us{{model="mtqa_net",version="1"}} {queue_us}
nv_inference_request_summary_us{{model="mtqa_inspect",version="1",quantile="0.5"}} 12000
nv_inference_request_summary_us{{model="mtqa_inspect",version="1",quantile="0.99"}} Nan
mtqa_input_drift_score{{model="mtqa_preprocess",version="1",model_instance="i0"}} 0.25
mtqa_input_drift_score{{model="mtqa_preprocess",version="1",model_instance="i1"}} 0.125
mtqa_input_drift_group_score{{model="pre",version="1",model_instance="i0",group="size"}} 0.25
mtqa_input_drift_group_score{{model="pre",version="1",model_instance="i1",group="size"}} 0.5
"""


def test_figures_are_rates_over_the_interval_and_totals_since_start() -> None:
    before = parse(_text(images=100, crack=10, net_count=100, net_execs=50, queue_us=0))
    after = parse(_text(images=300, crack=60, net_count=300, net_execs=100, queue_us=400_000))
    fig = figures(before, after, interval_s=4.0)
    assert fig.images_per_s == 50.0
    assert fig.defects == {"crack": (0.25, 60.0), "stain": (0.0, 0.0)}
    assert fig.grades == {"ok": (0.75, 240.0), "reject": (0.25, 60.0)}
    assert fig.batch_size == 4.0  # 200 images in 50 executions
    assert fig.queue_ms["mtqa_net"] == 2.0  # 400 ms over 200 requests
    assert math.isnan(fig.queue_ms["mtqa_preprocess"])  # no traffic: no figure, no zero
    assert fig.latency_ms["0.5"] == 12.0 and math.isnan(fig.latency_ms["0.99"])
    assert (fig.images_total, fig.failed_total, fig.drift_score) == (300.0, 1.0, 0.25)
    assert fig.drift_groups == {"size": 0.5}  # the largest over the instances' windows
    assert not fig.notes


def test_a_server_without_mtqa_series_is_named_so() -> None:
    plain = parse('nv_inference_count{model="x",version="1"} 3\n')
    assert figures(plain, plain, 1.0).notes


def test_metrics_url_accepts_host_port() -> None:
    assert metrics_url("127.0.0.1:8002") == "http://127.0.0.1:8002/metrics"
    assert metrics_url("http://h:1/metrics") == "http://h:1/metrics"
