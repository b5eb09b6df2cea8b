"""The figures of `mtqa monitor`, read from a Triton metrics endpoint without Prometheus.

Two scrapes `dt` seconds apart give the rates (throughput, queue time per request, batch size,
defect share per class, grade mix, share of images outside the drift reference); Triton's latency
summary and the drift gauge are read as they are; totals are since the server started. The same
series feed docker/grafana/dashboards/mtqa.json (docs/serving.md lists them).
"""

from __future__ import annotations

import math
import re
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from mtqa_builder.contract import ENSEMBLE, NET, POST, PRE

Labels = frozenset  # of (name, value) pairs
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
STEPS = (PRE, NET, POST)


def parse(text: str) -> dict[tuple[str, Labels], float]:
    """Prometheus text exposition -> {(metric name, labels): value} (comments skipped)."""
    samples = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match is None or line.startswith("#"):
            continue
        name, labels, value = match.groups()
        try:
            number = float(value)
        except ValueError:  # Triton writes "Nan" for an empty summary
            number = math.nan
        samples[(name, Labels(_LABEL.findall(labels or "")))] = number
    return samples


def scrape(url: str, timeout_s: float = 10.0) -> dict[tuple[str, Labels], float]:
    """One scrape of `url` (http://HOST:PORT/metrics)."""
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        return parse(response.read().decode())


def total(samples: Mapping, name: str, group: str | None = None, **match: str) -> dict[str, float]:
    """Sum of `name` over the series whose labels include `match`, by label `group` ("" if none)."""
    sums: dict[str, float] = {}
    for (metric, labels), value in samples.items():
        found = dict(labels)
        if metric != name or any(found.get(k) != v for k, v in match.items()):
            continue
        key = found.get(group, "") if group else ""
        sums[key] = sums.get(key, 0.0) + value
    return sums


def _ratio(a: float, b: float) -> float:
    return a / b if b else math.nan


def largest(samples: Mapping, name: str, group: str | None = None) -> dict[str, float]:
    """Largest value of the gauge `name` over its series (instances), by label `group`."""
    peaks: dict[str, float] = {}
    for (metric, labels), value in samples.items():
        if metric == name and not math.isnan(value):
            key = dict(labels).get(group, "") if group else ""
            peaks[key] = max(value, peaks.get(key, -math.inf))
    return peaks


@dataclass
class Figures:
    """What `mtqa monitor` shows; NaN where the interval had no traffic."""

    interval_s: float
    images_per_s: float
    latency_ms: dict[str, float]  # quantile -> ms (Triton's recent-requests summary)
    queue_ms: dict[str, float]  # step model -> mean queue time per request in the interval
    batch_size: float  # images per mtqa_net execution in the interval
    images_total: float
    failed_total: float
    defects: dict[str, tuple[float, float]]  # class -> (share in the interval, total)
    grades: dict[str, tuple[float, float]]  # grade -> (share in the interval, total)
    drift_score: float
    drift_groups: dict[str, float]  # group of statistics -> its largest drift over instances
    outside_share: float
    notes: list[str] = field(default_factory=list)


def figures(before: Mapping, after: Mapping, interval_s: float) -> Figures:
    """The monitor's figures from two scrapes `interval_s` apart."""

    def delta(name: str, group: str | None = None, **match: str) -> dict[str, float]:
        now, then = total(after, name, group, **match), total(before, name, group, **match)
        return {k: v - then.get(k, 0.0) for k, v in now.items()}

    images = delta("mtqa_images_inspected_total").get("", 0.0)
    summary = total(after, "nv_inference_request_summary_us", "quantile", model=ENSEMBLE)
    queue, done = (
        delta("nv_inference_queue_duration_us", "model"),
        delta("nv_inference_request_success", "model"),
    )
    count, execs = delta("nv_inference_count", "model"), delta("nv_inference_exec_count", "model")
    defect_d, grade_d = delta("mtqa_defects_total", "class"), delta("mtqa_grade_total", "grade")
    drift = largest(after, "mtqa_input_drift_score").get("", math.nan)
    outside = delta("mtqa_input_outside_reference_total").get("", 0.0)
    scored = delta("mtqa_input_images_scored_total").get("", 0.0)
    result = Figures(
        interval_s=interval_s,
        images_per_s=count.get(ENSEMBLE, 0.0) / interval_s,
        latency_ms={q: v / 1000 for q, v in sorted(summary.items()) if q in ("0.5", "0.99")},
        queue_ms={m: _ratio(queue.get(m, 0.0), done.get(m, 0.0)) / 1000 for m in STEPS},
        batch_size=_ratio(count.get(NET, 0.0), execs.get(NET, 0.0)),
        images_total=total(after, "mtqa_images_inspected_total").get("", 0.0),
        failed_total=total(after, "mtqa_images_failed_total").get("", 0.0),
        defects={
            c: (_ratio(defect_d.get(c, 0.0), images), v)
            for c, v in sorted(total(after, "mtqa_defects_total", "class").items())
        },
        grades={
            g: (_ratio(grade_d.get(g, 0.0), images), v)
            for g, v in sorted(total(after, "mtqa_grade_total", "grade").items())
        },
        drift_score=drift,
        drift_groups=dict(sorted(largest(after, "mtqa_input_drift_group_score", "group").items())),
        outside_share=_ratio(outside, scored),
    )
    if not any(name == "mtqa_images_inspected_total" for name, _ in after):
        result.notes.append("no mtqa_* series: is this an mtqa repository with metrics on?")
    return result


def _fmt(value: float, spec: str = ".1f") -> str:
    return "-" if value is None or math.isnan(value) else format(value, spec)


def _pct(share: float) -> str:
    return "-" if share is None or math.isnan(share) else f"{share * 100:.1f} %"


def render(fig: Figures, url: str):
    """A rich renderable of `fig` (tables side by side in a panel)."""
    from rich.columns import Columns
    from rich.panel import Panel
    from rich.table import Table

    serving = Table(title="serving", show_header=False)
    serving.add_row("throughput (images/s)", _fmt(fig.images_per_s))
    for quantile, ms in fig.latency_ms.items():
        serving.add_row(f"latency p{float(quantile) * 100:g} (ms)", _fmt(ms))
    for model, ms in fig.queue_ms.items():
        serving.add_row(f"queue {model} (ms)", _fmt(ms, ".2f"))
    serving.add_row("mtqa_net batch (images)", _fmt(fig.batch_size))
    line = Table(title="line", show_header=True)
    for column in ("", "share now", "total"):
        line.add_column(column)
    line.add_row("images", "", _fmt(fig.images_total, ".0f"))
    line.add_row("undecodable", "", _fmt(fig.failed_total, ".0f"))
    for name, (share, count) in fig.defects.items():
        line.add_row(f"defect {name}", _pct(share), _fmt(count, ".0f"))
    for name, (share, count) in fig.grades.items():
        line.add_row(f"grade {name}", _pct(share), _fmt(count, ".0f"))
    line.add_row("input drift score", _fmt(fig.drift_score, ".2f"), "")
    for name, value in fig.drift_groups.items():
        line.add_row(f"  drift {name}", _fmt(value, ".2f"), "")
    line.add_row("outside reference", _pct(fig.outside_share), "")
    title = f"mtqa monitor  {url}  (rates over {fig.interval_s:g} s)"
    notes: Iterable[str] = fig.notes
    return Panel(Columns([serving, line]), title=title, subtitle=" ".join(notes) or None)
