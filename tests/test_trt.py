"""TensorRT: static readiness check (CI) and engine compilation (GPU hosts only)."""

from __future__ import annotations

import importlib.util
import json
import shutil

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from mtqa_builder import trt
from mtqa_builder.errors import RepositoryError, TensorRTUnavailableError
from mtqa_builder.trt_readiness import check_readiness

HAS_TRT = importlib.util.find_spec("tensorrt") is not None and shutil.which("nvidia-smi")


@pytest.fixture(scope="module")
def variants(tiny_run, tmp_path_factory):
    """FP32, FP16 and TensorRT-flavour INT8 ONNX files of the tiny checkpoint."""
    from mtqa.checkpoint import load_checkpoint
    from mtqa_builder.calibration import load_calibration
    from mtqa_builder.export import export_onnx
    from mtqa_builder.precision import to_fp16, to_int8

    ckpt = load_checkpoint(tiny_run)
    work = tmp_path_factory.mktemp("trt")
    fp32 = export_onnx(ckpt.model, ckpt.image_size, work / "fp32.onnx")
    calib = load_calibration("synth", ckpt.image_size, ckpt.mean, ckpt.std, count=8)
    return {
        "fp32": fp32,
        "fp16": to_fp16(fp32, work / "fp16.onnx"),
        "int8": to_int8(fp32, work / "int8.onnx", calib.images, "tensorrt"),
        "int8_ort": to_int8(fp32, work / "int8_ort.onnx", calib.images, "ort"),
    }


@pytest.mark.parametrize("name", ["fp32", "fp16", "int8"])
def test_our_tensorrt_target_onnx_is_ready(variants, name):
    assert check_readiness(variants[name]) == []


def test_ort_flavour_int8_is_flagged_for_tensorrt(variants):
    problems = "\n".join(check_readiness(variants["int8_ort"]))
    assert "zero point type UINT8" in problems


def _bad_model() -> onnx.ModelProto:
    """A hand-made graph breaking several TensorRT rules at once."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, "h", 8])
    w = helper.make_tensor_value_info("w", TensorProto.FLOAT, [4, 3, 1, 1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4, "h", 8])
    s = helper.make_tensor_value_info("s", TensorProto.FLOAT, ["n", 4, "h", 8])
    scale = numpy_helper.from_array(np.array(0.1, np.float32), "scale")
    zp = numpy_helper.from_array(np.array(3, np.uint8), "zp")
    roi = numpy_helper.from_array(np.array([], np.float32), "roi")
    scales = numpy_helper.from_array(np.array([1, 1, 1, 1], np.float32), "scales")
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv_dynamic_w"),
        helper.make_node("QuantizeLinear", ["c", "scale", "zp"], ["q"], name="q_asym"),
        helper.make_node("DequantizeLinear", ["q", "scale", "zp"], ["d"], name="dq_asym"),
        helper.make_node("Hardmax", ["d"], ["y"], name="hardmax"),
        helper.make_node(
            "Resize",
            ["d", "roi", "scales"],
            ["s"],
            name="resize_odd",
            mode="linear",
            coordinate_transformation_mode="tf_crop_and_resize",
        ),
    ]
    graph = helper.make_graph(nodes, "bad", [x, w], [y, s], [scale, zp, roi, scales])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_readiness_flags_a_hand_made_bad_graph():
    problems = "\n".join(check_readiness(_bad_model()))
    assert "conv_dynamic_w': weights must be an initializer" in problems
    assert "q_asym': zero point type UINT8" in problems
    assert "q_asym': zero point must be 0" in problems
    assert "hardmax': op ai.onnx::Hardmax unsupported" not in problems  # Hardmax is in 10.x
    assert "coordinate_transformation_mode 'tf_crop_and_resize' unsupported" in problems
    assert "I/O 'x': only the batch axis may be dynamic" in problems


def test_readiness_flags_unsupported_ops_and_per_tensor_weight_scales():
    w = numpy_helper.from_array(np.ones((4, 3, 1, 1), np.int8), "w")
    ws = numpy_helper.from_array(np.array(0.1, np.float32), "ws")
    wz = numpy_helper.from_array(np.array(0, np.int8), "wz")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["u"])
    nodes = [
        helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wf"], name="dq_w"),
        helper.make_node("Conv", ["x", "wf"], ["c"], name="conv"),
        helper.make_node("Unique", ["c"], ["y"], name="unique"),
    ]
    graph = helper.make_graph(nodes, "bad2", [x], [y], [w, ws, wz])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    problems = "\n".join(check_readiness(model))
    assert "dq_w': weight scales must be per-channel on axis 0" in problems
    assert "op ai.onnx::Unique unsupported" in problems
    assert "conv'" not in problems  # a Q/DQ weight from an initializer counts as constant


def test_prebuilt_engines_must_match_the_onnx(variants, tmp_path):
    with pytest.raises(RepositoryError, match="no TensorRT engines for int8"):
        trt.find_engines(tmp_path, "int8", "0" * 64)
    folder = tmp_path / "int8"
    folder.mkdir()
    (folder / "sm90.plan").write_bytes(b"plan")
    meta = {"onnx_sha256": "f" * 64, "plan_sha256": "x", "compute_capability": "9.0"}
    (folder / "sm90.json").write_text(json.dumps(meta))
    with pytest.raises(RepositoryError, match="compiled from another ONNX"):
        trt.find_engines(tmp_path, "int8", "0" * 64)


@pytest.mark.skipif(HAS_TRT, reason="TensorRT is installed here")
def test_compile_without_tensorrt_fails_clearly(variants, tmp_path):
    with pytest.raises(TensorRTUnavailableError, match="TensorRT is not installed"):
        trt.compile_engine(variants["int8"], tmp_path, "int8")


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_TRT, reason="needs TensorRT and a CUDA GPU (NGC TensorRT image)")
@pytest.mark.parametrize("name", ["fp16", "int8"])
def test_compile_strongly_typed_engine(variants, tmp_path, name):
    plan, meta = trt.compile_engine(variants[name], tmp_path, name, max_batch=8)
    assert plan.stat().st_size > 0
    assert meta["precision"] == name and meta["profile"] == {"min": 1, "opt": 8, "max": 8}
    engines, _ = trt.find_engines(tmp_path.parent, tmp_path.name, meta["onnx_sha256"])
    assert engines == {meta["compute_capability"]: plan}
