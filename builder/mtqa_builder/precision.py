"""Explicit precision in the ONNX graph: FP16 compute with FP32 I/O, and INT8 Q/DQ from calibration.

TensorRT 10+ networks are strongly typed, so precision is decided here, in the ONNX itself, where
ORT on CPU can run it and the accuracy gate can judge it. INT8 comes in two flavours: `tensorrt`
(symmetric S8 activations and S8 per-channel weights on axis 0, zero points 0 - what TensorRT's
explicit quantization accepts) and `ort` (U8 activations / S8 weights, the fastest kernels in ORT's
CPU provider - PLATFORM.md measured 2.4-3x over FP32 against ~1.25x for S8/S8).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from mtqa_builder.errors import BuildError, CalibrationError
from mtqa_builder.export import INPUT_NAME

# Precisions run by ONNX Runtime, and by OpenVINO from the same ONNX files (`ov-<precision>`,
# openvino_variants.py): every name `mtqa build --precision` knows.
ORT_PRECISIONS = ("fp32", "fp16", "int8")
OPENVINO_PRECISIONS = ("ov-fp32", "ov-bf16", "ov-int8")
PRECISIONS = ORT_PRECISIONS + OPENVINO_PRECISIONS
INT8_FLAVOURS = ("tensorrt", "ort")
# Ops quantized per flavour: TensorRT fuses Q/DQ around Conv (the bulk of the compute) and keeps
# the tiny Gemm heads in higher precision. For ORT CPU, None = every op it can quantize: keeping
# Concat/Resize/Add in int8 avoids DQ/Q round trips (measured 1.66x vs 1.35x for Conv+Gemm only
# on the tiny preset at batch 32, loaded 2-core machine).
_QUANT_OPS: dict[str, list[str] | None] = {"tensorrt": ["Conv"], "ort": None}
_CALIB_BATCH = 8


class _ArrayReader:
    """ORT CalibrationDataReader over a float32 [N,3,S,S] array, in batches of `_CALIB_BATCH`."""

    def __init__(self, images: np.ndarray) -> None:
        self._batches = iter(
            [images[i : i + _CALIB_BATCH] for i in range(0, len(images), _CALIB_BATCH)]
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._batches, None)
        return None if batch is None else {INPUT_NAME: batch}


def to_fp16(src: Path, dst: Path, keep_fp32: Sequence[str] = ()) -> Path:
    """Write `src` with FP16 weights/compute but FP32 graph inputs and outputs to `dst`.

    Uses onnxruntime.transformers' converter: onnxconverter-common's leaves Resize outputs in FP16
    despite keep_io_types (PLATFORM.md). `keep_fp32` names nodes left in FP32 (mixed precision).
    """
    # Imported here, as in to_int8: `mtqa build` reads PRECISIONS to refuse an unknown name in
    # a second, and these two take most of this module's import time.
    import onnx_ir
    from onnxruntime.transformers.float16 import convert_float_to_float16

    proto = onnx.load(str(src))
    half = convert_float_to_float16(
        proto, keep_io_types=True, node_block_list=list(keep_fp32) or None
    )
    _fold_initializer_casts(half)
    # With a block list the converter appends its input casts after their users; re-sort.
    ir_model = onnx_ir.from_proto(half)
    ir_model.graph.sort()
    half = onnx_ir.to_proto(ir_model)
    # The converter leaves stale FP32 value_info behind; drop it and infer afresh.
    del half.graph.value_info[:]
    half = onnx.shape_inference.infer_shapes(half, strict_mode=True)
    onnx.checker.check_model(half)
    onnx.save(half, str(dst))
    return Path(dst)


def _fold_initializer_casts(model: onnx.ModelProto) -> None:
    """Replace Cast(initializer) by a pre-cast initializer, in place.

    For nodes kept in FP32 the converter feeds FP16-stored weights through Cast nodes; TensorRT
    wants Conv weights to be initializers, so the cast is done here once.
    """
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    folded = []
    for node in graph.node:
        if node.op_type == "Cast" and node.input[0] in inits:
            to = onnx.helper.get_attribute_value(node.attribute[0])
            dtype = onnx.helper.tensor_dtype_to_np_dtype(to)
            array = numpy_helper.to_array(inits[node.input[0]]).astype(dtype)
            graph.initializer.append(numpy_helper.from_array(array, node.output[0]))
            folded.append(node)
    for node in folded:
        graph.node.remove(node)
    used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
    for name in [t.name for t in graph.initializer if t.name not in used]:
        graph.initializer.remove(next(t for t in graph.initializer if t.name == name))


def to_int8(
    src: Path, dst: Path, calib: np.ndarray, flavour: str, keep_fp32: Sequence[str] = ()
) -> Path:
    """Quantize `src` to Q/DQ INT8 with MinMax ranges measured on `calib` and write `dst`.

    Refuses to run without calibration images: scales are never guessed. MinMax ("max") is used
    because entropy calibration clipped the head logits in our trials (PLATFORM.md). The `ort`
    flavour leaves the pooled head path in float (`pooled_head_nodes`), `keep_fp32` adds nodes.
    """
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_static,
    )

    if flavour not in INT8_FLAVOURS:
        raise BuildError(f"unknown INT8 flavour {flavour!r}; expected one of {INT8_FLAVOURS}")
    if calib is None or len(calib) == 0:
        raise CalibrationError("INT8 needs calibration images (--calib-data synth|neu_seg|PATH)")
    trt = flavour == "tensorrt"
    float_head = [] if trt else pooled_head_nodes(src)  # `tensorrt` quantizes Conv only anyway
    exclude = list(dict.fromkeys([*float_head, *keep_fp32]))
    with tempfile.TemporaryDirectory() as tmp:
        prep = Path(tmp) / "prep.onnx"
        # Symbolic shape inference trips on Resize->Concat with a dynamic batch (PLATFORM.md).
        quant_pre_process(str(src), str(prep), skip_symbolic_shape=True)
        quantize_static(
            str(prep),
            str(dst),
            _ArrayReader(np.ascontiguousarray(calib, dtype=np.float32)),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QInt8 if trt else QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=_QUANT_OPS[flavour],
            nodes_to_exclude=exclude,
            calibrate_method=CalibrationMethod.MinMax,
            # TensorRT keeps biases in float: an INT32 bias Q/DQ is not in its explicit-quant form.
            extra_options={
                "ActivationSymmetric": trt,
                "WeightSymmetric": True,
                "QuantizeBias": not trt,
            },
        )
    onnx.checker.check_model(str(dst))
    return Path(dst)


def _consumers(graph: onnx.GraphProto) -> dict[str, list[onnx.NodeProto]]:
    users: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            users.setdefault(name, []).append(node)
    return users


# Ops that reduce a feature map to a vector: where the pooled head path starts.
_POOL_OPS = ("ReduceMean", "ReduceMax", "GlobalAveragePool", "GlobalMaxPool")


def pooled_head_nodes(path: Path) -> list[str]:
    """Names of the nodes that work on pooled feature vectors, which the `ort` INT8 flavour keeps
    in FP32: every global pooling node, everything downstream of one, and a Sigmoid that feeds one.

    The presence and grade heads read one vector that concatenates encoder averages and maxima,
    segmentation areas (0..0.2) and peak logits (about -20..10). Quantized, that Concat gets a
    single scale, which rounded the areas to zero (measured: 0.079 against their own 0.0007) and
    made INT8 fail the gate on some checkpoints; these nodes handle a few hundred numbers per
    image, so keeping them in float costs nothing measurable.
    """
    graph = onnx.load(str(path)).graph
    users = _consumers(graph)
    producer = {out: n for n in graph.node for out in n.output}
    pools = [n for n in graph.node if n.op_type in _POOL_OPS]
    feeders = [producer.get(p.input[0]) for p in pools]
    keep = {f.name for f in feeders if f is not None and f.op_type == "Sigmoid"}
    stack = list(pools)
    while stack:
        node = stack.pop()
        if node.name not in keep:
            keep.add(node.name)
            stack.extend(u for out in node.output for u in users.get(out, []))
    return [n.name for n in graph.node if n.name in keep]


def sensitive_nodes(path: Path, compute_ops: Iterable[str] = ("Conv", "Gemm", "MatMul")) -> list:
    """Names of the nodes kept in FP32 by the mixed-precision fallback.

    They are the first compute node (it sees raw pixels) and, for every output head, the last
    compute node feeding it (the segmentation and classification heads, whose logits the
    thresholds act on) with every node between it and the output: an int8 Resize/Add after the
    mask convs quantized the logits in steps of ~0.12 and flipped pixels at the thresholds
    (mIoU -1.1 points on a demo checkpoint). Node names are those of the exported graph, which
    both converters keep.
    """
    graph = onnx.load(str(path)).graph
    ops = set(compute_ops)
    compute = [n for n in graph.node if n.op_type in ops]
    if not compute:
        return []
    producer = {out: n for n in graph.node for out in n.output}
    keep = [compute[0].name]
    for output in graph.output:
        stack, seen = [output.name], set()
        while stack:  # walk back from the output to the nearest compute node on each path
            node = producer.get(stack.pop())
            if node is None or node.name in seen:
                continue
            seen.add(node.name)
            keep.append(node.name)
            if node.op_type not in ops:
                stack.extend(node.input)
    return list(dict.fromkeys(keep))
