"""`mtqa build` end to end: checkpoint -> ONNX -> precision variants -> gate -> (engines) -> repo.

Every variant is gated before anything is published: one failure (after the mixed-precision
fallback) aborts the build and leaves the repository untouched.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import tempfile
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime
import torch

from mtqa.checkpoint import CheckpointError, load_checkpoint
from mtqa.progress import NO_PROGRESS, Progress, stage
from mtqa_builder import openvino_variants as ovv
from mtqa_builder import precision as prec
from mtqa_builder import trt, versions
from mtqa_builder.calibration import load_calibration
from mtqa_builder.configs import TARGETS, Serving
from mtqa_builder.errors import BuildError, GateError
from mtqa_builder.export import check_parity, export_onnx
from mtqa_builder.gate import HEAD_METRICS, evaluate_onnx, judge
from mtqa_builder.hashing import file_sha256
from mtqa_builder.repository import Source, Variant, publish
from mtqa_builder.triton_models import drift
from mtqa_builder.trt_readiness import check_readiness
from mtqa_builder.validation import validation_set


@dataclass
class BuildOptions:
    """Everything `mtqa build` was asked for."""

    checkpoint: Path
    repo: Path
    precisions: Sequence[str] = ("fp32",)
    target: str = "local"
    calib: str | None = None
    calib_count: int = 64
    serving: Serving | None = None  # None: Serving.for_target(target), as `mtqa build` uses
    serve: str | None = None
    tolerance: float = 1.0
    val_data: str | None = None
    val_limit: int | None = None
    # Synthetic data: gate images. With 256 the gate allowed one point of presence F1 for a
    # handful of borderline decisions that INT8 flips either way (docs/builder.md).
    synth_val: int = 1024
    engines: Path | None = None
    work_dir: Path | None = None


# Validation images the input-drift reference is taken from (a few ms of numpy at build time).
DRIFT_IMAGES = 256


def _tool_versions(openvino: bool = False) -> dict[str, str]:
    tools = {
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "opset": str(versions.ONNX_OPSET),
    }
    if openvino:
        tools["openvino"] = ovv.openvino_version() or ""
    return tools


def _int8_flavour(target: str) -> str:
    # ngc-onnx may run under ORT's TensorRT provider: keep the TensorRT-safe symmetric form there.
    return "ort" if target == "local" else "tensorrt"


def _make_variant(
    name: str, fp32: Path, work: Path, target: str, calib, keep: Sequence[str]
) -> tuple[Path, dict]:
    out = work / f"{name}{'_mixed' if keep else ''}.onnx"
    if name == "fp16":
        prec.to_fp16(fp32, out, keep_fp32=keep)
        return out, {"kept_fp32": list(keep)}
    flavour = _int8_flavour(target)
    prec.to_int8(fp32, out, calib.images, flavour, keep_fp32=keep)
    quant = {"flavour": flavour, "kept_fp32": list(keep), "calibration": calib.describe()}
    if flavour == "ort":
        quant["float_head_nodes"] = prec.pooled_head_nodes(fp32)
    return out, quant


def build(
    opts: BuildOptions, log: Callable[[str], None] = print, progress: Progress = NO_PROGRESS
) -> dict[str, Any]:
    """Run the whole build; returns the published versions and every variant's gate figures.

    `progress` gets the stages: calibration, export, gate fp32 (the reference), convert and gate
    per variant, engines (ngc-trt), publish."""
    names = list(dict.fromkeys(opts.precisions))
    bad = [p for p in names if p not in prec.PRECISIONS]
    if bad or not names:
        raise BuildError(f"unknown precision(s) {bad}; choose from {prec.PRECISIONS}")
    if opts.target not in TARGETS:
        raise BuildError(f"unknown target {opts.target!r}; choose from {TARGETS}")
    names, skipped = _buildable(names, opts, log)
    if opts.serving is None:
        opts = dataclasses.replace(opts, serving=Serving.for_target(opts.target))
    serve = opts.serve or names[0]
    if serve not in names:
        raise BuildError(f"--serve {serve} is not one of the built precisions {names}")
    try:
        ckpt = load_checkpoint(opts.checkpoint)
    except CheckpointError as exc:
        raise BuildError(f"cannot load checkpoint: {exc}") from exc
    except RuntimeError as exc:  # torch's load_state_dict: weights from another architecture
        detail = " ".join(str(exc).strip().splitlines()[:2])
        raise BuildError(f"checkpoint does not fit the current model code: {detail}") from exc
    calib = None
    if {"int8", "ov-int8"} & set(names):
        with stage(progress, "calibration") as calibrating:
            calib = load_calibration(
                opts.calib or "",
                ckpt.image_size,
                ckpt.mean,
                ckpt.std,
                opts.calib_count,
                ckpt.resize,
            )
            calibrating.detail = f"{len(calib.images)} images from {calib.source}"
        log(f"calibration: {calib.describe()}")
    with tempfile.TemporaryDirectory(prefix="mtqa-build-") as tmp:
        work = Path(opts.work_dir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        with stage(progress, "export") as exporting:
            fp32 = export_onnx(ckpt.model, ckpt.image_size, work / "fp32.onnx")
            val = validation_set(ckpt, opts.val_data, opts.val_limit, opts.synth_val)
            probe = calib.images[:4] if calib is not None else val_images(val, 4)
            parity = check_parity(ckpt.model, fp32, probe)
            exporting.detail = f"parity max|diff| {max(parity.values()):.1e}"
        log(f"export: {fp32.name} parity max|diff| {parity}")
        with stage(progress, "gate fp32 (reference)", total=len(val)):
            ref = evaluate_onnx(
                fp32, val, ckpt.classes, ckpt.grades, ckpt.thresholds, progress=progress
            )
        log(f"fp32 reference on {len(val)} val images: " + _fmt(ref))
        image_points = 100.0 / len(val)
        if image_points > opts.tolerance:
            log(
                f"warning: one image is {image_points:.2f} points of grade accuracy here, "
                f"more than the gate's {opts.tolerance} point tolerance: one borderline image "
                "can fail it (give the gate more val images)"
            )
        variants: list[Variant] = []
        converted: dict = {}  # (ORT precision, kept nodes) -> converted file, shared
        for name in names:
            if name == "fp32":
                gate = {"passed": True, "reference": True, "parity_max_abs": parity, "metrics": ref}
                variants.append(Variant("fp32", fp32, gate))
                continue
            variants.append(
                _gated_variant(
                    name, fp32, work, opts, calib, ref, ckpt, val, log, progress, converted
                )
            )
        if opts.target == "ngc-trt":
            with stage(progress, "engines"):
                _attach_engines(variants, opts, calib, log)
        source = Source(
            run_dir=Path(ckpt.run_dir).resolve(),
            classes=list(ckpt.classes),
            grades=list(ckpt.grades),
            image_size=ckpt.image_size,
            mean=list(ckpt.mean),
            std=list(ckpt.std),
            resize=ckpt.resize,
            thresholds=ckpt.thresholds,
            weights_sha256=file_sha256(Path(ckpt.run_dir) / "model.safetensors"),
            drift_reference=drift_reference(val),
        )
        build_info = {
            "build_id": uuid.uuid4().hex[:12],
            "built": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "tools": _tool_versions(any(ovv.is_openvino(n) for n in names)),
            "calibration": calib.describe() if calib is not None else None,
            "validation": {"source": opts.val_data or "checkpoint", "images": len(val)},
        }
        with stage(progress, "publish") as publishing:
            result = publish(
                opts.repo, opts.target, source, variants, opts.serving, serve, build_info
            )
            publishing.detail = str(opts.repo)
    result["gate"] = {v.precision: v.gate for v in variants}
    result["skipped"] = skipped
    return result


# Targets whose mtqa_net can run the OpenVINO variants: the local python model opens them, and
# on ngc-openvino Triton's `openvino` backend does, with one inference precision per model
# config. Its only precision setting is HINT_BF16=YES, and on a BF16 CPU OpenVINO's default is
# bf16 anyway, so f32 cannot be promised there: ngc-openvino builds `ov-bf16` alone.
OPENVINO_TARGETS = ("local", "ngc-openvino")
NGC_OPENVINO_PRECISIONS = ["ov-bf16"]


def _buildable(names: list[str], opts: BuildOptions, log) -> tuple[list[str], dict[str, str]]:
    """The precisions to build, and why any OpenVINO variant is skipped on this host (OpenVINO
    absent, or a CPU without BF16/INT8 support): the others are built and published without it,
    unless `--serve` names it."""
    wanted = [n for n in names if ovv.is_openvino(n)]
    if wanted and opts.target not in OPENVINO_TARGETS:
        raise BuildError(f"{wanted} run only on the {OPENVINO_TARGETS} target(s)")
    if opts.target == "ngc-openvino" and names != NGC_OPENVINO_PRECISIONS:
        raise BuildError(
            f"--target ngc-openvino builds --precision {','.join(NGC_OPENVINO_PRECISIONS)} "
            f"alone (got {names}): Triton's openvino backend sets one inference precision per "
            "model, and only bf16 can be set"
        )
    skipped = {n: r for n in wanted if (r := ovv.skip_reason(n)) is not None}
    for reason in skipped.values():
        log(f"skipping {reason}")
    if opts.serve in skipped:
        raise BuildError(f"--serve {opts.serve} cannot be built here: {skipped[opts.serve]}")
    kept = [n for n in names if n not in skipped]
    if not kept:
        raise BuildError("nothing to build: " + "; ".join(skipped.values()))
    return kept, skipped


def drift_reference(dataset, n: int = DRIFT_IMAGES) -> dict[str, Any]:
    """The input-drift fingerprint served by mtqa_preprocess, from the first `n` val images."""
    images = val_images(dataset, n)
    return drift.fingerprint(images, [dataset.orig_size(i) for i in range(len(images))])


def val_images(dataset, n: int):
    """The first `n` normalised images of a dataset as one float32 batch (parity probe)."""
    count = min(n, len(dataset))
    return np.stack([np.asarray(dataset[i]["image"], dtype=np.float32) for i in range(count)])


def _fmt(metrics: dict) -> str:
    return ", ".join(f"{m}={metrics.get(m)}" for m in HEAD_METRICS.values())


def _gated_variant(
    name, fp32, work, opts, calib, ref, ckpt, val, log, progress, converted
) -> Variant:
    """Convert, evaluate and judge one variant; retry once with sensitive nodes kept in FP32.

    An OpenVINO variant runs the file of the ORT precision it names (`ov-int8`: the INT8 Q/DQ
    file, converted once per kept-node set for both, in `converted`) and is judged on OpenVINO;
    `ov-fp32`/`ov-bf16` run the FP32 export itself, so they have no mixed retry."""
    ov = ovv.is_openvino(name)
    kind = ovv.source_precision(name) if ov else name
    attempts = [()] if kind == "fp32" else [(), tuple(prec.sensitive_nodes(fp32))]
    for keep in attempts:
        label = f"{name}{' (mixed: ' + ', '.join(keep) + ')' if keep else ''}"
        short = f"{name}{' mixed' if keep else ''}"
        with stage(progress, f"convert {short}"):
            if kind == "fp32":
                path, quant = fp32, {}
            else:
                if (kind, keep) not in converted:
                    converted[kind, keep] = _make_variant(
                        kind, fp32, work, opts.target, calib, keep
                    )
                path, quant = converted[kind, keep]
        with stage(progress, f"gate {short}", total=len(val)) as gating:
            predict = ovv.predict_fn(path, name) if ov else None
            metrics = evaluate_onnx(
                path,
                val,
                ckpt.classes,
                ckpt.grades,
                ckpt.thresholds,
                progress=progress,
                predict=predict,
            )
            result = judge(ref, metrics, opts.tolerance)
            gating.detail = "PASS" if result.passed else "FAIL"
        log(f"{label}: {_fmt(metrics)} -> {'PASS' if result.passed else 'FAIL'}")
        if result.passed:
            runtime = ovv.runtime_record(name) if ov else {}
            return Variant(name, path, result.to_dict(), quant, runtime=runtime)
        log("  " + "; ".join(result.failures()))
    raise GateError(
        f"{name} variant fails the accuracy gate even with {list(attempts[-1])} kept in FP32: "
        + "; ".join(result.failures())
        + " - nothing was published"
    )


def _check_trt_ready(path: Path, target: str) -> None:
    if target != "ngc-trt":
        return
    problems = check_readiness(path)
    if problems:
        raise BuildError(f"{path.name} is not TensorRT-ready: " + "; ".join(problems))


def _attach_engines(variants: list[Variant], opts: BuildOptions, calib, log) -> None:
    """Find prebuilt engines (--engines DIR) or compile them here when TensorRT is present."""
    for variant in variants:
        _check_trt_ready(variant.onnx_path, "ngc-trt")
        if opts.engines:
            variant.engines, variant.engine_manifests = trt.find_engines(
                opts.engines, variant.precision, file_sha256(variant.onnx_path)
            )
        else:
            out = Path(opts.work_dir or opts.repo.parent) / "engines"
            plan, manifest = trt.compile_engine(
                variant.onnx_path,
                out / variant.precision,
                variant.precision,
                max_batch=opts.serving.max_batch,
                calibration_sha256=calib.sha256 if calib is not None else None,
            )
            variant.engines = {manifest["compute_capability"]: plan}
            variant.engine_manifests = {manifest["compute_capability"]: manifest}
        log(f"{variant.precision}: engines for sm {sorted(variant.engines)}")
