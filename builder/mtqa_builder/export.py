"""PyTorch -> ONNX export with a dynamic batch axis, and its parity check against PyTorch on ORT.

We use the dynamo exporter (torch.onnx.export(dynamo=True)): on our network it folds BatchNorm into
the convolutions and emits a clean graph (Conv/Relu/Resize/Concat/Gemm) with no Constant/Gather
shape plumbing, while the legacy exporter left a dynamic shape on `seg_logits` and ~20 helper
nodes. Either way the result goes through onnx.checker and the parity check below.
"""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path

import numpy as np
import onnx

from mtqa.tasks import OUTPUT_KEYS
from mtqa_builder.errors import ExportError
from mtqa_builder.versions import ONNX_OPSET

# torch and onnxruntime are imported inside the functions that use them: trt.py imports this
# module's names on TensorRT build hosts that have neither.
INPUT_NAME = "images"
OUTPUT_NAMES = OUTPUT_KEYS  # the network outputs, in the task table's order
# ORT CPU matches torch to ~5e-5 on trained weights (PLATFORM.md); leave room for larger logits.
DEFAULT_PARITY_TOL = 1e-3


def _tuple_wrapper(model):
    """Wrap `model` so the exporter sees its dict outputs as a tuple in contract order."""
    import torch

    class TupleOutputs(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, images: torch.Tensor):
            out = self.inner(images)
            return tuple(out[k] for k in OUTPUT_NAMES)

    return TupleOutputs(model).eval()


def export_onnx(model, image_size: int, path: Path, opset: int = ONNX_OPSET) -> Path:
    """Export `model` (forward -> dict of the three logits) to one self-contained ONNX file.

    Only the batch axis is dynamic; BatchNorm must be folded (the export is refused otherwise, as
    TensorRT INT8 and ORT both want Conv+bias); the file passes onnx.checker with full checks.
    """
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    example = torch.zeros(2, 3, image_size, image_size)
    with torch.no_grad():
        out = model.eval()(example)
    missing = [k for k in OUTPUT_NAMES if not isinstance(out, dict) or k not in out]
    if missing:
        raise ExportError(f"model forward() must return a dict with {list(OUTPUT_NAMES)}")
    wrapped = _tuple_wrapper(model)
    batch = torch.export.Dim("batch", min=1, max=4096)
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    try:
        # The exporter prints progress lines on stdout; keep the CLI output ours.
        with torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):
            torch.onnx.export(
                wrapped,
                (example,),
                str(path),
                input_names=[INPUT_NAME],
                output_names=list(OUTPUT_NAMES),
                dynamic_shapes=({0: batch},),
                opset_version=opset,
                dynamo=True,
                external_data=False,
                verbose=False,
            )
    except Exception as exc:  # torch raises many unrelated types; report them as one
        raise ExportError(f"torch.onnx.export failed: {type(exc).__name__}: {exc}") from exc
    proto = onnx.load(str(path))
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"exported ONNX fails onnx.checker: {exc}") from exc
    check_io(proto, image_size)
    left = [n.name for n in proto.graph.node if n.op_type == "BatchNormalization"]
    if left:
        raise ExportError(f"BatchNormalization not folded into Conv: {left[:5]}")
    return path


def _dims(value_info) -> list[int | str]:
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


def check_io(proto: onnx.ModelProto, image_size: int) -> None:
    """Check names and that exactly the leading (batch) axis of every graph I/O is symbolic."""
    inputs = [i.name for i in proto.graph.input]
    outputs = [o.name for o in proto.graph.output]
    if inputs != [INPUT_NAME] or outputs != list(OUTPUT_NAMES):
        raise ExportError(f"ONNX I/O names {inputs} -> {outputs} break the contract")
    if _dims(proto.graph.input[0])[1:] != [3, image_size, image_size]:
        raise ExportError(f"input dims {_dims(proto.graph.input[0])} != [N, 3, {image_size}]*2")
    for vi in list(proto.graph.input) + list(proto.graph.output):
        dims = _dims(vi)
        if not isinstance(dims[0], str) or any(not isinstance(d, int) or d <= 0 for d in dims[1:]):
            raise ExportError(f"{vi.name}: dims {dims}; only the batch axis may be dynamic")


def check_parity(
    model, onnx_path: Path, images: np.ndarray, tol: float = DEFAULT_PARITY_TOL
) -> dict[str, float]:
    """Max abs difference per head between PyTorch and ORT CPU on `images`; raise above `tol`."""
    import onnxruntime as ort
    import torch

    with torch.no_grad():
        ref = model.eval()(torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)))
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = dict(zip(OUTPUT_NAMES, sess.run(list(OUTPUT_NAMES), {INPUT_NAME: images}), strict=True))
    diffs = {k: float(np.abs(ref[k].float().numpy() - got[k]).max()) for k in OUTPUT_NAMES}
    bad = {k: v for k, v in diffs.items() if not v <= tol}
    if bad:
        raise ExportError(f"ONNX disagrees with PyTorch beyond {tol:g}: {bad}")
    return diffs
