"""OpenVINO variants of the network: the same ONNX files as the ORT variants, another runtime.

A variant name `ov-<p>` is runtime OpenVINO at precision `<p>`: `ov-fp32` and `ov-bf16` run the
FP32 export with inference precision f32 or bf16, `ov-int8` runs the Q/DQ INT8 export (the
`ort` flavour: U8 activations, S8 per-channel weights) with its remaining float ops in f32.
OpenVINO is optional (`pip install 'mtqa[openvino]'`): without it, or on a CPU that OpenVINO
says lacks BF16 or INT8, the builder skips the variant and says why (`skip_reason`). The gate
runs each variant through `triton_models/ov_plan.py`, the code the served model runs.

CPU features: bf16 needs AVX512_BF16 (AMX_BF16 is faster still); int8 runs on any AVX2 CPU and
is fast with AVX512_VNNI, AVX_VNNI or AMX_INT8 (docs/builder.md, "OpenVINO variants").
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mtqa_builder.export import OUTPUT_NAMES
from mtqa_builder.triton_models import ov_plan

# name -> (ONNX export it runs, OpenVINO inference precision, capability OpenVINO must list)
OV_VARIANTS: dict[str, tuple[str, str, str]] = {
    "ov-fp32": ("fp32", "f32", "FP32"),
    "ov-bf16": ("fp32", "bf16", "BF16"),
    "ov-int8": ("int8", "f32", "INT8"),
}
# /proc/cpuinfo flags that decide OpenVINO's (and ORT's) CPU kernels, reported by the benchmarks.
CPU_FLAGS = (
    "avx2",
    "avx512f",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)


def is_openvino(name: str) -> bool:
    return name in OV_VARIANTS


def source_precision(name: str) -> str:
    """The ORT precision whose ONNX file the OpenVINO variant `name` runs (fp32 or int8)."""
    return OV_VARIANTS[name][0]


def openvino_version() -> str | None:
    """The installed OpenVINO's version, None when it cannot be imported."""
    try:
        import openvino
    except ImportError:
        return None
    return openvino.__version__.split("-")[0]  # "2026.4.1", not the build tag


def capabilities() -> list[str] | None:
    """OpenVINO's OPTIMIZATION_CAPABILITIES for this CPU (e.g. FP32, BF16, INT8); None without
    OpenVINO."""
    if openvino_version() is None:
        return None
    import openvino as ov

    return list(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


def _cpuinfo(key: str, cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The value of the first `key` line of /proc/cpuinfo ("" where there is none)."""
    try:
        lines = cpuinfo.read_text().splitlines()
    except OSError:
        return ""
    return next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith(key)), "")


def cpu_flags() -> list[str]:
    """Which of CPU_FLAGS this CPU has (empty where /proc/cpuinfo is absent)."""
    flags = set(_cpuinfo("flags").split())
    return [f for f in CPU_FLAGS if f in flags]


def hardware() -> dict[str, Any]:
    """The CPU features and OpenVINO capabilities the variants' speed depends on."""
    return {
        "cpu": _cpuinfo("model name"),
        "flags": cpu_flags(),
        "openvino": openvino_version(),
        "capabilities": capabilities(),
    }


def skip_reason(name: str, caps: list[str] | None = None) -> str | None:
    """Why the variant `name` cannot be built on this host, None when it can. `caps`: OpenVINO's
    capabilities (default: asked from OpenVINO)."""
    if openvino_version() is None:
        return f"{name}: OpenVINO is not installed (pip install 'mtqa[openvino]')"
    caps = capabilities() if caps is None else caps
    needed = OV_VARIANTS[name][2]
    if needed not in caps:
        return (
            f"{name}: this CPU lacks {needed} in OpenVINO's capabilities {caps} "
            f"(CPU flags: {cpu_flags() or 'unknown'})"
        )
    return None


def runtime_record(name: str) -> dict[str, str]:
    """The version's runtime.json: what the local mtqa_net model opens the ONNX file with."""
    return {"runtime": ov_plan.RUNTIME, "inference_precision": OV_VARIANTS[name][1]}


def predict_fn(
    onnx_path: Path, name: str, threads: int = 2
) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    """An evaluate_predictor-compatible predictor running `onnx_path` as the variant `name`."""
    runner = ov_plan.open_runner(onnx_path, OV_VARIANTS[name][1], threads, 1, 0, OUTPUT_NAMES)

    def predict(images: np.ndarray) -> dict[str, np.ndarray]:
        outputs = runner.run([np.ascontiguousarray(images, dtype=np.float32)])[0]
        return dict(zip(OUTPUT_NAMES, outputs, strict=True))

    return predict
