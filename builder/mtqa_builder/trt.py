"""Compile precision-typed ONNX into TensorRT engines (GPU hosts only) and find prebuilt ones.

TensorRT 10+ builds strongly typed networks: the ONNX already says what runs in FP16 or INT8
(precision.py), the builder only compiles it. Engines depend on the exact TensorRT version and the
GPU's compute capability, so each plan gets a JSON manifest beside it and the repository maps
capabilities to files (`cc_model_filenames`). Run inside the NGC image pinned in versions.py:

    python -m mtqa_builder.trt model.onnx --precision int8 --out engines/int8 --max-batch 32
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import onnx

from mtqa_builder import versions
from mtqa_builder.errors import BuildError, RepositoryError, TensorRTUnavailableError
from mtqa_builder.export import INPUT_NAME
from mtqa_builder.hashing import file_sha256


# tensorrt (the `gpu` extra) and torch are optional here: imported where used, so the module loads
# on CPU hosts and engines can be compiled on hosts without torch.
def _tensorrt():
    try:
        import tensorrt
    except ImportError as exc:
        raise TensorRTUnavailableError(
            "TensorRT is not installed here; compile engines on a GPU host inside "
            f"{versions.TENSORRT_IMAGE} (TensorRT {versions.TENSORRT_VERSION}), "
            "or pass --engines DIR with prebuilt plans"
        ) from exc
    return tensorrt


def gpu_info() -> dict[str, str]:
    """Name, compute capability and driver of GPU 0 (from nvidia-smi; no CUDA libs needed)."""
    query = "--query-gpu=name,compute_cap,driver_version"
    try:
        line = subprocess.run(
            ["nvidia-smi", query, "--format=csv,noheader"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout.splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError) as exc:
        raise TensorRTUnavailableError(f"no CUDA GPU visible (nvidia-smi: {exc})") from exc
    name, cc, driver = (part.strip() for part in line.split(","))
    return {"gpu": name, "compute_capability": cc, "driver": driver}


def _cuda_version() -> str:
    try:
        import torch

        if torch.version.cuda:
            return torch.version.cuda
    except ImportError:
        pass
    return versions.CUDA_VERSION  # the NGC image's CUDA, where engines are meant to be built


def compile_engine(
    onnx_path: Path,
    out_dir: Path,
    precision: str,
    max_batch: int = 32,
    opt_batch: int | None = None,
    timing_cache: Path | None = None,
    version_compatible: bool = False,
    calibration_sha256: str | None = None,
) -> tuple[Path, dict[str, Any]]:
    """Build `out_dir/sm<XY>.plan` (+ `.json` manifest) from a precision-typed ONNX file."""
    trt = _tensorrt()
    gpu = gpu_info()
    model = onnx.load(str(onnx_path))
    shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim[1:]]
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_path).read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BuildError(f"TensorRT cannot parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    opt = opt_batch or max_batch
    profile.set_shape(INPUT_NAME, (1, *shape), (opt, *shape), (max_batch, *shape))
    config.add_optimization_profile(profile)
    cache_bytes = timing_cache.read_bytes() if timing_cache and timing_cache.is_file() else b""
    config.set_timing_cache(config.create_timing_cache(cache_bytes), ignore_mismatch=False)
    if version_compatible:
        config.set_flag(trt.BuilderFlag.VERSION_COMPATIBLE)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise BuildError(f"TensorRT failed to build an engine from {onnx_path}")
    out_dir.mkdir(parents=True, exist_ok=True)
    tag = "sm" + gpu["compute_capability"].replace(".", "")
    plan_path = out_dir / f"{tag}.plan"
    plan_path.write_bytes(bytes(plan))
    if timing_cache:
        timing_cache.write_bytes(bytes(config.get_timing_cache().serialize()))
    manifest = {
        "precision": precision,
        "tensorrt": trt.__version__,
        "cuda": _cuda_version(),
        **gpu,
        "onnx_sha256": file_sha256(Path(onnx_path)),
        "plan_sha256": file_sha256(plan_path),
        "calibration_sha256": calibration_sha256,
        "profile": {"min": 1, "opt": opt, "max": max_batch},
        "version_compatible": version_compatible,
        "built": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    plan_path.with_suffix(".json").write_text(json.dumps(manifest, indent=2) + "\n")
    return plan_path, manifest


def find_engines(
    root: Path, precision: str, onnx_sha256: str
) -> tuple[dict[str, Path], dict[str, dict]]:
    """Prebuilt plans for `precision` under `root/<precision>/sm*.plan`, checked against the ONNX.

    Each plan needs its manifest, and the manifest must name this build's ONNX: an engine compiled
    from another file would serve a model the gate never saw.
    """
    folder = Path(root) / precision
    plans = sorted(folder.glob("sm*.plan"))
    if not plans:
        raise RepositoryError(
            f"no TensorRT engines for {precision} in {folder} (expected sm<XY>.plan files from "
            "`python -m mtqa_builder.trt`); --target ngc-trt needs engines"
        )
    engines, manifests = {}, {}
    for plan in plans:
        meta_path = plan.with_suffix(".json")
        if not meta_path.is_file():
            raise RepositoryError(f"{plan} has no manifest {meta_path.name}")
        meta = json.loads(meta_path.read_text())
        if meta.get("onnx_sha256") != onnx_sha256:
            raise RepositoryError(
                f"{plan} was compiled from another ONNX ({meta.get('onnx_sha256')}) than this "
                f"build's {precision} variant ({onnx_sha256})"
            )
        if meta.get("plan_sha256") != file_sha256(plan):
            raise RepositoryError(f"{plan} does not match the checksum in its manifest")
        cc = str(meta["compute_capability"])
        engines[cc], manifests[cc] = plan, meta
    return engines, manifests


def main(argv: list[str] | None = None) -> int:
    """CLI: compile one ONNX file into an engine for this host's GPU."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("onnx", type=Path)
    parser.add_argument("--precision", required=True, choices=["fp32", "fp16", "int8"])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--max-batch", type=int, default=32)
    parser.add_argument("--opt-batch", type=int)
    parser.add_argument("--timing-cache", type=Path)
    parser.add_argument("--version-compatible", action="store_true")
    parser.add_argument("--calibration-sha256")
    args = parser.parse_args(argv)
    try:
        plan, meta = compile_engine(
            args.onnx,
            args.out,
            args.precision,
            args.max_batch,
            args.opt_batch,
            args.timing_cache,
            args.version_compatible,
            args.calibration_sha256,
        )
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{plan} ({meta['gpu']}, sm {meta['compute_capability']}, TensorRT {meta['tensorrt']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
