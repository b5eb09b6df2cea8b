"""Business metrics of the served models, scraped by a real Prometheus.

A fresh Triton serves the builder's repository (so every counter starts at zero), Debian's
`prometheus` scrapes its metrics port on loopback every second, a known set of synthetic images
goes through the SDK, and Prometheus's HTTP API must then hold exactly what the SDK returned:
defects, regions and grades per class, the presence-probability histogram bucket by bucket.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml

from mtqa_client import InspectionClient, ItemError
from mtqa_serving import TritonServer
from mtqa_serving.ports import free_ports

pytestmark = pytest.mark.server

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "builder/mtqa_builder/triton_models/postprocess_core.py"
ALERT_RULES = ROOT / "docker/prometheus/alerts.yml"
MODEL = "mtqa_postprocess"
# the presence histogram's `le` labels (postprocess_core.PROBABILITY_BUCKETS, then +Inf)
BUCKET_LES = ("0.05", "0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9", "0.95", "+Inf")


def _core():
    spec = importlib.util.spec_from_file_location("_postprocess_core_under_test", CORE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tallies_count_answered_images_only() -> None:
    core = _core()
    result = {
        "presence_prob": np.array([[0.875, 0.125], [0.0, 0.0], [0.625, 0.75]], np.float32),
        "presence_decision": np.array([[True, False], [False, False], [True, True]]),
        "grade_index": np.array([[2], [-1], [0]], np.int32),
        "regions": np.array(
            [
                [[0, 0.9, 0, 0, 1, 1], [0, 0.8, 2, 2, 3, 3], [-1, -1, -1, -1, -1, -1]],
                [[-1] * 6] * 3,
                [[1, 0.7, 0, 0, 1, 1], [-1] * 6, [-1] * 6],
            ],
            np.float32,
        ),
    }
    t = core.tallies(result, np.array([True, False, True]), grades=3)
    assert (t["images"], t["failed"]) == (2, 1)
    assert t["defects"].tolist() == [2, 1] and t["regions"].tolist() == [2, 1]
    assert t["grades"].tolist() == [1, 0, 1]
    # cumulative per bound 0.05 ... 0.95, +Inf: class 0 saw 0.875 and 0.625, class 1 0.125, 0.75
    assert t["presence_buckets"][0].tolist() == [0, 0, 0, 0, 0, 0, 0, 1, 1, 2, 2, 2]
    assert t["presence_buckets"][1].tolist() == [0, 0, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2]
    assert t["presence_sum"].tolist() == [1.5, 0.875]
    assert t["region_buckets"].tolist() == [0, 1, 2, 2, 2, 2, 2, 2, 2]  # 0,1,2,3,5,8,13,21,+Inf
    assert t["region_sum"] == 3
    assert [core.bucket_label(b) for b in (0.05, 1.0, float("inf"))] == ["0.05", "1", "+Inf"]


# --- a real Prometheus -------------------------------------------------------------------------


class Prometheus:
    """A prometheus process on loopback scraping `target` every second, storage in `workdir`."""

    def __init__(self, binary: str, target: str, workdir: Path) -> None:
        (self.port,) = free_ports(1)
        config = workdir / "prometheus.yml"
        config.write_text(
            json.dumps(  # JSON is YAML
                {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "scrape_configs": [
                        {"job_name": "triton", "static_configs": [{"targets": [target]}]}
                    ],
                }
            )
        )
        self.log = (workdir / "prometheus.log").open("w")
        self.process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.url = f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"prometheus exited with {self.process.returncode}")
            try:
                urllib.request.urlopen(f"{self.url}/-/ready", timeout=2).read()
                return
            except OSError:
                time.sleep(0.2)
        raise TimeoutError(f"prometheus not ready within {timeout_s} s")

    def query(self, expr: str) -> dict[tuple, float]:
        """Instant query -> {sorted label items (without __name__): value}."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        body = json.loads(urllib.request.urlopen(url, timeout=10).read())
        assert body["status"] == "success", body
        return {
            tuple(sorted((k, v) for k, v in s["metric"].items() if k != "__name__")): float(
                s["value"][1]
            )
            for s in body["data"]["result"]
        }

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


def _binary() -> str:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("prometheus is not installed (`make prometheus` installs Debian's package)")
    return binary


@pytest.fixture(scope="module")
def fresh_server(built_repo: Path) -> Iterator[TritonServer]:
    """Its own server on the built repository: counters start at zero for this module."""
    server = TritonServer(built_repo, startup_timeout=180)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def prometheus(fresh_server: TritonServer, tmp_path_factory) -> Iterator[Prometheus]:
    target = fresh_server.metrics_url.split("//", 1)[1].split("/", 1)[0]
    prom = Prometheus(_binary(), target, tmp_path_factory.mktemp("prometheus"))
    try:
        prom.wait_ready()
        yield prom
    finally:
        prom.stop()


def _images() -> list:
    """Twelve synthetic products at several sizes and one undecodable item."""
    from PIL import Image

    from mtqa.data.synth import SynthConfig, SynthGenerator

    gen = SynthGenerator(SynthConfig(size=96, max_defects=3), seed=23)
    images = [gen.generate(0, i).image for i in range(12)]
    images[3] = np.asarray(Image.fromarray(images[3]).resize((150, 110)))
    images[7] = np.asarray(Image.fromarray(images[7]).convert("L"))
    return [*images[:5], b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 20, *images[5:]]  # 5: batched


