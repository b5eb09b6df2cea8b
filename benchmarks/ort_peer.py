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
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1  # as the served mtqa_net python model sets it
    sessions = [
        ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        for _ in range(max(1, instances))
    ]
    reps = -(-batch // len(tensors))
    x = np.ascontiguousarray(np.concatenate([tensors] * reps)[:batch])
    for session in sessions:
        session.run(None, {"images": x})  # warm-up: first run allocates
    times: list[list[float]] = [[] for _ in sessions]
    start = time.perf_counter()

    def loop(session, out: list[float]) -> None:
        while time.perf_counter() - start < seconds or len(out) < 3:
            t0 = time.perf_counter()
            session.run(None, {"images": x})
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
