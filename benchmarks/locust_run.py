"""Run the locustfile headless at one user count and read its CSV and client-share sidecar."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

from mtqa_bench.errors import BenchError

LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"
_GRACE_S = 45.0  # start-up, ramp-up and shutdown beyond the measured duration


def run_locust(
    user_class: str,
    host: str,
    users: int,
    duration: float,
    prefix: Path,
    options: dict[str, str],
) -> dict[str, float]:
    """Run `users` closed-loop users for `duration` s; returns the aggregated Locust figures.

    Keys: rps, avg_ms, p50_ms, p95_ms, p99_ms, requests, failures, and (gRPC users) the SDK's
    mean round trip `rpc_ms` and the client-side share `client_ms` per request.
    """
    sidecar = prefix.with_name(prefix.name + "_client.json")
    cmd = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
        "-u", str(users), "-r", str(users), "-t", f"{max(1, round(duration))}s",
        "--host", host, "--csv", str(prefix), "--only-summary", "--reset-stats",
        "--stop-timeout", "10", "--exit-code-on-error", "0", "--loglevel", "WARNING",
        "--mtqa-sidecar", str(sidecar),
    ]  # fmt: skip
    for key, value in options.items():
        cmd += [f"--mtqa-{key}", str(value)]
    cmd.append(user_class)
    log_path = prefix.with_name(prefix.name + ".log")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        try:
            code = proc.wait(timeout=duration + _GRACE_S)
        except subprocess.TimeoutExpired:
            # Seen rarely: the process hangs at interpreter exit after the test has ended (gRPC
            # under gevent). The sidecar is written at test stop, so the figures are complete.
            proc.kill()
            proc.wait()
            code = 0 if sidecar.is_file() else -9
    stats = prefix.with_name(prefix.name + "_stats.csv")
    if code != 0 or not stats.is_file():
        tail = " | ".join(log_path.read_text(errors="replace").strip().splitlines()[-4:])
        raise BenchError(f"locust {user_class} at {users} users failed (rc {code}): {tail}")
    result = _aggregated(stats)
    if sidecar.is_file():
        share = json.loads(sidecar.read_text())
        if share["requests"]:
            result["rpc_ms"] = share["rpc_ms"] / share["requests"]
            result["client_ms"] = (share["total_ms"] - share["rpc_ms"]) / share["requests"]
    return result


def _aggregated(path: Path) -> dict[str, float]:
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["Name"] == "Aggregated"]
    if not rows:
        raise BenchError(f"{path} has no Aggregated row")
    row = rows[0]

    def num(key: str) -> float:
        value = row.get(key, "")
        return float(value) if value not in ("", "N/A") else 0.0

    return {
        "rps": num("Requests/s"),
        "avg_ms": num("Average Response Time"),
        "p50_ms": num("50%"),
        "p95_ms": num("95%"),
        "p99_ms": num("99%"),
        "requests": num("Request Count"),
        "failures": num("Failure Count"),
    }
