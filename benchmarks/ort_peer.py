"""The in-process peer: ONNX Runtime on the very model.onnx Triton serves, same thread count,
same batch size, no server in between. Served throughput divided by this is what serving costs.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from mtqa_bench.stats import latency_summary


def measure(
    onnx_path: Path, tensors: np.ndarray, batch: int, threads: int, seconds: float
) -> dict[str, float]:
    """Run batches of `batch` images back to back for `seconds`; throughput in images/s."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1  # as the served mtqa_net python model sets it
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    reps = -(-batch // len(tensors))
    x = np.ascontiguousarray(np.concatenate([tensors] * reps)[:batch])
    session.run(None, {"images": x})  # warm-up: first run allocates
    times: list[float] = []
    start = time.perf_counter()
    while time.perf_counter() - start < seconds or len(times) < 3:
        t0 = time.perf_counter()
        session.run(None, {"images": x})
        times.append((time.perf_counter() - t0) * 1000.0)
    elapsed = time.perf_counter() - start
    return {"throughput": len(times) * batch / elapsed, **latency_summary(times)}
