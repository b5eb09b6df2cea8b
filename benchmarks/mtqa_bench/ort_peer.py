"""The in-process peer: ONNX Runtime on the very model.onnx Triton serves, arranged as the server
runs it (as many workers as `mtqa_net` has instances, all busy at once, each running its batch
through the same `ort_plan.LaneRunner` chunks and lane sessions with the same thread count), same
batch size, no server in between. Served throughput divided by this is what serving costs.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from mtqa_bench.stats import latency_summary
from mtqa_builder.triton_models.ort_plan import LaneRunner, open_runner


def session(onnx_path: Path, threads: int, profile: bool = False):
    """A CPU session with `threads` intra-op threads and one inter-op; `profile=True` turns on
    ORT's profiler (`end_profiling()` gives the trace)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.enable_profiling = profile
    return ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])


def measure(
    onnx_path: Path,
    tensors: np.ndarray,
    batch: int,
    threads: int,
    seconds: float,
    instances: int = 1,
    lanes: int = 1,
    chunk: int = 0,
) -> dict[str, float]:
    """Run batches of `batch` images back to back on `instances` workers in parallel (ORT
    releases the GIL) for `seconds`, each worker over `lanes` sessions in chunks of `chunk` images
    as the served `mtqa_net` does; throughput in images/s over all of them."""
    runners = [open_runner(onnx_path, threads, lanes, chunk) for _ in range(max(1, instances))]
    reps = -(-batch // len(tensors))
    x = np.ascontiguousarray(np.concatenate([tensors] * reps)[:batch])
    for each in runners:
        each.run([x])  # warm-up: first run allocates
    times: list[list[float]] = [[] for _ in runners]
    start = time.perf_counter()

    def loop(lane_runner: LaneRunner, out: list[float]) -> None:
        while time.perf_counter() - start < seconds or len(out) < 3:
            t0 = time.perf_counter()
            lane_runner.run([x])
            out.append((time.perf_counter() - t0) * 1000.0)

    workers = [
        threading.Thread(target=loop, args=(r, t), daemon=True)
        for r, t in zip(runners, times, strict=True)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - start
    for each in runners:
        each.close()
    flat = [t for per in times for t in per]
    return {"throughput": len(flat) * batch / elapsed, **latency_summary(flat)}
