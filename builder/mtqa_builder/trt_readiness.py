"""Static TensorRT-readiness check of an ONNX file, runnable anywhere (no TensorRT needed).

It catches, in CI, what would otherwise only fail on a GPU host inside the NGC container: ops the
pinned TensorRT's ONNX parser lacks, inputs that must be constant, Q/DQ forms explicit quantization
rejects, dynamic dims other than the batch, and tensor types TensorRT does not take.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

# Operators marked supported in onnx-tensorrt's docs/operators.md, release/10.x branch (the parser
# shipped with TensorRT 10.x, see versions.TENSORRT_VERSION). Written from that table; ops listed
# there as unsupported (e.g. ConvInteger, MatMulInteger, QLinearConv, DynamicQuantizeLinear, the
# Sequence* ops, StringNormalizer, Unique) are deliberately absent.
SUPPORTED_OPS = frozenset(
    [
        "Abs",
        "Acos",
        "Acosh",
        "Add",
        "AffineGrid",
        "And",
        "ArgMax",
        "ArgMin",
        "Asin",
        "Asinh",
        "Atan",
        "Atanh",
        "AveragePool",
        "BatchNormalization",
        "Bernoulli",
        "BitwiseAnd",
        "BitwiseNot",
        "BitwiseOr",
        "BitwiseXor",
        "BlackmanWindow",
        "Cast",
        "CastLike",
        "Ceil",
        "Celu",
        "CenterCropPad",
        "Clip",
        "Compress",
        "Concat",
        "Constant",
        "ConstantOfShape",
        "Conv",
        "ConvTranspose",
        "Cos",
        "Cosh",
        "CumSum",
        "DFT",
        "DeformConv",
        "DepthToSpace",
        "DequantizeLinear",
        "Div",
        "Dropout",
        "Einsum",
        "Elu",
        "Equal",
        "Erf",
        "Exp",
        "Expand",
        "EyeLike",
        "Flatten",
        "Floor",
        "Gather",
        "GatherElements",
        "GatherND",
        "Gelu",
        "Gemm",
        "GlobalAveragePool",
        "GlobalLpPool",
        "GlobalMaxPool",
        "Greater",
        "GreaterOrEqual",
        "GridSample",
        "GroupNormalization",
        "GRU",
        "HammingWindow",
        "HannWindow",
        "HardSigmoid",
        "HardSwish",
        "Hardmax",
        "Identity",
        "If",
        "ImageScaler",
        "InstanceNormalization",
        "IsInf",
        "IsNaN",
        "LayerNormalization",
        "LeakyRelu",
        "Less",
        "LessOrEqual",
        "Log",
        "LogSoftmax",
        "Loop",
        "LRN",
        "LSTM",
        "LpNormalization",
        "LpPool",
        "MatMul",
        "Max",
        "MaxPool",
        "MaxRoiPool",
        "Mean",
        "MeanVarianceNormalization",
        "Min",
        "Mish",
        "Mod",
        "Mul",
        "Neg",
        "NonMaxSuppression",
        "NonZero",
        "Not",
        "OneHot",
        "Or",
        "Pad",
        "ParametricSoftplus",
        "Pow",
        "PRelu",
        "QuantizeLinear",
        "RandomNormal",
        "RandomNormalLike",
        "RandomUniform",
        "RandomUniformLike",
        "Range",
        "Reciprocal",
        "ReduceL1",
        "ReduceL2",
        "ReduceLogSum",
        "ReduceLogSumExp",
        "ReduceMax",
        "ReduceMean",
        "ReduceMin",
        "ReduceProd",
        "ReduceSum",
        "ReduceSumSquare",
        "Relu",
        "Reshape",
        "Resize",
        "ReverseSequence",
        "RNN",
        "RoiAlign",
        "Round",
        "ScaledTanh",
        "Scan",
        "Scatter",
        "ScatterElements",
        "ScatterND",
        "Selu",
        "Shape",
        "Shrink",
        "Sigmoid",
        "Sign",
        "Sin",
        "Sinh",
        "Size",
        "Slice",
        "Softmax",
        "Softplus",
        "Softsign",
        "SpaceToDepth",
        "Split",
        "Sqrt",
        "Squeeze",
        "Sub",
        "Sum",
        "Tan",
        "Tanh",
        "ThresholdedRelu",
        "Tile",
        "TopK",
        "Transpose",
        "Trilu",
        "Unsqueeze",
        "Upsample",
        "Where",
        "Xor",
    ]
)
# Same table, Resize row.
RESIZE_MODES = {"nearest", "linear", "cubic"}
RESIZE_COORDS = {
    "half_pixel",
    "pytorch_half_pixel",
    "tf_half_pixel_for_nn",
    "asymmetric",
    "align_corners",
}
RESIZE_NEAREST = {"floor", "ceil", "round_prefer_floor", "round_prefer_ceil"}
_P = onnx.TensorProto
ACCEPTED_TYPES = {_P.FLOAT, _P.FLOAT16, _P.BFLOAT16, _P.INT8, _P.UINT8, _P.INT32, _P.INT64, _P.BOOL}
# Inputs that TensorRT needs as build-time constants: (op, input index, what it is).
CONSTANT_INPUTS = [
    ("Conv", 1, "weights"),
    ("ConvTranspose", 1, "weights"),
    ("Slice", 3, "axes"),
    ("Squeeze", 1, "axes"),
    ("Unsqueeze", 1, "axes"),
]


def _attr(node: onnx.NodeProto, name: str, default):
    for a in node.attribute:
        if a.name == name:
            value = onnx.helper.get_attribute_value(a)
            return value.decode() if isinstance(value, bytes) else value
    return default


def check_readiness(path: Path | onnx.ModelProto) -> list[str]:
    """Every reason TensorRT 10.x would reject this ONNX; empty when it looks ready."""
    model = path if isinstance(path, onnx.ModelProto) else onnx.load(str(path))
    problems: list[str] = []
    try:
        model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    except onnx.shape_inference.InferenceError as exc:  # report it, then check what we can
        problems.append(f"ONNX shape inference fails (TensorRT's parser would too): {exc}")
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    consts = set(inits) | {o for n in graph.node if n.op_type == "Constant" for o in n.output}
    producer = {o: n for n in graph.node for o in n.output}

    def constant(name: str) -> bool:
        node = producer.get(name)  # a DequantizeLinear of an initializer is a Q/DQ weight
        return name in consts or (
            node is not None and node.op_type == "DequantizeLinear" and node.input[0] in consts
        )

    for node in graph.node:
        where = f"{node.op_type} '{node.name}'"
        if node.domain not in ("", "ai.onnx") or node.op_type not in SUPPORTED_OPS:
            problems.append(f"{where}: op {node.domain or 'ai.onnx'}::{node.op_type} unsupported")
            continue
        for op, idx, what in CONSTANT_INPUTS:
            named = node.op_type == op and len(node.input) > idx and node.input[idx]
            if named and not constant(node.input[idx]):
                problems.append(f"{where}: {what} must be an initializer")
        if node.op_type == "Resize":
            problems += _resize(node, where)
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            problems += _qdq(node, where, inits)
    problems += _io(graph)
    problems += _types(graph)
    return problems


def _resize(node: onnx.NodeProto, where: str) -> list[str]:
    out = []
    mode = _attr(node, "mode", "nearest")
    coords = _attr(node, "coordinate_transformation_mode", "half_pixel")
    if mode not in RESIZE_MODES:
        out.append(f"{where}: Resize mode {mode!r} unsupported")
    if coords not in RESIZE_COORDS:
        out.append(f"{where}: coordinate_transformation_mode {coords!r} unsupported")
    if (
        mode == "nearest"
        and _attr(node, "nearest_mode", "round_prefer_floor") not in RESIZE_NEAREST
    ):
        out.append(f"{where}: nearest_mode unsupported")
    return out


def _qdq(node: onnx.NodeProto, where: str, inits: dict) -> list[str]:
    out = []
    if len(node.input) < 3 or node.input[2] not in inits:
        return [f"{where}: zero point must be an explicit int8 initializer equal to 0"]
    zp = inits[node.input[2]]
    if zp.data_type != _P.INT8:
        out.append(f"{where}: zero point type {_P.DataType.Name(zp.data_type)} (TensorRT: INT8)")
    if np.any(numpy_helper.to_array(zp) != 0):
        out.append(f"{where}: zero point must be 0 (symmetric quantization)")
    weight = inits.get(node.input[0]) if node.op_type == "DequantizeLinear" else None
    if weight is not None and len(weight.dims) >= 2:  # weight DQ: per-channel on output axis
        scale = inits.get(node.input[1])
        n_scales = int(np.prod(scale.dims)) if scale is not None else 0
        if _attr(node, "axis", 1) != 0 or n_scales != weight.dims[0]:
            out.append(f"{where}: weight scales must be per-channel on axis 0")
    return out


def _io(graph: onnx.GraphProto) -> list[str]:
    out = []
    for vi in list(graph.input) + list(graph.output):
        dims = [d.dim_param or d.dim_value for d in vi.type.tensor_type.shape.dim]
        if not dims or not isinstance(dims[0], str):
            out.append(f"I/O '{vi.name}': the batch axis must be the only dynamic dim, dims {dims}")
        elif any(not isinstance(d, int) or d <= 0 for d in dims[1:]):
            out.append(f"I/O '{vi.name}': only the batch axis may be dynamic, dims {dims}")
    return out


def _types(graph: onnx.GraphProto) -> list[str]:
    seen = {}
    for vi in [*graph.input, *graph.output, *graph.value_info]:
        seen[vi.name] = vi.type.tensor_type.elem_type
    for t in graph.initializer:
        seen[t.name] = t.data_type
    return [
        f"tensor '{name}': type {_P.DataType.Name(kind)} not accepted by TensorRT"
        for name, kind in seen.items()
        if kind and kind not in ACCEPTED_TYPES
    ]
