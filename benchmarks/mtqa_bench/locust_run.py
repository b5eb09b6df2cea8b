"""Run the locustfile headless at one user count and read the final figures it leaves behind."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from mtqa_bench.errors import BenchError

LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"
_GRACE_S = 45.0  # start-up, ramp-up and shutdown beyond the measured duration
_EXIT_GRACE_S = 5.0


def run_locust(
    user_class: str,
    host: str,
    users: int,
    duration: float,
    prefix: Path,
    options: dict[str, str],
    env: dict[str, str] | None = None,
) -> dict[str, float]:
    """Run `users` closed-loop users for `duration` s; returns Locust's aggregated figures.

    Keys: rps, avg_ms, p50_ms, p95_ms, p99_ms, requests, failures, and (gRPC users) the SDK's
    mean round trip `rpc_ms` and the client-side share `client_ms` per request, and `shm` (1.0
    when the users passed tensors through system shared memory).
    """
    sidecar = prefix.with_name(prefix.name + "_final.json")
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
    sidecar.unlink(missing_ok=True)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        code = _wait(proc, sidecar, time.monotonic() + duration + _GRACE_S)
    if code != 0 or not sidecar.is_file():
        tail = " | ".join(log_path.read_text(errors="replace").strip().splitlines()[-4:])
        raise BenchError(f"locust {user_class} at {users} users failed (rc {code}): {tail}")
    side = json.loads(sidecar.read_text())
    result = {k: float(v or 0.0) for k, v in side["stats"].items()}
    share = side["client"]
    result["shm"] = float(share.get("transport") == "shm")
    if share["requests"]:
        result["rpc_ms"] = share["rpc_ms"] / share["requests"]
        result["client_ms"] = (share["total_ms"] - share["rpc_ms"]) / share["requests"]
    return result


def _wait(proc: subprocess.Popen, sidecar: Path, deadline: float) -> int:
    """Wait for locust to exit. Seen now and then: it hangs at interpreter exit (gRPC under
    gevent) after the test has ended; once the sidecar exists the figures are final, so the
    process gets a short grace and is then killed."""
    finished_at = None
    while True:
        code = proc.poll()
        if code is not None:
            return code
        now = time.monotonic()
        if finished_at is None and sidecar.is_file():
            finished_at = now
        if (finished_at is not None and now - finished_at > _EXIT_GRACE_S) or now > deadline:
            proc.kill()
            proc.wait()
            return 0 if sidecar.is_file() else -9
        time.sleep(0.2)