def _until(prom: Prometheus, expr: str, want: float, timeout_s: float = 30) -> None:
    """Wait until Prometheus has scraped a sample in which `expr` sums to `want`."""
    deadline, seen = time.monotonic() + timeout_s, None
    while time.monotonic() < deadline:
        seen = sum(prom.query(expr).values())
        if seen == want:
            return
        time.sleep(0.5)
    raise AssertionError(f"{expr} is {seen} in Prometheus, expected {want}")


def test_prometheus_counts_equal_the_sdk_results(fresh_server, prometheus) -> None:
    items = _images()
    with InspectionClient(fresh_server.grpc_url, validate_images=False) as client:
        # every fifth item goes in one multi-image request, the rest one by one
        outcomes = [client.inspect(item) if i % 5 else None for i, item in enumerate(items)]
        batched = [i for i, o in enumerate(outcomes) if o is None]
        try:
            together = client.inspect([items[i] for i in batched])
        except Exception as exc:  # BatchError carries the per-item outcomes
            together = exc.results
        for i, outcome in zip(batched, together, strict=True):
            outcomes[i] = outcome
    answered = [o for o in outcomes if not isinstance(o, ItemError)]
    assert len(answered) == 12 and len(outcomes) == 13
    classes = [d.name for d in answered[0].defects]

    selector = f'{{job="triton",model="{MODEL}"}}'
    _until(prometheus, f"mtqa_images_inspected_total{selector}", 12)
    expected = {
        "failed": {"": 1.0},
        "defects": {c: sum(o.defects[k].decision for o in answered) for k, c in enumerate(classes)},
        "regions": dict.fromkeys(classes, 0)
        | Counter(r.class_name for o in answered for r in o.regions),
        "grades": dict.fromkeys(answered[0].grade.probabilities, 0)
        | Counter(o.grade.name for o in answered),
        "regions_sum": {"": sum(len(o.regions) for o in answered)},
        "buckets": {
            (c, le): np.sum(np.array([o.defects[k].probability for o in answered]) <= float(le))
            for k, c in enumerate(classes)
            for le in BUCKET_LES
        },
    }
    assert sum(expected["defects"].values()) > 0

    def scraped() -> dict:
        def one(name: str, label: str) -> dict:
            return {dict(k).get(label, ""): v for k, v in prometheus.query(name + selector).items()}

        buckets = prometheus.query(f"mtqa_presence_probability_bucket{selector}")
        return {
            "failed": one("mtqa_images_failed_total", ""),
            "defects": one("mtqa_defects_total", "class"),
            "regions": one("mtqa_regions_total", "class"),
            "grades": one("mtqa_grade_total", "grade"),
            "regions_sum": one("mtqa_regions_per_image_sum", ""),
            "buckets": {(dict(k)["class"], dict(k)["le"]): v for k, v in buckets.items()},
        }

    # Updates reach Triton within a flush interval (1 s) and Prometheus at its next scrape.
    deadline, seen = time.monotonic() + 20, scraped()
    while seen != expected and time.monotonic() < deadline:
        time.sleep(0.5)
        seen = scraped()
    for key in expected:  # the histogram holds each item's probability as the SDK reported it
        assert seen[key] == expected[key], key
    served = sorted(p.name for p in (fresh_server.repo / MODEL).iterdir() if p.name.isdigit())
    versions = prometheus.query(f"mtqa_presence_probability_bucket{selector}")
    assert {dict(k)["version"] for k in versions} == {served[-1]}


def test_every_series_the_alert_rules_read_is_scraped(prometheus) -> None:
    """docker/prometheus/alerts.yml reads only metric names a real server exports."""
    rules = yaml.safe_load(ALERT_RULES.read_text())["groups"]
    exprs = [re.sub(r'"[^"]*"', "", rule["expr"]) for group in rules for rule in group["rules"]]
    names = {n for e in exprs for n in re.findall(r"\b(?:nv|mtqa)_[a-z0-9_]+\b", e)}
    assert {"nv_inference_request_summary_us", "mtqa_defects_total"} <= names
    _until(prometheus, 'up{job="triton"}', 1)
    missing = [n for n in sorted(names) if not prometheus.query(f'{n}{{job="triton"}}')]
    assert not missing, f"alert rules read series Triton does not export: {missing}"


def test_every_dashboard_query_returns_series(prometheus) -> None:
    """docker/grafana/dashboards/mtqa.json: each panel query answers on a real scrape."""
    from test_grafana_dashboard import dashboard_queries

    _until(prometheus, 'up{job="triton"}', 1)
    time.sleep(2.5)  # rate() over [1m] needs two scrapes of every series
    empty = [expr for expr in dashboard_queries() if not prometheus.query(expr)]
    assert not empty, f"dashboard queries with no series: {empty}"


def test_monitor_shows_the_servers_figures(fresh_server, capsys, monkeypatch) -> None:
    """`mtqa monitor --once` against the live server: the totals the SDK saw, per class."""
    from mtqa_cli.main import main

    monkeypatch.setenv("COLUMNS", "200")
    assert main(["monitor", "--url", fresh_server.metrics_url, "--once", "--interval", "1"]) == 0
    out = capsys.readouterr().out
    assert "throughput" in out and "defect " in out and "input drift score" in out
    images = re.search(r"│ images\s+│\s*│\s*(\d+)", out)
    assert images and images.group(1) == "12", out  # the 12 answered images of the first test
