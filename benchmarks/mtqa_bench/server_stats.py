"""Server-side timings from Triton's statistics API: snapshot before and after a load point and
turn the difference into per-request queue and compute times and the executed batch size.

During a point only the benchmark's load runs, so every model's delta belongs to it: for an
ensemble the queue and compute of its steps are summed per ensemble request.
"""

from __future__ import annotations

from dataclasses import dataclass

import tritonclient.grpc as grpcclient

_FIELDS = ("queue", "compute_input", "compute_infer", "compute_output")
Snapshot = dict[tuple[str, str], dict[str, int]]


def snapshot(url: str, timeout_s: float = 10.0) -> Snapshot:
    """Cumulative counters of every loaded model version, keyed by (name, version)."""
    with grpcclient.InferenceServerClient(url) as client:
        stats = client.get_inference_statistics("", as_json=True, client_timeout=timeout_s)
    out: Snapshot = {}
    for entry in stats.get("model_stats", []):
        inf = entry.get("inference_stats", {})
        row = {
            "count": int(inf.get("success", {}).get("count", 0)),
            "success_ns": int(inf.get("success", {}).get("ns", 0)),
            "inference_count": int(entry.get("inference_count", 0)),
            "execution_count": int(entry.get("execution_count", 0)),
        }
        row.update({f"{f}_ns": int(inf.get(f, {}).get("ns", 0)) for f in _FIELDS})
        out[(entry["name"], str(entry.get("version", "")))] = row
    return out


@dataclass(frozen=True)
class ServerTimes:
    """Per-request server figures of one point (ms), and the mean batch the network executed."""

    requests: int
    request_ms: float
    queue_ms: float
    compute_ms: float
    net_batch: float


def difference(before: Snapshot, after: Snapshot, model: str, net_model: str) -> ServerTimes:
    """Server times of requests to `model` between two snapshots (ensemble steps included)."""
    delta = {
        key: {k: v - before.get(key, {}).get(k, 0) for k, v in row.items()}
        for key, row in after.items()
    }
    top = [row for (name, _), row in delta.items() if name == model]
    count = sum(r["count"] for r in top)
    if count == 0:
        return ServerTimes(0, 0.0, 0.0, 0.0, 0.0)
    steps = [row for (name, _), row in delta.items() if name != model] or top
    if model == net_model:
        steps = top
    queue_ns = sum(r["queue_ns"] for r in steps)
    compute_ns = sum(r[f"{f}_ns"] for r in steps for f in _FIELDS[1:])
    net = [row for (name, _), row in delta.items() if name == net_model]
    executions = sum(r["execution_count"] for r in net)
    batch = sum(r["inference_count"] for r in net) / executions if executions else 0.0
    return ServerTimes(
        requests=count,
        request_ms=sum(r["success_ns"] for r in top) / count / 1e6,
        queue_ms=queue_ns / count / 1e6,
        compute_ms=compute_ns / count / 1e6,
        net_batch=batch,
    )
