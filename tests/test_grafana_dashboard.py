"""The Grafana dashboard compose provisions: files in place, data source and paths consistent.

Every panel query is also run against a real Prometheus scraping a real Triton in
tests/test_business_metrics.py (`test_every_dashboard_query_returns_series`).
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

DOCKER = Path(__file__).resolve().parents[1] / "docker"
DASHBOARD = DOCKER / "grafana" / "dashboards" / "mtqa.json"


def dashboard_queries() -> list[str]:
    """Every PromQL expression of the dashboard's panels."""
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [target["expr"] for panel in panels for target in panel["targets"]]


def test_compose_provisions_the_dashboard_and_its_data_source() -> None:
    grafana = yaml.safe_load((DOCKER / "compose.yaml").read_text())["services"]["grafana"]
    mounts = dict(v.rsplit(":", 1)[0].split(":", 1) for v in grafana["volumes"])
    provisioning = DOCKER / "grafana" / "provisioning"
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
    providers = yaml.safe_load((provisioning / "dashboards" / "mtqa.yml").read_text())["providers"]
    assert providers[0]["options"]["path"] == mounts["./grafana/dashboards"]
    sources = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())
    (source,) = sources["datasources"]
    assert source["url"] == "http://prometheus:9090" and source["type"] == "prometheus"
    assert grafana["ports"] == ["127.0.0.1:3000:3000"]  # the host's loopback only


def test_every_panel_queries_the_provisioned_prometheus() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    sources = yaml.safe_load(
        (DOCKER / "grafana/provisioning/datasources/prometheus.yml").read_text()
    )["datasources"]
    uid = sources[0]["uid"]
    titles = [p["title"] for p in dashboard["panels"]]
    assert len(set(titles)) == len(titles) and dashboard["uid"]
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == uid and panel["targets"], panel["title"]
        assert all(t["datasource"]["uid"] == uid and t["expr"] for t in panel["targets"])
    wanted = ("nv_inference_request_summary_us", "mtqa_defects_total", "mtqa_grade_total")
    wanted += ("mtqa_input_drift_score", "nv_inference_queue_duration_us", "exec_count")
    wanted += ("mtqa_input_drift_group_score",)
    text = " ".join(dashboard_queries())
    assert all(name in text for name in wanted)
