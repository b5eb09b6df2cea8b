"""The in-process peer: ONNX Runtime on the very model.onnx Triton serves, arranged as the server
runs it (as many sessions as `mtqa_net` has instances, each with the same thread count, all busy at
once), same batch size, no server in between. Served throughput divided by this is what serving
costs.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
from mtqa_bench.stats import latency_summary


def session(onnx_path: Path, threads: int, spinning: bool = True, profile: bool = False):
    """A CPU session set up as the served `mtqa_net` sets its own (`threads` intra-op, one
    inter-op); `spinning=False` stops idle workers spin-waiting, for sessions that sit beside
    other busy ones; `profile=True` turns on ORT's profiler (`end_profiling()` gives the trace)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.enable_profiling = profile
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])


def measure(
    onnx_path: Path,
    tensors: np.ndarray,
    batch: int,
    threads: int,
    seconds: float,
    instances: int = 1,
) -> dict[str, float]:
    """Run batches of `batch` images back to back on `instances` sessions in parallel (ORT
    releases the GIL) for `seconds`; throughput in images/s over all of them."""
    sessions = [session(onnx_path, threads) for _ in range(max(1, instances))]
    reps = -(-batch // len(tensors))
    x = np.ascontiguousarray(np.concatenate([tensors] * reps)[:batch])
    for sess in sessions:
        sess.run(None, {"images": x})  # warm-up: first run allocates
    times: list[list[float]] = [[] for _ in sessions]
    start = time.perf_counter()

    def loop(sess, out: list[float]) -> None:
        while time.perf_counter() - start < seconds or len(out) < 3:
            t0 = time.perf_counter()
            sess.run(None, {"images": x})
            out.append((time.perf_counter() - t0) * 1000.0)

    workers = [
        threading.Thread(target=loop, args=(s, t), daemon=True)
        for s, t in zip(sessions, times, strict=True)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - start
    flat = [t for per in times for t in per]
    return {"throughput": len(flat) * batch / elapsed, **latency_summary(flat)}
