"""Runs one batch of requests on an OpenVINO compiled model, the CPU peer of `ort_plan`.

The OpenVINO variants of `mtqa_net` (precisions `ov-*`) carry the same ONNX file as the ORT ones
and a `runtime.json` naming the runtime and the inference precision (`f32` or `bf16`; the Q/DQ
INT8 graph runs its quantized ops in int8 and the rest in `f32`). One compiled model per instance
holds `lanes` streams of `threads` threads; each request is cut into chunks of at most `chunk`
images (never spanning two requests, smaller when there are fewer chunks than streams) and an
`AsyncInferQueue` of one infer request per stream runs them, outputs copied into place. The
builder's gate, the benchmarks and the local `mtqa_net` model all open it through `open_runner`.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def _beside(name: str):
    """The module `name`.py next to this file: in the builder's package and in a served version
    (the repository copies ort_plan.py into every `mtqa_net` version) alike."""
    spec = importlib.util.spec_from_file_location(
        f"{__name__}_{name}", Path(__file__).with_name(f"{name}.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# The chunks ORT's lanes run, so that both runtimes cut a batch the same way.
_cut = _beside("ort_plan").cut

RUNTIME_FILE = "runtime.json"  # mtqa_net version: {"runtime": "openvino", "inference_precision"}
RUNTIME = "openvino"
INFERENCE_PRECISIONS = ("f32", "bf16")


def read_runtime(version_dir: Path) -> dict:
    """The version's runtime record; `{"runtime": "onnxruntime"}` when it has none."""
    path = Path(version_dir) / RUNTIME_FILE
    return json.loads(path.read_text()) if path.is_file() else {"runtime": "onnxruntime"}


def compile_model(onnx_path, inference_precision: str, threads: int, streams: int):
    """Compile `onnx_path` for the CPU with `streams` streams sharing `threads` threads.

    The inference precision is always set: on a CPU with BF16 OpenVINO's default is bf16, which
    would make the `f32` variants silently run in bf16. Threads are not pinned to cores: the
    instances of a local server and other processes share them.
    """
    import openvino as ov

    if inference_precision not in INFERENCE_PRECISIONS:
        raise ValueError(f"inference precision {inference_precision!r}: use {INFERENCE_PRECISIONS}")
    config = {
        "INFERENCE_PRECISION_HINT": inference_precision,
        "PERFORMANCE_HINT": "THROUGHPUT",
        "NUM_STREAMS": str(max(1, streams)),
        "INFERENCE_NUM_THREADS": str(max(1, threads)),
        "ENABLE_CPU_PINNING": "NO",
    }
    return ov.Core().compile_model(str(onnx_path), "CPU", config)


class OvRunner:
    """Runs `parts` (float32 [n,C,H,W] arrays, one per request) on a compiled model; `run`
    returns, per request, one array per name of `outputs`, like `ort_plan.LaneRunner`."""

    def __init__(self, compiled, outputs: Sequence[str], chunk: int, lanes: int) -> None:
        import openvino as ov

        self.compiled = compiled
        self.chunk, self.lanes = chunk, max(1, lanes)
        ports = {name: port for port in compiled.outputs for name in port.get_names()}
        self.specs = []
        for name in outputs:
            shape = ports[name].get_partial_shape()
            if not all(d.is_static for d in list(shape)[1:]):
                raise ValueError(f"output {name} needs fixed dims past the batch axis, got {shape}")
            self.specs.append((ports[name], tuple(d.get_length() for d in list(shape)[1:])))
        self.queue = ov.AsyncInferQueue(compiled, self.lanes)
        self.queue.set_callback(self._store)

    def _store(self, request, target) -> None:
        for (port, _), out in zip(self.specs, target, strict=True):
            np.copyto(out, request.get_tensor(port).data)

    def run(self, parts: Sequence[np.ndarray]) -> list[list[np.ndarray]]:
        """Outputs per request; an OpenVINO error is raised here after the queue drains."""
        results = [[np.empty((len(p), *dims), np.float32) for _, dims in self.specs] for p in parts]
        for request, start, stop in _cut([len(p) for p in parts], self.chunk, self.lanes):
            chunk = np.ascontiguousarray(parts[request][start:stop], dtype=np.float32)
            views = [out[start:stop] for out in results[request]]
            self.queue.start_async({0: chunk}, views)
        self.queue.wait_all()
        return results

    def close(self) -> None:
        self.queue.wait_all()


def open_runner(
    onnx_path,
    inference_precision: str,
    threads: int,
    lanes: int,
    chunk: int,
    outputs: Sequence[str] | None = None,
) -> OvRunner:
    """An `OvRunner` of `onnx_path`: `lanes` streams, `threads` threads in all, for `outputs`
    (default: every output of the model)."""
    compiled = compile_model(onnx_path, inference_precision, threads, lanes)
    names = [p.get_any_name() for p in compiled.outputs] if outputs is None else list(outputs)
    return OvRunner(compiled, names, chunk, lanes)
